"""Step 3 Tags (design §4.3): the trigger word, the dataset-wide tags with keep/DEL, the pictures that carry the
highlighted tag and the caption as it will be written; ^s writes every caption through the engine (backup first),
^z undoes the last write, ^r runs the tagger as a job."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, OptionList, Static

from loratui.dataset.tag_categories import tag_kind
from loratui.tui.commands import Command, ListedCommands
from loratui.tui.screens.step_screen import StepScreen
from loratui.tui.widgets.job_panel import JobPanel
from loratui.tui.widgets.picture import Picture

FILTERS = ("all", "DEL", "keep", "rare")
RARE_SHARE = 0.05
TAG_WIDTH = 19
KIND_WIDTH = 10  # the kind column of the 120-column list (hair, eyes, clothes, ...)
BAR_CELLS = 8
NO_PICTURES = "No pictures prepared yet: esc, then ^r on Crop."
MEANING = " space keep/DEL. DEL: the trigger absorbs it, always drawn. keep: prompts decide"


@dataclass
class Loaded:
    """What one read of the dataset gave: the table, each picture's tags, the settings it was read with."""

    table: object  # loratui.dataset.tag_table.TagTable
    entries: list = field(default_factory=list)  # CaptionEntry
    trigger: str = ""
    concept: str = ""
    model: str = ""
    general: float = 0.35
    character: float = 0.85
    merge: str = "append"
    error: str = ""


class TagList(OptionList):
    """The tags; letters type into the filter, space toggles keep/DEL, enter goes to the pictures."""

    BINDINGS = [Binding("space", "toggle", "Keep/DEL", show=False)]  # row 21 names it: the footer is full

    def action_toggle(self) -> None:
        screen = self.screen
        if isinstance(screen, TagsScreen):
            screen.toggle_highlighted()

    def on_key(self, event) -> None:
        screen = self.screen
        if not isinstance(screen, TagsScreen):
            return
        if event.key == "backspace" and screen.filter_text:
            event.stop()
            event.prevent_default()
            screen.set_filter(screen.filter_text[:-1])
        elif event.character and event.is_printable and event.character not in " ?":
            event.stop()
            event.prevent_default()
            screen.set_filter(screen.filter_text + event.character)


class PictureList(OptionList):
    """The prepared pictures, those with the highlighted tag first (✓)."""


class TagCommands(ListedCommands):
    """The palette's bulk edits on Tags: each marks tags (pending, like space); ^s writes them."""

    COMMANDS = (
        ("Tags: delete rare tags", f"mark DEL every tag on < {RARE_SHARE:.0%} of pictures", "rare"),
        ("Tags: delete junk tags", "mark DEL watermark, signature, artist name, dated, web address…", "junk"),
        ("Tags: keep all", "mark every tag keep (DEL ones come back where the last backup had them)", "keep"),
        ("Tags: rename a tag everywhere…", "the highlighted tag (or another) under a new name in every caption; "
                                           "written at once, ^z undoes", "rename"),
        ("Tags: add a tag to every picture…", "put a tag into every caption right after the trigger; written at "
                                              "once, ^z undoes", "add"),
    )

    def _commands(self) -> list[Command]:
        return [(title, help_text, partial(self._run, what)) for title, help_text, what in self.COMMANDS]

    def _run(self, what: str) -> None:
        screen = self.screen
        if isinstance(screen, TagsScreen):
            screen.bulk(what)


class TagsScreen(StepScreen):
    COMMANDS = {TagCommands}
    HELP_TEXT = ("Tag every prepared picture, then choose which tags the trigger word should absorb (DEL: taken "
                 "out of every caption, so the LoRA draws it always) and which stay (keep: changeable in prompts).")
    HELP_KEYS = (
        ("letters", "filter the tags; backspace takes a letter off, esc clears"),
        ("space", "keep <-> DEL for the highlighted tag (not written until ^s)"),
        ("enter", "on a tag: its pictures; on a picture: edit its caption"),
        ("^s", "write every caption: trigger first, DEL tags out (backup kept)"),
        ("^z", "put back the captions as they were before the last write"),
        ("^r", "the tagger: model, thresholds, append/overwrite/skip; cancel"),
        ("^t", "sort the tags by count <-> name"),
        ("^f", "show all / DEL / keep / rare (< 5% of pictures) tags"),
        ("esc", "clear the filter, leave a field, or go back a step"),
        ("^p", "palette: delete rare or junk tags, keep all, rename a tag, add a tag to all"),
    )
    BINDINGS = [
        Binding("ctrl+r", "tagger", "Tag", key_display="^r"),
        Binding("ctrl+s", "write", "Write", key_display="^s"),
        Binding("ctrl+z", "undo", "Undo", show=False),
        Binding("ctrl+t", "sort", "Sort", show=False),
        Binding("ctrl+f", "cycle_filter", "Filter", show=False),
        Binding("escape", "escape", "Back", show=False),
    ]
    DEFAULT_CSS = """
    TagsScreen #trigger-row { height: 1; }
    TagsScreen #trigger-label { width: 10; }
    TagsScreen #trigger, TagsScreen #trigger:focus { width: 20; height: 1; border: none; padding: 0; }
    TagsScreen #trigger-info { width: 1fr; padding-left: 1; }
    TagsScreen #panes { height: 1fr; }
    TagsScreen #tag-box { width: 1fr; border: round $panel; }
    TagsScreen #tag-box:focus-within { border: heavy $accent; }
    TagsScreen #pics-box { width: 30; border: round $panel; }
    TagsScreen #pics-box:focus-within { border: heavy $accent; }
    TagsScreen #filter-line, TagsScreen #tag-head { height: 1; }
    TagsScreen TagList, TagsScreen PictureList, TagsScreen TagList:focus, TagsScreen PictureList:focus {
        border: none; padding: 0; height: 1fr; scrollbar-size-vertical: 1; }
    TagsScreen PictureList, TagsScreen PictureList:focus { height: 5; }
    TagsScreen #trigger-end { width: 2; }
    TagsScreen #preview { height: 1fr; }
    TagsScreen #meaning, TagsScreen #pending { height: 1; }
    TagsScreen #caption-edit, TagsScreen #caption-edit:focus { height: 1; border: none; padding: 0; display: none; }
    TagsScreen.-editing #caption-edit { display: block; }
    TagsScreen.-editing #pending { display: none; }
    TagsScreen JobPanel { height: auto; max-height: 3; }  /* a failure wraps: its fix is at the end */
    TagsScreen #caption-box { display: none; width: 34; border: round $panel; }
    TagsScreen.-wide #pics-box { width: 26; }
    TagsScreen #caption-picture { height: 16; }
    TagsScreen #caption-full { height: 1fr; }
    TagsScreen.-wide #caption-box { display: block; }
    TagsScreen.-wide #preview { display: none; }
    TagsScreen.-wide PictureList, TagsScreen.-wide PictureList:focus { height: 1fr; }
    .-ascii TagsScreen #caption-box { border: ascii $panel; }
    .-ascii TagsScreen #tag-box, .-ascii TagsScreen #pics-box { border: ascii $panel; }
    .-ascii TagsScreen #tag-box:focus-within, .-ascii TagsScreen #pics-box:focus-within { border: ascii $accent; }
    """
    SCOPED_CSS = False  # every rule names TagsScreen; unscoped so the app's -ascii class reaches them

    def __init__(self, step) -> None:
        super().__init__(step)
        self.loaded: Loaded | None = None
        self.marks: dict[str, bool] = {}  # tag key -> DEL wanted (only where it differs from what is saved)
        self.filter_text = ""
        self.filter_mode = "all"
        self.sort_by = "count"
        self.shown: list = []  # TagRow in the list's order
        self._trig_rows: set[str] = set()  # keys of the rows drawn as the trigger (trig)
        self.pictures: list = []  # CaptionEntry in the pictures list's order
        self._next_after_write = False
        self._next_after_tagging = False  # ^n on an untagged dataset: tag, then ^n again (write, move on)
        self._demo_marked = False  # the demo's own DEL choices were marked (once)
        self._busy = False
        self._editing = None  # the CaptionEntry whose caption the one-line field edits
        self._holders = 0  # how many of self.pictures carry the highlighted tag (they come first)
        self._tag_cursor = -1  # the tag row drawn with the cursor mark
        self._picture_cursor = -1  # the picture row drawn with it

    # --- layout ---------------------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="trigger-row"):
            yield Static("Trigger [", id="trigger-label", markup=False)
            yield Input("", id="trigger", placeholder="trigger word", select_on_focus=False)
            yield Static(" ]", id="trigger-end", markup=False)
            yield Static("", id="trigger-info")
        with Horizontal(id="panes"):
            with Vertical(id="tag-box"):
                yield Static("", id="filter-line")
                yield Static("", id="tag-head")
                yield TagList(id="tags")
            with Vertical(id="pics-box"):
                yield PictureList(id="pics")
                yield Static("", id="preview")
            # 120x40 (design §4.3): a third column with the highlighted picture and its whole caption.
            with Vertical(id="caption-box"):
                yield Picture(id="caption-picture")
                yield Static("", id="caption-full")
        yield Static(MEANING, id="meaning")
        yield Static("", id="pending")
        yield Input("", id="caption-edit", select_on_focus=False)
        project = self.wizard.project
        assert project is not None
        yield JobPanel(project, "tag", id="tag-job")

    def on_mount(self) -> None:
        self._show_head()
        self.reload()

    def _show_head(self) -> None:
        kind = f" {'kind':{KIND_WIDTH}}" if self.wide else ""
        for head in self.query("#tag-head").results(Static):  # none while the app is closing under a new screen
            head.update(f"  {'use':5} {'tag':{TAG_WIDTH}}{kind} imgs")

    def wide_changed(self) -> None:
        self._show_head()
        if self.loaded is not None and not self.loaded.error:
            self.refresh_list()

    # --- reading the dataset --------------------------------------------------------------------------------

    def reload(self) -> None:
        self._busy = True
        self._read()

    @work(thread=True, exclusive=True, group="tags-read")
    def _read(self) -> None:
        loaded = _read_project(self.wizard.project)
        self.app.call_from_thread(self._show_loaded, loaded)

    def _show_loaded(self, loaded: Loaded) -> None:
        first = self.loaded is None
        self._busy = False
        self.loaded = loaded
        if loaded.error:
            self._next_after_tagging = False
            self.say(loaded.error, "✗")
            return
        table = loaded.table
        # Marks that now agree with what is saved are no longer changes.
        rows = {row.key: row for row in table.rows}
        self.marks = {k: v for k, v in self.marks.items() if k in rows and rows[k].deleted != v}
        self._mark_demo_choices(table)
        trigger = self.query_one("#trigger", Input)
        if first:
            trigger.value = loaded.trigger
            (trigger if not loaded.trigger else self.query_one(TagList)).focus()
        self.refresh_list()
        self._show_trigger_info()
        if not loaded.entries:
            self.say(NO_PICTURES, "!")
        elif not any(e.has_caption for e in loaded.entries) and first:
            self.say("No captions yet: ^r (or ^n) runs the tagger.")
        if self._next_after_tagging and any(e.has_caption for e in loaded.entries):
            self._next_after_tagging = False
            if self.ready_for_next():  # nothing left to write: on to Parameters
                self.wizard.go_to(self.step.number + 1)

    def _mark_demo_choices(self, table) -> None:  # noqa: ANN001 - a TagTable
        """The demo chose its DELs ahead (loratui.demo.choices): once the tagger found them, they are marked DEL
        (pending, like a user's marks), so ^n writes them. Only once per screen: a tag kept again stays kept."""
        if self._demo_marked:
            return
        from loratui.demo.choices import demo_delete_tags

        found = [row for tag in demo_delete_tags(self.wizard.project)
                 if (row := table.find(tag)) is not None and row.count and not row.deleted]
        for row in found:
            self.marks[row.key] = True
        self._demo_marked = bool(found)
        if found:
            self.say(f"Demo: {', '.join(row.tag for row in found)} marked DEL (the trigger carries them); "
                     "^n writes them.")

    def _show_trigger_info(self) -> None:
        loaded = self.loaded
        if loaded is None or loaded.error:
            return
        table = loaded.table
        images = table.concept_images.get(loaded.concept, table.images)
        first = table.trigger_first.get(loaded.concept, 0)
        model = Path(loaded.model).name or loaded.model
        info = f"first in {first}/{images}  Tagger {model} >{loaded.general:g}"
        self.query_one("#trigger-info", Static).update(info[:48])

    # --- the tag list ---------------------------------------------------------------------------------------

    def is_deleted(self, row) -> bool:
        return self.marks.get(row.key, row.deleted)

    def _visible(self, row) -> bool:
        if self.filter_text and self.filter_text.lower().replace("_", " ") not in row.tag.lower().replace("_", " "):
            return False
        deleted = self.is_deleted(row)
        return {"all": True, "DEL": deleted, "keep": not deleted, "rare": row.share < RARE_SHARE}[self.filter_mode]

    def refresh_list(self) -> None:
        if self.loaded is None or self.loaded.error:
            return
        table = self.loaded.table
        tags = self.query_one(TagList)
        old = self.shown[tags.highlighted].key if self.shown and tags.highlighted is not None \
            and tags.highlighted < len(self.shown) else None
        self.shown = [row for row in table.sorted(self.sort_by) if self._visible(row)]
        self._trig_rows = {row.key for row in self.shown if self._is_trigger(row)}
        tags.set_options([self._prompt(row, False) for row in self.shown])
        self._tag_cursor = -1
        if self.shown:
            keys = [row.key for row in self.shown]
            tags.highlighted = keys.index(old) if old in keys else 0
        self._show_counts()
        self._show_pictures()

    def _prompt(self, row, current: bool) -> str:
        glyphs = self.wizard.glyphs
        cursor = glyphs.cursor if current else " "
        use = "trig" if self._is_trigger(row) else "DEL" if self.is_deleted(row) else "keep"
        tag = row.tag if len(row.tag) <= TAG_WIDTH else row.tag[:TAG_WIDTH - 1] + "…"
        eighths = round(row.share * BAR_CELLS * 2)
        if self.wizard.ascii_only:
            bar = "#" * (eighths // 2) + "+" * (eighths % 2)
        else:
            bar = "█" * (eighths // 2) + "▌" * (eighths % 2)
        kind = f" {tag_kind(row.tag):{KIND_WIDTH}}" if self.wide else ""
        text = f"{cursor} {use:5} {tag:{TAG_WIDTH}}{kind} {row.count:4} {row.share * 100:3.0f}% {bar}"
        return text.replace("[", r"\[")

    def _show_counts(self) -> None:
        table = self.loaded.table
        deleted = sum(self.is_deleted(row) for row in table.rows)
        box = self.query_one("#tag-box")
        box.border_title = f"{len(table.rows)} tags  {len(table.rows) - deleted} keep  {deleted} DEL"
        box.border_subtitle = f"by {self.sort_by}" + (f", {self.filter_mode}" if self.filter_mode != "all" else "")
        if self.filter_text:
            line = f"filter: {self.filter_text[-14:]}  esc clears"
        else:
            line = "type to filter"
        shown = f"{len(self.shown)} of {len(table.rows)} shown"
        self.query_one("#filter-line", Static).update(f"{line:<26}{shown:>20}"[:48])
        self._show_pending()

    def _show_pending(self) -> None:
        changes = self.changes_count()
        text = f" {changes} change{'s' if changes != 1 else ''} not written yet. ^s writes all captions " \
               "(backup kept, ^z undoes)." if changes else ""
        self.query_one("#pending", Static).update(text)

    @on(OptionList.OptionHighlighted, "#tags")
    def _tag_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        tags = self.query_one(TagList)
        # Only the row that had the cursor mark and the new one: a key press never redraws the whole list.
        for index in {self._tag_cursor, event.option_index}:
            if 0 <= index < len(self.shown):
                tags.replace_option_prompt_at_index(index, self._prompt(self.shown[index],
                                                                        index == event.option_index))
        self._tag_cursor = event.option_index
        self._show_pictures()

    @on(OptionList.OptionSelected, "#tags")
    def _tag_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one(PictureList).focus()

    def highlighted_row(self):
        tags = self.query_one(TagList)
        if tags.highlighted is None or tags.highlighted >= len(self.shown):
            return None
        return self.shown[tags.highlighted]

    def _is_trigger(self, row) -> bool:  # noqa: ANN001
        from loratui.dataset.captions import split_tags, tag_key

        trigger = self.query_one("#trigger", Input).value.strip()
        return tag_key(row.tag) in {tag_key(word) for word in split_tags(trigger)}

    def toggle_highlighted(self) -> None:
        row = self.highlighted_row()
        if row is None:
            self.say("No tag to toggle: clear the filter (esc) or run the tagger (^r).")
            return
        if self._is_trigger(row):
            self.say(f"{row.tag} is the trigger, always first: edit it at the top.", "!")
            return
        wanted = not self.is_deleted(row)
        if wanted == row.deleted:
            self.marks.pop(row.key, None)
        else:
            self.marks[row.key] = wanted
        tags = self.query_one(TagList)
        if self._visible(row):
            tags.replace_option_prompt_at_index(tags.highlighted, self._prompt(row, True))
            self._show_counts()
            self._show_preview()  # the same pictures hold the tag: only the caption as it will be written changes
        else:
            self.refresh_list()

    def bulk(self, what: str) -> None:
        """A palette bulk edit: mark tags DEL (rare, junk) or keep (all), pending until ^s."""
        if self.loaded is None or self.loaded.error:
            self.say("Still reading the captions: try again in a moment.")
            return
        if what in {"rename", "add"}:
            self._ask_names(what)
            return
        from loratui.dataset.junk_tags import is_junk

        rows = self.loaded.table.rows
        if what == "rare":
            chosen, wanted = [r for r in rows if 0 < r.share < RARE_SHARE and not r.trigger_of], True
        elif what == "junk":
            chosen, wanted = [r for r in rows if is_junk(r.tag)], True
        else:
            chosen, wanted = list(rows), False
        changed = 0
        for row in chosen:
            if self.is_deleted(row) != wanted:
                changed += 1
            if wanted == row.deleted:
                self.marks.pop(row.key, None)
            else:
                self.marks[row.key] = wanted
        self.refresh_list()
        label = {"rare": "rare tags", "junk": "junk tags", "keep": "tags"}[what]
        if not changed:
            self.say(f"No {label} to mark {'DEL' if wanted else 'keep'}.")
        else:
            self.say(f"Marked {changed} {label} {'DEL' if wanted else 'keep'}: ^s writes, space undoes one.")

    def _ask_names(self, mode: str) -> None:
        from loratui.tui.screens.tag_name_dialog import TagNameDialog

        row = self.highlighted_row()
        tags = [r.tag for r in self.loaded.table.rows if r.count]
        self.app.push_screen(TagNameDialog(mode, row.tag if row is not None and row.count else "", tags),
                             partial(self._names_given, mode))

    def _names_given(self, mode: str, names) -> None:
        if names is None:
            self.say("Nothing renamed." if mode == "rename" else "Nothing added.")
            return
        if mode == "rename":
            self._start_write(rename={names.old: names.new})
        else:
            self._start_write(add=[names.new])

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.refresh_list()

    def changes_count(self) -> int:
        return len(self.marks) + (1 if self._trigger_changed() else 0)

    def _trigger_changed(self) -> bool:
        if self.loaded is None or self.loaded.error:
            return False
        return self.query_one("#trigger", Input).value.strip() != self.loaded.trigger

    @on(Input.Changed, "#trigger")
    def _trigger_typed(self) -> None:
        if self.loaded is not None and not self.loaded.error:
            self._show_pending()
            self._show_pictures()
            self._mark_trigger_rows()

    def _mark_trigger_rows(self) -> None:
        """Redraw the rows whose trig mark changed with the typed trigger (not the whole list per letter)."""
        tags = self.query_one(TagList)
        for index, row in enumerate(self.shown):
            marked = self._is_trigger(row)
            if marked != (row.key in self._trig_rows):
                self._trig_rows.symmetric_difference_update({row.key})
                tags.replace_option_prompt_at_index(index, self._prompt(row, index == tags.highlighted))

    @on(Input.Submitted, "#trigger")
    def _trigger_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(TagList).focus()

    # --- pictures and the caption preview -------------------------------------------------------------------

    def _show_pictures(self) -> None:
        if self.loaded is None or self.loaded.error:
            return
        from loratui.dataset.captions import tag_key

        pics = self.query_one(PictureList)
        box = self.query_one("#pics-box")
        row = self.highlighted_row()
        was = self.pictures[pics.highlighted].image if self.pictures and pics.highlighted is not None \
            and pics.highlighted < len(self.pictures) else None
        entries = self.loaded.entries
        self._holders = 0
        if row is None:
            self.pictures = list(entries)
            box.border_title = f"{len(entries)} pictures"
            pics.set_options([self._picture_prompt(e, False, False) for e in entries])
        else:
            holds = [e for e in entries if row.key in {tag_key(t) for t in e.tags}]
            rest = [e for e in entries if e not in holds]
            self.pictures = holds + rest
            title = f"{row.tag} {len(holds)}/{len(entries)}"
            box.border_title = title if len(title) <= 26 else title[:25] + "…"
            self._holders = len(holds)
            pics.set_options([self._picture_prompt(e, True, False) for e in holds] +
                             [self._picture_prompt(e, False, True) for e in rest])
        self._picture_cursor = -1
        if self.pictures:
            images = [e.image for e in self.pictures]
            pics.highlighted = images.index(was) if was in images and self.focused is pics else 0
        self._show_preview()

    def _picture_prompt(self, entry, holds: bool, missing: bool, current: bool = False) -> str:
        glyphs = self.wizard.glyphs
        text = (f"{glyphs.cursor if current else ' '}{glyphs.done if holds else ' '} {entry.image.name}"
                f"{' (without it)' if missing else ''}")
        return text.replace("[", r"\[")

    @on(OptionList.OptionHighlighted, "#pics")
    def _picture_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        pics = self.query_one(PictureList)
        tagged = self.highlighted_row() is not None
        for index in {self._picture_cursor, event.option_index}:
            if 0 <= index < len(self.pictures):
                holds = index < self._holders
                pics.replace_option_prompt_at_index(index, self._picture_prompt(
                    self.pictures[index], holds, tagged and not holds, index == event.option_index))
        self._picture_cursor = event.option_index
        self._show_preview()

    @on(OptionList.OptionSelected, "#pics")
    def _picture_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if not self.pictures or event.option_index >= len(self.pictures):
            return
        entry = self.pictures[event.option_index]
        if not entry.readable:
            self.say(f"{entry.caption.name}: cannot be read safely, so it is not edited here: fix it in a text "
                     "editor.", "!")
            return
        if self.changes_count():
            self.say("Write the pending changes first (^s), then edit one caption.", "!")
            return
        from loratui.dataset.captions import join_tags

        self._editing = entry
        field = self.query_one("#caption-edit", Input)
        field.value = join_tags(entry.tags)
        field.placeholder = f"tags of {entry.image.name}, separated by commas"
        self.add_class("-editing")
        field.focus()
        self.query_one("#meaning", Static).update(f" Caption of {entry.image.name} (tags, commas between): enter "
                                                  "saves, esc cancels"[:80])
        self.say(f"Editing {entry.caption.name}.")

    def _stop_editing(self) -> None:
        self._editing = None
        self.query_one("#meaning", Static).update(MEANING)
        self.remove_class("-editing")
        self.query_one(PictureList).focus()

    @on(Input.Submitted, "#caption-edit")
    def _caption_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        entry = self._editing
        if entry is None or self._busy:
            return
        self._busy = True
        self._save_caption(entry, event.value)

    @work(thread=True, exclusive=True, group="tags-write")
    def _save_caption(self, entry, text: str) -> None:
        from loratui.dataset.caption_edit import edit_caption
        from loratui.errors import LoratuiError

        project = self.wizard.project
        try:
            edit_caption(project, project.load(), entry.image, text, expected=entry.data)
        except (LoratuiError, OSError) as exc:
            self.app.call_from_thread(self._caption_saved, str(exc))
            return
        self.app.call_from_thread(self._caption_saved, "")

    def _caption_saved(self, error: str) -> None:
        self._busy = False
        if error:
            self.say(error, "✗")
            return
        name = self._editing.caption.name if self._editing else "caption"
        self._stop_editing()
        self.say(f"Wrote {name} (backup kept, ^z undoes).")
        self.reload()

    def _show_preview(self) -> None:
        preview = self.query_one("#preview", Static)
        pics = self.query_one(PictureList)
        full = self.query_one("#caption-full", Static)
        if not self.pictures or pics.highlighted is None or pics.highlighted >= len(self.pictures):
            preview.update("")
            full.update("")
            return
        entry = self.pictures[pics.highlighted]
        text = self.caption_preview(entry).replace("[", r"\[")
        if self.wide:
            box = self.query_one("#caption-box")
            box.border_title = entry.image.name if len(entry.image.name) <= 28 else entry.image.name[:27] + "…"
            full.update(text)
            self.query_one("#caption-picture", Picture).show(entry.image)
        else:
            preview.update(text)

    def caption_preview(self, entry) -> str:
        """The picture's caption as ^s will write it, and what it takes out."""
        from loratui.dataset.captions import apply_trigger_and_deletions, join_tags, split_tags, tag_key

        name = entry.image.name
        if not entry.readable:
            return f"{name}: cannot be read safely; ^s leaves it as it is"
        if not entry.has_caption:
            return f"{name}: no caption yet (^r tags it)"
        trigger = self.query_one("#trigger", Input).value.strip() or self.loaded.trigger
        deleted = [row.tag for row in self.loaded.table.rows if self.is_deleted(row)]
        old_trigger = split_tags(self.loaded.trigger)
        if trigger != self.loaded.trigger:
            deleted += old_trigger
        after = apply_trigger_and_deletions(entry.tags, trigger, deleted)
        kept = {tag_key(t) for t in after}
        removed = [t for t in entry.tags if tag_key(t) not in kept]
        lines = [f"{name} after ^s:", join_tags(after)]
        if removed:
            lines.append(f"removed: {join_tags(removed)}")
        return "\n".join(lines)

    # --- keys -----------------------------------------------------------------------------------------------

    def action_escape(self) -> None:
        if self._editing is not None:
            self._stop_editing()
            self.say("Caption left as it was.")
            return
        if self.filter_text:
            self.set_filter("")
            return
        focused = self.focused
        if isinstance(focused, (Input, PictureList)):
            self.query_one(TagList).focus()
            return
        self.wizard.action_back()

    def action_sort(self) -> None:
        self.sort_by = "name" if self.sort_by == "count" else "count"
        self.refresh_list()
        self.say(f"Tags sorted by {self.sort_by}.")

    def action_cycle_filter(self) -> None:
        self.filter_mode = FILTERS[(FILTERS.index(self.filter_mode) + 1) % len(FILTERS)]
        self.refresh_list()
        what = {"all": "all tags", "DEL": "DEL tags only", "keep": "keep tags only",
                "rare": f"rare tags only (on < {RARE_SHARE:.0%} of pictures)"}[self.filter_mode]
        self.say(f"Showing {what} (^f for the next).")

    def _trigger_or_refuse(self) -> str | None:
        value = self.query_one("#trigger", Input).value.strip()
        if not value:
            self.say("Trigger word: empty - type the word that calls up your LoRA in a prompt (e.g. the "
                     "character's name).", "✗")
            self.query_one("#trigger", Input).focus()
            return None
        return value

    def _dirty(self) -> bool:
        if self.loaded is None or self.loaded.error:
            return False
        table = self.loaded.table
        images = table.concept_images.get(self.loaded.concept, table.images)
        captioned = images - table.concept_uncaptioned.get(self.loaded.concept, 0)
        misplaced = table.trigger_first.get(self.loaded.concept, 0) < captioned
        return bool(self.changes_count()) or misplaced

    def action_write(self) -> None:
        self._next_after_write = False
        self._start_write()

    def _start_write(self, rename: dict[str, str] | None = None, add: list[str] | None = None) -> bool:
        """Start writing the pending changes (and a rename or an added tag from the palette, in the same step);
        False if refused (said why) or there is nothing to write."""
        if self.loaded is None or self._busy:
            self.say("Still reading the captions: try again in a moment.")
            return False
        if self.loaded.error:
            self.say(self.loaded.error, "✗")
            return False
        trigger = self._trigger_or_refuse()
        if trigger is None:
            return False
        if self.query_one(JobPanel).running:
            self.say("The tagger is still running: wait for it (or ^r cancels it), then ^s writes.", "!")
            return False
        if not self._dirty() and not rename and not add:
            self.say("Nothing to write: every caption already has the trigger first and no DEL tag.")
            return False
        rows = {row.key: row for row in self.loaded.table.rows}
        delete = [rows[k].tag for k, wanted in self.marks.items() if wanted and k in rows]
        keep = [rows[k].tag for k, wanted in self.marks.items() if not wanted and k in rows]
        self._busy = True
        self.say("Writing captions…")
        self._write(delete, keep, trigger, self.loaded.concept, rename or {}, add or [])
        return True

    @work(thread=True, exclusive=True, group="tags-write")
    def _write(self, delete: list[str], keep: list[str], trigger: str, concept: str, rename: dict[str, str],
               add: list[str]) -> None:
        from loratui.dataset.tag_edit_plan import TagEdit
        from loratui.dataset.tag_edits import edit_tags
        from loratui.errors import LoratuiError

        project = self.wizard.project
        try:
            config = project.load()
            several = len(config.concepts) > 1
            result = edit_tags(project, config, TagEdit(delete=delete, keep=keep, trigger=trigger,
                                                        concept=concept if several else None, rename=rename,
                                                        add=add))
        except (LoratuiError, OSError) as exc:
            self.app.call_from_thread(self._written, None, str(exc))
            return
        outcome = result.outcome
        if result.snapshot is None:
            message = "Nothing to write: the captions already read that way."
        else:
            message = f"Wrote {outcome.done} caption{'s' if outcome.done != 1 else ''} (backup kept, ^z undoes)."
        # What a rename or an added tag did, in the engine's words (``rename 'a' to 'b': in 12 captions; ...``).
        named = [note.split(";")[0] for note in result.notes if note.startswith(("rename ", "add "))]
        if named:
            joined = ", ".join(named)
            message = f"{joined[0].upper()}{joined[1:]}. {message}"
        if outcome.skipped:
            first = outcome.skipped[0]
            message += f" {len(outcome.skipped)} left as they are: {first.path.name} {first.message}"
        self.app.call_from_thread(self._written, message, "")

    def _written(self, message: str | None, error: str) -> None:
        self._busy = False
        if error:
            self._next_after_write = False
            self.say(error, "✗")
            return
        self.marks.clear()
        self.loaded.trigger = self.query_one("#trigger", Input).value.strip()
        self.say(message or "", "i")
        self.reload()
        if self._next_after_write:
            self._next_after_write = False
            self.wizard.go_to(self.step.number + 1)

    def action_undo(self) -> None:
        if self._busy:
            self.say("Still working on the captions: try again in a moment.")
            return
        if self.query_one(JobPanel).running:
            self.say("The tagger is still running: wait for it (or ^r cancels it), then ^z undoes.", "!")
            return
        self._busy = True
        self._undo()

    @work(thread=True, exclusive=True, group="tags-write")
    def _undo(self) -> None:
        from loratui.dataset.caption_backup import list_snapshots
        from loratui.dataset.tag_edits import undo
        from loratui.errors import LoratuiError

        project = self.wizard.project
        if not list_snapshots(project.state_dir):
            self.app.call_from_thread(self._undone, None, "Nothing to undo: no caption write or tagging run yet.")
            return
        try:
            restored = undo(project)
        except (LoratuiError, OSError) as exc:
            self.app.call_from_thread(self._undone, None, str(exc))
            return
        count = len(restored.written) + len(restored.removed)
        message = (f"Undone {restored.snapshot.reason or 'the last write'}: {count} caption"
                   f"{'s' if count != 1 else ''} put back.")
        self.app.call_from_thread(self._undone, message, "")

    def _undone(self, message: str | None, error: str) -> None:
        self._busy = False
        if error:
            self.say(error, "!" if message is None and error.startswith("Nothing") else "✗")
            return
        self.marks.clear()
        self.loaded = None  # the trigger word comes back from loratui.toml too
        self.say(message or "")
        self.reload()

    # --- the tagger -----------------------------------------------------------------------------------------

    def action_tagger(self) -> None:
        panel = self.query_one(JobPanel)
        if panel.running:
            panel.cancel()
            self.say("Stopping the tagger: it finishes the picture it is on and keeps what it wrote.")
            return
        if self.loaded is None or self.loaded.error:
            self.say(self.loaded.error if self.loaded else "Still reading the captions: try again in a moment.",
                     "✗" if self.loaded else "i")
            return
        if not self.loaded.entries:
            self.say(NO_PICTURES, "!")
            return
        from loratui.tui.screens.tagger_dialog import TaggerDialog

        loaded = self.loaded
        captions = sum(e.has_caption for e in loaded.entries)
        self.app.push_screen(TaggerDialog(loaded.model, loaded.general, loaded.character, loaded.merge, captions),
                             self._run_tagger)

    def _run_tagger(self, options) -> bool:
        if options is None:
            self.say("Tagger not started.")
            return False
        trigger = self.query_one("#trigger", Input).value.strip()
        if trigger and not self._trigger_changed():
            from dataclasses import replace

            options = replace(options, trigger=trigger)
        if self.query_one(JobPanel).start(options):
            model = options.model or (self.loaded.model if self.loaded else "") or "the tagger"
            self.say(f"Tagging with {Path(model).name}: ^r cancels; ^q leaves it running.")
            return True
        return False

    @on(JobPanel.Finished)
    def _job_finished(self, event: JobPanel.Finished) -> None:
        status = event.status
        if status.state != "done":
            self._next_after_tagging = False
        if status.state == "done":
            self.say(f"Tagging done: {status.message or 'captions written'}. Review the tags, then ^s.")
        else:
            level = "✗" if status.state in {"failed", "lost"} else "!"
            self.say(f"Tagging {status.state.upper()}{': ' + status.message if status.message else ''}", level)
        self.reload()

    @on(JobPanel.Failed)
    def _job_failed(self, event: JobPanel.Failed) -> None:
        self.say(event.message, "✗")

    # --- ^n ---------------------------------------------------------------------------------------------------

    def ready_for_next(self) -> bool:
        if self._trigger_or_refuse() is None:
            return False
        if self.query_one(JobPanel).running:
            self.say("The tagger is still running: wait for it, or ^r cancels it.", "!")
            return False
        loaded = self.loaded
        if loaded is not None and not loaded.error and loaded.entries \
                and not any(e.has_caption for e in loaded.entries):
            # Nothing tagged yet: run the tagger with the project's settings (no dialog: ^n means "do what is
            # left"), then come back here to write what is pending and move on.
            from loratui.jobs.command import TagOptions

            self._next_after_tagging = self._run_tagger(TagOptions())
            return False
        if self.loaded is not None and not self.loaded.error and self._dirty():
            self._next_after_write = True
            if self._start_write():
                return False
            self._next_after_write = False
            return False
        return True


def _read_project(project) -> Loaded:
    """Read loratui.toml, the tag table and each picture's caption (a thread worker runs this)."""
    from loratui.dataset.tag_table import read_dataset, tag_table
    from loratui.errors import LoratuiError

    try:
        config = project.load()
        table = tag_table(project, config)
        dataset = read_dataset(project, config)
    except (LoratuiError, OSError) as exc:
        return Loaded(table=None, error=str(exc))
    concept = config.concepts[0] if config.concepts else None
    tagging = config.tagging
    return Loaded(table, dataset.entries, concept.trigger if concept else "", concept.name if concept else "",
                  tagging.model, tagging.general_threshold, tagging.character_threshold, tagging.merge)
