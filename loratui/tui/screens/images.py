"""Step 1 Images (design §4.1): every picture of the concept's source folder, problems first, keep or EXCL.

The scan runs in a thread worker and rows appear as files are read; ``space`` toggles a picture's exclusion,
which is written at once to the concept's ``exclude`` list in loratui.toml (through ``project.update``) and
``^z`` undoes it. Letters filter the list by name; ``^f`` cycles problems first / all by name / EXCL only; ``^o``
changes the source folder; ``^r`` rescans; ``enter`` shows the picture on the whole screen; ``^t`` swaps the list
for a grid of thumbnails (the same cursor, filter and keys). With several concepts the palette's "Images: next
concept" shows the next one; every change and undo applies to the concept it was made on. With several
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from loratui.errors import LoratuiError
from loratui.tui.commands import Command, ListedCommands
from loratui.tui.screens.step_screen import StepScreen
from loratui.tui.widgets.picture import Picture
from loratui.tui.widgets.thumb_grid import ThumbGrid, Tile

if TYPE_CHECKING:
    from loratui.dataset.image_inspect import ImageReport
    from loratui.progress import CancelToken

VIEWS = ("problems first", "all by name", "EXCL only")
BATCH_S = 0.1  # rows found are handed to the screen at most 10 times a second (design §2.11)
NOTE_WIDTH = 12
NAME_WIDTH = 14  # name, size and note fit the list's 45 columns at 80x24 (a wider row would wrap)
WIDE_NAME_WIDTH = 20  # at 120x40 the list is 68 columns and adds the format and the file size


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _fit_words(text: str, width: int) -> str:
    """``text`` cut at its last ", " (or else word) that fits ``width``."""
    if len(text) <= width:
        return text
    for separator in (", ", " "):
        cut = text.rfind(separator, 0, width)
        if cut > width // 2:
            return text[:cut]
    return _fit(text, width)


def _home(path: Path) -> str:
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if text == home or text.startswith(home + "/") else text


def _kb(size: int) -> str:
    return f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


@dataclass
class Row:
    """One file of the source folder as the list shows it."""

    relpath: str
    path: Path
    file_size: int
    order: int  # natural name order
    excluded: bool = False
    image: ImageReport | None = None
    broken: str = ""  # the reason a file cannot be read
    group: str = ""  # near-duplicate group label (A, B ...)
    best: bool = False
    group_members: list[str] = field(default_factory=list)

    @property
    def scanned(self) -> bool:
        return self.image is not None or bool(self.broken)

    @property
    def state(self) -> str:
        if self.excluded:
            return "EXCL"
        return "✗" if self.broken else "keep"

    def shown_state(self, failed: str) -> str:
        """The state as the list and the grid write it, with ``failed`` the glyph of the mode (--ascii)."""
        return failed if self.broken and not self.excluded else self.state

    @property
    def size(self) -> str:
        if self.image is not None:
            return f"{self.image.width}x{self.image.height}"
        return "?" if self.broken else "..."

    @property
    def note(self) -> str:
        if self.broken:
            return "broken file"
        too_small = self.image is not None and self.image.scale < 1
        if self.group:  # the size is in the picture's facts; a mark says it is below the target too
            return f"dup {self.group}" + (" best" if self.best else "") + (" !" if too_small else "")
        return self.image.size_note if self.image is not None else ""

    def problem_rank(self) -> int:
        if self.broken:
            return 0
        if self.group:
            return 1
        if self.image is not None and self.image.scale < 1:
            return 2
        if self.image is not None and self.image.size_note:
            return 3
        return 4 if self.scanned else 5


# --- messages from the scan thread ---------------------------------------------------------------------------


class ScanListed(Message):
    def __init__(self, scan: int, source: Path, concept: str, concepts: int, rows: list[Row],
                 resolution: int, crop: str, exclude: list[str]) -> None:
        super().__init__()
        self.scan, self.source, self.concept, self.concepts = scan, source, concept, concepts
        self.rows, self.resolution, self.crop, self.exclude = rows, resolution, crop, exclude


class ScanFound(Message):
    def __init__(self, scan: int, found: list[tuple[str, object]], done: int, total: int) -> None:
        super().__init__()
        self.scan, self.found, self.done, self.total = scan, found, done, total


class ScanDone(Message):
    def __init__(self, scan: int, seconds: float) -> None:
        super().__init__()
        self.scan, self.seconds = scan, seconds


class ScanFailed(Message):
    def __init__(self, scan: int, message: str, source: Path | None, concept: str) -> None:
        super().__init__()
        self.scan, self.message, self.source, self.concept = scan, message, source, concept


# --- dialogs ---------------------------------------------------------------------------------------------------


class FolderDialog(ModalScreen[Path | None]):
    """``^o``: type the folder of the pictures; enter takes it when it is a folder, esc keeps the old one."""

    DEFAULT_CSS = """
    FolderDialog { align: center middle; }
    #folder-box { width: 72; height: auto; border: heavy $accent; background: $surface; padding: 0 1; }
    #folder-error { height: auto; }
    .-ascii #folder-box { border: ascii $accent; }
    """
    SCOPED_CSS = False
    BINDINGS = [Binding("escape", "close", "Cancel")]

    def __init__(self, current: Path | None, base: Path) -> None:
        super().__init__()
        self.current = current
        self.base = base

    def compose(self) -> ComposeResult:
        with Vertical(id="folder-box") as box:
            box.border_title = "Folder of your pictures"
            yield Static("Pictures: png, jpg, webp, bmp. loratui never changes this folder.")
            yield Input(str(self.current or ""), placeholder="~/pictures/akari", id="folder-path",
                        select_on_focus=False)
            yield Static("", id="folder-error")
            yield Static("enter uses this folder  esc keeps the old one")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self.query_one("#folder-error", Static).update(f"{self._x} Type a folder, or esc to keep the old one.")
            return
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = self.base / path
        if not path.is_dir():
            self.query_one("#folder-error", Static).update(
                f"{self._x} {_home(path)}: no such folder. Type another one.")
            return
        self.dismiss(path)

    @property
    def _x(self) -> str:
        glyphs = getattr(self.app, "glyphs", None)
        return glyphs.failed if glyphs is not None else "x"

    def action_close(self) -> None:
        self.dismiss(None)


class ZoomScreen(ModalScreen[None]):
    """``enter``: the highlighted picture on the whole screen; esc or enter closes it."""

    DEFAULT_CSS = """
    ZoomScreen { align: center middle; }
    #zoom-box { width: 100%; height: 100%; border: round $panel; }
    .-ascii #zoom-box { border: ascii $accent; }
    """
    SCOPED_CSS = False
    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, path: Path, title: str) -> None:
        super().__init__()
        self.path, self.title_text = path, title

    def compose(self) -> ComposeResult:
        with Vertical(id="zoom-box") as box:
            box.border_title = self.title_text
            box.border_subtitle = "esc closes"
            yield Picture(id="zoom-picture")

    def on_mount(self) -> None:
        self.call_after_refresh(lambda: self.query_one(Picture).show(self.path))

    def action_close(self) -> None:
        self.dismiss(None)


class ImagesCommands(ListedCommands):
    """The palette's bulk actions of this step (each one is one ^z)."""

    def _commands(self) -> list[Command]:
        screen = self.screen
        if not isinstance(screen, ImagesScreen):
            return []
        return [
            ("Exclude extra near-duplicates", "keep the best of each group", screen.action_exclude_duplicates),
            ("Exclude all too small", "pictures below the training size", screen.action_exclude_too_small),
            ("Include all pictures", "empty the exclude list", screen.action_include_all),
            ("Rescan the folder", "^r", screen.action_rescan),
            ("Choose the folder of pictures", "^o", screen.action_choose_folder),
            ("Show thumbnails / the list", "^t", screen.action_toggle_thumbnails),
            ("Images: next concept", "the pictures of the project's next concept folder", screen.action_next_concept),
        ]


# --- the screen -----------------------------------------------------------------------------------------------


class FileList(OptionList):
    """The rows; letters typed here go to the filter (design §8)."""


class ImagesScreen(StepScreen):
    HELP_TEXT = ("Choose the pictures to learn from: 20-50 clear pictures of one subject, nothing over the face, "
                 "varied poses and backgrounds, few near-copies. space leaves a picture out (EXCL) or takes it back; "
                 "the source files are never changed.")
    HELP_KEYS = (
        ("space", "keep / EXCL this picture"),
        ("type", "filter the list by name"),
        ("enter", "the picture on the whole screen"),
        ("^f", "show problems first / all by name / EXCL"),
        ("^o", "choose the folder of pictures"),
        ("^r", "rescan the folder"),
        ("^t", "thumbnails / the list"),
        ("^z", "undo the last keep/EXCL change"),
    )
    COMMANDS = {ImagesCommands}
    BINDINGS = [
        Binding("space", "toggle", "Keep/EXCL", key_display="space", id="images.toggle"),
        Binding("ctrl+o", "choose_folder", "Folder", key_display="^o", id="images.folder"),
        Binding("ctrl+f", "cycle_view", "Show", key_display="^f", id="images.view"),
        Binding("ctrl+r", "rescan", "Rescan", show=False, id="images.rescan"),
        Binding("ctrl+t", "toggle_thumbnails", "Thumbs", show=False, id="images.thumbs"),
        Binding("ctrl+z", "undo", "Undo", show=False, id="images.undo"),
        Binding("escape", "escape", "Back", key_display="esc", id="images.back"),
    ]
    DEFAULT_CSS = """
    #images-source { height: 1; }
    #images-main { height: 1fr; }
    #images-left { width: 50; border: heavy $accent; }
    #images-left:focus-within { border: heavy $accent; }
    #images-filter { height: 1; border: none; padding: 0 1; background: $surface; }
    #images-filter:focus { border: none; }
    #images-head { height: 1; color: $text-muted; }
    #images-list { height: 1fr; border: none; padding: 0; scrollbar-size-vertical: 1; }
    #images-list:focus { border: none; }
    #images-right { width: 1fr; border: round $panel; padding: 0 1; }
    #images-picture { height: 1fr; }
    #images-facts { height: 5; }
    #images-checks { height: 2; }
    #images-advice { display: none; height: auto; max-height: 14; border-top: solid $panel; }
    ImagesScreen.-wide #images-advice { display: block; }
    ImagesScreen.-wide #images-checks { display: none; }
    #images-grid-box { display: none; height: 1fr; border: heavy $accent; }
    ImagesScreen.-thumbs #images-grid-box { display: block; }
    ImagesScreen.-thumbs #images-main { display: none; }
    ImagesScreen.-wide #images-left { width: 68; }
    .-ascii #images-left, .-ascii #images-right, .-ascii #images-grid-box { border: ascii $accent; }
    """
    SCOPED_CSS = False  # every rule names this screen's own ids; unscoped so the app's -ascii class reaches them

    def __init__(self, step) -> None:
        super().__init__(step)
        self.rows: dict[str, Row] = {}
        self.shown: list[str] = []  # relpaths in list order
        self.view = 0
        self.exclude: list[str] = []
        self.source: Path | None = None
        self.concept = ""
        self.concepts = 0
        self.resolution, self.crop = 512, "focal"
        self.scan_id = 0
        self.scanning = False
        self.scanned_all = False
        self.cancel: CancelToken | None = None
        # (what was done, source before, exclude before, the concept's index)
        self.undo: list[tuple[str, str, list[str], int]] = []
        self.concept_index = 0  # which of the project's concepts is shown
        self.error = ""
        self.cursor_row = ""  # the row drawn with the cursor mark
        self.thumbs = False  # ^t: the grid of thumbnails stands in for the list and the preview

    # --- layout ---------------------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        yield Static(" Source ...", id="images-source")
        with Horizontal(id="images-main"):
            with Vertical(id="images-left"):
                yield Input(placeholder="type to filter by name", id="images-filter", select_on_focus=False)
                yield Static(self._head(), id="images-head")
                yield FileList(id="images-list")
            with Vertical(id="images-right"):
                yield Picture(id="images-picture")
                yield Static("", id="images-facts")
                yield Static("", id="images-advice")  # 120x40: every check, not only the first two lines
        with Vertical(id="images-grid-box"):
            yield ThumbGrid(id="images-grid", cursor_glyph=self.wizard.glyphs.cursor)
        yield Static("", id="images-checks")

    def on_mount(self) -> None:
        self.query_one(FileList).focus()
        self.start_scan()

    def refresh_frame(self) -> None:
        from textual.css.query import NoMatches

        try:
            super().refresh_frame()
        except NoMatches:
            pass  # the app's state timer fired while this screen was being taken down (quitting): nothing to draw

    def on_screen_resume(self) -> None:
        # Back from another step (or the palette): a changed resolution, crop mode or source means new facts.
        # (StepScreen's own handler redraws the frame: Textual calls the handler of each class.)
        project = self.wizard.project
        if project is None or self.scanning or not self.scanned_all:
            return
        try:
            config = project.load()
        except (LoratuiError, OSError):
            return  # the scan's own message says what is wrong the next time it runs
        if not config.concepts:
            return
        concept = self._concept_of(config)
        if (project.source_dir(concept) != self.source or config.dataset.resolution != self.resolution
                or config.dataset.crop != self.crop):
            self.start_scan()
        elif list(concept.exclude) != self.exclude:
            self._apply_exclude(list(concept.exclude))

    def on_unmount(self) -> None:
        if self.cancel is not None:
            self.cancel.cancel()

    # --- scanning -------------------------------------------------------------------------------------------

    def start_scan(self) -> None:
        project = self.wizard.project
        if project is None:
            return
        from loratui.progress import CancelToken

        if self.cancel is not None:
            self.cancel.cancel()
        self.scan_id += 1
        self.cancel = CancelToken()
        self.scanning, self.scanned_all = True, False
        self.say("scanning the source folder...")
        self._scan(project, self.scan_id, self.cancel)

    @work(thread=True, group="images-scan", exit_on_error=False)
    def _scan(self, project, scan: int, cancel: CancelToken) -> None:
        source: Path | None = None
        concept_name = ""
        try:
            from loratui.dataset.image_scan import scan_source, unsupported_pictures
            from loratui.dataset.image_stream import inspect_each
            from loratui.dataset.scan_cache import CACHE_NAME, ScanCache
            from loratui.progress import Cancelled

            started = time.monotonic()
            config = project.load()
            if not config.concepts:
                raise LoratuiError("loratui.toml has no concept: ^o chooses the folder with your pictures")
            concept = self._concept_of(config)
            concept_name = concept.name
            source = project.source_dir(concept)
            entries = scan_source(source, concept.recursive, concept.exclude, include_excluded=True)
            unsupported = unsupported_pictures(source, concept.recursive)
            rows = [Row(e.relpath, e.path, e.file_size, n, e.excluded) for n, e in enumerate(entries)]
            from loratui.dataset.image_scan import is_excluded, natural_key

            for note in unsupported:
                relpath = note.path.relative_to(source).as_posix()
                rows.append(Row(relpath, note.path, 0, 0, is_excluded(relpath, concept.exclude),
                                broken=note.message))
            rows.sort(key=lambda row: natural_key(row.relpath))
            for order, row in enumerate(rows):
                row.order = order
            self.post_message(ScanListed(scan, source, concept.name, len(config.concepts), rows,
                                         config.dataset.resolution, config.dataset.crop, list(concept.exclude)))
            batch: list[tuple[str, object]] = []
            last = time.monotonic()
            done = 0
            # Facts of unchanged files come from .loratui/ (reopening 500 pictures decodes none of them again).
            cache = ScanCache(project.state_dir / CACHE_NAME)
            try:
                for entry, found in inspect_each(entries, config.dataset.resolution, config.dataset.crop,
                                                 cancel=cancel, cache=cache):
                    done += 1
                    batch.append((entry.relpath, found))
                    if time.monotonic() - last >= BATCH_S:
                        self.post_message(ScanFound(scan, batch, done, len(entries)))
                        batch, last = [], time.monotonic()
            except Cancelled:
                return
            finally:
                cache.save()  # after a cancel too: what was decoded is kept
            self.post_message(ScanFound(scan, batch, done, len(entries)))
            self.post_message(ScanDone(scan, time.monotonic() - started))
            from loratui.dataset.thumbnails import THUMBS_DIR, prune_thumbnails

            prune_thumbnails(project.state_dir / THUMBS_DIR)  # here, in the thread: it lists the whole folder
        except LoratuiError as exc:
            self.post_message(ScanFailed(scan, str(exc), source, concept_name))
        except OSError as exc:
            self.post_message(ScanFailed(scan, f"{source}: cannot read it: {exc.strerror or exc}", source,
                                         concept_name))

    @on(ScanListed)
    def _listed(self, message: ScanListed) -> None:
        if message.scan != self.scan_id:
            return
        self.error = ""
        self.source, self.concept, self.concepts = message.source, message.concept, message.concepts
        self.resolution, self.crop, self.exclude = message.resolution, message.crop, message.exclude
        self.rows = {row.relpath: row for row in message.rows}
        self._show_source()
        self._fill()
        if not self.rows:
            self.scanning = False
            self.say(f"No pictures in {_home(message.source)}. ^o chooses another folder.", "!")

    @on(ScanFound)
    def _found(self, message: ScanFound) -> None:
        if message.scan != self.scan_id:
            return
        from loratui.progress import FileNote

        for relpath, found in message.found:
            row = self.rows.get(relpath)
            if row is None:
                continue
            if isinstance(found, FileNote):
                row.broken = found.message
            else:
                row.image = found  # type: ignore[assignment]
            self._redraw_row(relpath, relpath == self.cursor_row)  # in place: the list keeps its order
        self._draw_counts()
        if any(relpath == self.cursor_row for relpath, _ in message.found):
            self._draw_facts()
        self.say(f"scanning {message.done}/{message.total}")

    @on(ScanDone)
    def _done(self, message: ScanDone) -> None:
        if message.scan != self.scan_id:
            return
        from loratui.dataset.image_inspect import group_label
        from loratui.dataset.image_stream import label_duplicates

        self.scanning, self.scanned_all = False, True
        images = [row.image for row in sorted(self.rows.values(), key=lambda r: r.order) if row.image is not None]
        for row in self.rows.values():
            row.group, row.best, row.group_members = "", False, []
        for number, group in enumerate(label_duplicates(images)):
            names = [image.entry.relpath for image in group]
            for image in group:
                row = self.rows[image.entry.relpath]
                row.group, row.best, row.group_members = group_label(number), image.best_of_group, names
        self.shown = []
        self.query_one(FileList).highlighted = None  # a finished scan starts at the top: the worst problem
        self._fill()
        if not self.rows:
            self.say(f"No pictures in {_home(self.source) if self.source else 'the folder'}. ^o chooses another.", "!")
            return
        broken = [row.relpath for row in self.rows.values() if row.broken]
        # The time only where it is worth knowing (a big folder): a short scan reads the same every time.
        took = f" in {message.seconds:.0f} s" if message.seconds >= 2 else ""
        said = f"Scan done: {len(self.rows)} files{took}"
        if broken:
            said += f", {len(broken)} unreadable ({', '.join(broken[:2])}{', ...' if len(broken) > 2 else ''})"
        self.say(said, "!" if broken else "i")

    @on(ScanFailed)
    def _failed(self, message: ScanFailed) -> None:
        if message.scan != self.scan_id:
            return
        self.scanning = False
        self.error = message.message
        self.rows = {}
        self.source, self.concept = message.source, message.concept
        self._show_source()
        self._fill()
        self.say(message.message, "✗")

    # --- drawing --------------------------------------------------------------------------------------------

    def _show_source(self) -> None:
        source = _home(self.source) if self.source else "(none)"
        concept = self.concept + (f" ({self.concept_index + 1} of {self.concepts})" if self.concepts > 1 else "")
        files = f"{len(self.rows)} files"
        right = "^o change "
        width = max(40, (self.size.width or 80))
        rest = f"   concept {concept}   {files}"
        room = width - len(" Source ") - len(rest) - len(right) - 1
        if len(source) > room:  # the end of a long path says the most
            source = "..." + source[-max(1, room - 3):]
        left = _fit(f" Source {source}{rest}", width - len(right) - 1)
        self.query_one("#images-source", Static).update(left + " " * (width - len(left) - len(right)) + right)

    def _ordered(self) -> list[Row]:
        rows = list(self.rows.values())
        text = self.query_one("#images-filter", Input).value.strip().casefold()
        if text:
            rows = [row for row in rows if text in row.relpath.casefold()]
        if VIEWS[self.view] == "EXCL only":
            rows = [row for row in rows if row.excluded]
        if VIEWS[self.view] == "problems first" and self.scanned_all:
            return sorted(rows, key=lambda r: (r.problem_rank(), r.group, not r.best, r.order))
        return sorted(rows, key=lambda r: r.order)

    def _head(self) -> str:
        width = WIDE_NAME_WIDTH if self.wide else NAME_WIDTH
        extra = f"{'type':4} {'file KB':>7} " if self.wide else ""
        return f"  use   {'file':<{width}} {'size':>9} {extra}note"

    def wide_changed(self) -> None:
        self.query_one("#images-head", Static).update(self._head())
        if self.rows:
            self._fill(keep_order=True)
        else:
            self._draw_checks()

    def _prompt(self, row: Row, cursor: bool) -> Text:
        mark = self.wizard.glyphs.cursor if cursor else " "
        state = row.shown_state(self.wizard.glyphs.failed)
        note = row.note if len(row.note) <= NOTE_WIDTH else row.note.replace("small: ", "small ")
        width = WIDE_NAME_WIDTH if self.wide else NAME_WIDTH
        extra = ""
        if self.wide:  # 120x40: the format and the file size too
            kind = row.image.format[:4] if row.image is not None else ""
            extra = f"{kind:4} {row.file_size / 1024:7.0f} "
        line = (f"{mark} {state:<5} {_fit(row.relpath, width):<{width}} {row.size:>9} {extra}"
                f"{_fit(note, NOTE_WIDTH)}").rstrip()  # one line per row: a wrapped note looks like a row
        return Text(line, style="dim" if row.excluded else ("red" if row.broken else ""), no_wrap=True,
                    overflow="crop")

    def _fill(self, keep_order: bool = False) -> None:
        """(Re)draw the list; the highlighted file stays highlighted. ``keep_order`` only redraws the rows."""
        listing = self.query_one(FileList)
        current = self._current()
        current_path = current.relpath if current else None
        if keep_order and [r for r in self.shown if r in self.rows] == self.shown and self.shown:
            ordered = [self.rows[relpath] for relpath in self.shown]
        else:
            ordered = self._ordered()
        self.shown = [row.relpath for row in ordered]
        highlighted = self.shown.index(current_path) if current_path in self.shown else (0 if ordered else None)
        listing.clear_options()
        if ordered:
            listing.add_options([Option(self._prompt(row, index == highlighted), id=row.relpath)
                                 for index, row in enumerate(ordered)])
            listing.highlighted = highlighted
            self.cursor_row = ordered[highlighted].relpath if highlighted is not None else ""
        else:
            listing.add_option(Option(self._empty_text(), disabled=True))
        self._draw_counts()
        self._draw_checks()
        self._draw_facts()
        if self.thumbs:
            self._fill_grid()

    def _empty_text(self) -> str:
        if self.error:
            return f"{self.wizard.glyphs.failed} {self.error}"
        if self.scanning and not self.rows:
            return "scanning..."
        if self.rows:
            if self.query_one("#images-filter", Input).value.strip():
                return "No file matches the filter. esc clears it."
            return "No excluded pictures. ^f shows all."
        return ("No pictures yet. ^o chooses the folder with your pictures (png, jpg, webp, bmp). 20-50 clear "
                "pictures of one subject work best.")

    def _draw_counts(self) -> None:
        rows = list(self.rows.values())
        keep = sum(1 for row in rows if not row.excluded and not row.broken)
        excl = sum(1 for row in rows if row.excluded)
        broken = sum(1 for row in rows if row.broken and not row.excluded)
        box = self.query_one("#images-left")
        title = f"{keep} keep  {excl} EXCL" + (f"  {broken} broken" if broken else "")
        text = self.query_one("#images-filter", Input).value.strip()
        if text:
            title += f"  {len(self.shown)} shown"
        box.border_title = title
        box.border_subtitle = VIEWS[self.view]

    def _draw_checks(self) -> None:
        checks = self.query_one("#images-checks", Static)
        side = self.query_one("#images-advice", Static)
        if not self.scanned_all:
            checks.update(" ...checks follow when the scan is done" if self.scanning else "")
            side.update("...checks follow when the scan is done" if self.scanning else "")
            return
        from loratui.dataset.image_inspect import GOOD_SCALE, IDEAL_IMAGES, MIN_IMAGES
        from loratui.dataset.image_stream import advice_for_kept
        from loratui.progress import FileNote

        glyphs = self.wizard.glyphs
        kept = [row for row in self.rows.values() if not row.excluded]
        images = [row.image for row in kept if row.image is not None]
        count = len(images)
        low, high = IDEAL_IMAGES
        mark = glyphs.done if count >= MIN_IMAGES else "!"
        parts = [f"{mark} {count} picture{'s' if count != 1 else ''} ({MIN_IMAGES}+ needed, {low}-{high} ideal)"]
        small = sum(1 for image in images if image.scale < GOOD_SCALE)
        if small:
            parts.append(f"! {small} under {GOOD_SCALE:.0f}x {self.resolution} px")
        broken = sum(1 for row in kept if row.broken)
        if broken:
            parts.append(f"{glyphs.failed} {broken} unreadable")
        first = " " + "  ".join(parts)
        all_images = [row.image for row in self.rows.values() if row.image is not None]
        left_out = {row.relpath for row in self.rows.values() if row.excluded}
        groups: dict[str, list[ImageReport]] = {}
        for row in sorted(self.rows.values(), key=lambda r: (not r.best, r.order)):
            if row.group and row.image is not None:
                groups.setdefault(row.group, []).append(row.image)
        advice = advice_for_kept(all_images, [FileNote(row.path, row.broken) for row in kept if row.broken],
                                 list(groups.values()), left_out)
        tip = next((a.message for a in advice if a.level == "warn" and "picture" not in a.message.split(":")[0]
                    and "unreadable" not in a.message), advice[-1].message)
        if not self.rows:
            tip = "no pictures in this folder: ^o chooses the one with your pictures"
        elif count == 0:
            tip = "no picture is kept: space takes one back (^n needs at least one)"
        mark = "!" if any(a.message == tip and a.level == "warn" for a in advice) else "i"
        second = _fit_words(f" {mark} {tip[0].upper() + tip[1:]}", 78) + "."
        checks.update(_fit(first, 79) + "\n" + second)
        # 120x40: the side column has room for every check in full, one per line (wrapped by the Static).
        marks = {"ok": glyphs.done, "warn": "!"}
        lines = [f"{marks.get(item.level, 'i')} {item.message[0].upper() + item.message[1:]}." for item in advice]
        if not self.rows or count == 0:
            lines = [f"! {tip[0].upper() + tip[1:]}."]
        side.update("\n".join(lines))

    def _current(self) -> Row | None:
        listing = self.query_one(FileList)
        index = listing.highlighted
        if index is None or index >= len(self.shown):
            return None
        return self.rows.get(self.shown[index])

    def _draw_facts(self) -> None:
        row = self._current()
        right = self.query_one("#images-right")
        facts = self.query_one("#images-facts", Static)
        picture = self.query_one(Picture)
        if row is None:
            right.border_title = ""
            facts.update("")
            picture.show(None)
            return
        right.border_title = _fit(row.relpath, 26)
        glyphs = self.wizard.glyphs
        if row.broken:
            picture.show(None)
            facts.update(f"{glyphs.failed} broken file: {row.broken}")
            return
        picture.show(row.path)
        if row.image is None:
            facts.update(f"{_kb(row.file_size)}  reading...")
            return
        image = row.image
        lines = [f"{image.width}x{image.height}  {image.format}  {_kb(row.file_size)}"]
        verdict = glyphs.done if image.scale >= 2 else "! 2x asked" if image.scale >= 1 else "! enlarged"
        lines.append(f"{image.scale:.1f}x of {self.resolution} px {verdict}")
        if row.group:
            others = [name for name in row.group_members if name != row.relpath]
            lines.append(f"dup {row.group} with {', '.join(others)}")
            lines.append("the best of them (largest)" if row.best else f"best: {row.group_members[0]}")
        lines.append("EXCL: left out of training" if row.excluded else "keep: used for training")
        width = max(10, facts.size.width or 26)
        facts.update("\n".join(_fit(line, width) for line in lines))

    def _redraw_row(self, relpath: str, cursor: bool) -> None:
        if relpath in self.shown and relpath in self.rows:
            self.query_one(FileList).replace_option_prompt_at_index(self.shown.index(relpath),
                                                                    self._prompt(self.rows[relpath], cursor))

    @on(OptionList.OptionHighlighted, "#images-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        current = self._current()
        if self.cursor_row and (current is None or current.relpath != self.cursor_row):
            self._redraw_row(self.cursor_row, False)
        if current is not None:
            self._redraw_row(current.relpath, True)
        self.cursor_row = current.relpath if current else ""
        self._draw_facts()
        if self.thumbs and event.option_index is not None:
            self.query_one(ThumbGrid).set_cursor(event.option_index)
            self._draw_grid_titles()

    @on(OptionList.OptionSelected, "#images-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._zoom()

    def _zoom(self) -> None:
        row = self._current()
        if row is None:
            return
        if row.broken:
            self.say(f"{row.relpath} cannot be shown: {row.broken}", "!")
            return
        self.app.push_screen(ZoomScreen(row.path, row.relpath))

    # --- filter ---------------------------------------------------------------------------------------------

    def on_key(self, event) -> None:
        listing = self.query_one(FileList)
        if self.thumbs and self.focused is self.query_one(ThumbGrid):
            self._grid_key(event)
            return
        if self.focused is listing and event.is_printable and event.character and event.character not in " ?":
            field = self.query_one("#images-filter", Input)
            field.focus()
            field.insert_text_at_cursor(event.character)
            event.stop()
            event.prevent_default()
        elif self.focused is self.query_one("#images-filter", Input) and event.key in ("down", "enter"):
            listing.focus()
            event.stop()
            event.prevent_default()

    @on(Input.Changed, "#images-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._fill()

    # --- actions --------------------------------------------------------------------------------------------

    def action_escape(self) -> None:
        field = self.query_one("#images-filter", Input)
        if field.value:
            field.value = ""
            (self.query_one(ThumbGrid) if self.thumbs else self.query_one(FileList)).focus()
            self.say("Filter cleared.")
        elif self.thumbs:
            self.action_toggle_thumbnails()
        elif self.focused is field:
            self.query_one(FileList).focus()
        else:
            self.wizard.action_back()

    # --- thumbnails -----------------------------------------------------------------------------------------

    def action_toggle_thumbnails(self) -> None:
        self.thumbs = not self.thumbs
        self.set_class(self.thumbs, "-thumbs")
        if self.thumbs:
            self._fill_grid()
            self.query_one(ThumbGrid).focus()
            self.say("Thumbnails: arrows move, enter zooms; ^t or esc: the list.")
        else:
            self.query_one(FileList).focus()
            self.say("The list again. ^t shows thumbnails.")

    def _fill_grid(self) -> None:
        failed = self.wizard.glyphs.failed
        tiles = []
        for relpath in self.shown:
            row = self.rows[relpath]
            state = row.shown_state(failed)
            tiles.append(Tile(None if row.broken else row.path, f"{state} {relpath}", dim=row.excluded,
                              why=f"{failed} broken file" if row.broken else ""))
        highlighted = self.query_one(FileList).highlighted
        self.query_one(ThumbGrid).set_tiles(tiles, highlighted if highlighted is not None and tiles else 0)
        self._draw_grid_titles()

    def _draw_grid_titles(self) -> None:
        box = self.query_one("#images-grid-box")
        left = self.query_one("#images-left")
        box.border_title = str(left.border_title or "")
        grid = self.query_one(ThumbGrid)
        per_page = grid.layout_now.per_page
        pages = max(1, -(-len(grid.tiles) // per_page))
        row = self._current()
        facts = ""
        if row is not None:
            facts = f"{row.relpath}  {row.size}  {row.note}".rstrip() + "  "
        width = max(20, (box.size.width or 80) - 6)
        box.border_subtitle = _fit(f"{facts}page {grid.cursor // per_page + 1}/{pages}", width)

    @on(ThumbGrid.Moved)
    def _grid_moved(self, event: ThumbGrid.Moved) -> None:
        listing = self.query_one(FileList)
        if event.index < len(self.shown):
            listing.highlighted = event.index  # the list's cursor is the one every action reads

    def _grid_key(self, event) -> None:
        field = self.query_one("#images-filter", Input)
        if event.key == "enter":
            self._zoom()
        elif event.key == "backspace" and field.value:
            field.value = field.value[:-1]
        elif event.is_printable and event.character and event.character not in " ?":
            field.value += event.character
            self.say(f"Filter: {field.value} (esc clears it)")
        else:
            return
        event.stop()
        event.prevent_default()

    def action_cycle_view(self) -> None:
        self.view = (self.view + 1) % len(VIEWS)
        self._fill()
        self.say(f"Showing {VIEWS[self.view]}. ^f shows {VIEWS[(self.view + 1) % len(VIEWS)]}.")

    def action_rescan(self) -> None:
        self.start_scan()

    def action_toggle(self) -> None:
        row = self._current()
        if row is None:
            self.say("No picture here to keep or leave out.", "!")
            return
        if row.excluded and row.relpath not in self.exclude:
            from loratui.dataset.image_scan import is_excluded

            pattern = next((p for p in self.exclude if is_excluded(row.relpath, [p])), "?")
            self.say(f"{row.relpath} is left out by the pattern '{pattern}' in loratui.toml: edit it there.", "!")
            return
        wanted = not row.excluded
        what = f"{row.relpath} {'EXCL' if wanted else 'keep'}"
        self._change_exclude(what, lambda exclude: (exclude.append(row.relpath) if wanted
                                                    else exclude.remove(row.relpath)))

    def _bulk(self, what: str, relpaths: list[str], exclude: bool) -> None:
        if not relpaths:
            self.say(f"Nothing to do: {what.lower()} changes no picture.")
            return

        def change(patterns: list[str]) -> None:
            if exclude:
                patterns.extend(p for p in relpaths if p not in patterns)
            else:
                patterns.clear()

        self._change_exclude(f"{what}: {len(relpaths)} picture{'s' if len(relpaths) != 1 else ''}", change)

    def action_exclude_duplicates(self) -> None:
        self._bulk("Exclude extra near-duplicates",
                   [row.relpath for row in self.rows.values() if row.group and not row.best and not row.excluded],
                   True)

    def action_exclude_too_small(self) -> None:
        self._bulk("Exclude all too small", [row.relpath for row in self.rows.values()
                                             if row.image is not None and row.image.scale < 1 and not row.excluded],
                   True)

    def action_include_all(self) -> None:
        self._bulk("Include all", [row.relpath for row in self.rows.values() if row.excluded], False)

    def _change_exclude(self, what: str, change) -> None:
        project = self.wizard.project
        if project is None:
            return
        before: dict[str, object] = {}
        index = self.concept_index

        def edit(config) -> None:
            if len(config.concepts) <= index:
                raise LoratuiError("loratui.toml has no such concept any more: ^o chooses the folder of pictures")
            concept = config.concepts[index]
            before["source"], before["exclude"] = concept.source, list(concept.exclude)
            change(concept.exclude)

        try:
            config = project.update(edit)
        except (LoratuiError, OSError, ValueError) as exc:
            self.say(f"loratui.toml was not changed: {exc}", "✗")
            return
        self.undo.append((what, str(before["source"]), list(before["exclude"]), index))  # type: ignore[arg-type]
        self._apply_exclude(list(config.concepts[index].exclude))
        self.say(f"{what} (saved in loratui.toml, ^z undoes)")

    def _apply_exclude(self, exclude: list[str]) -> None:
        from loratui.dataset.image_scan import is_excluded

        self.exclude = exclude
        for row in self.rows.values():
            row.excluded = is_excluded(row.relpath, exclude)
        self._fill(keep_order=True)

    def action_undo(self) -> None:
        if not self.undo:
            self.say("Nothing to undo.")
            return
        project = self.wizard.project
        if project is None:
            return
        what, source, exclude, index = self.undo[-1]
        moved: list[bool] = []

        def edit(config) -> None:
            concept = config.concepts[index]
            moved.append(concept.source != source)
            concept.source, concept.exclude = source, list(exclude)

        try:
            config = project.update(edit)
        except (LoratuiError, OSError, ValueError, IndexError) as exc:
            self.say(f"Could not undo ({what}): {exc}", "✗")
            return
        self.undo.pop()
        self.say(f"Undone: {what} (loratui.toml is as before)")
        if index != self.concept_index:  # made on another concept: show that one, as it is now
            self.concept_index = index
            self.start_scan()
        elif moved and moved[0]:
            self.start_scan()
        else:
            self._apply_exclude(list(config.concepts[index].exclude))

    def _concept_of(self, config):  # noqa: ANN001, ANN202
        """The shown concept (the index kept in range when loratui.toml lost concepts meanwhile)."""
        self.concept_index = min(self.concept_index, len(config.concepts) - 1)
        return config.concepts[self.concept_index]

    def action_next_concept(self) -> None:
        if self.concepts < 2:
            self.say("This project has one concept. `loratui new` or loratui.toml adds another.")
            return
        self.concept_index = (self.concept_index + 1) % self.concepts
        self.query_one("#images-filter", Input).value = ""
        self.query_one(FileList).highlighted = None
        self.start_scan()

    def action_choose_folder(self) -> None:
        project = self.wizard.project
        if project is None:
            return
        self.app.push_screen(FolderDialog(self.source, project.root), self._folder_chosen)

    def _folder_chosen(self, path: Path | None) -> None:
        if path is None:
            self.say("The folder stays as it was.")
            return
        project = self.wizard.project
        if project is None:
            return
        resolved, root = path.resolve(), project.root.resolve()
        if resolved == root or resolved in root.parents:
            self.say(f"{_home(path)} holds the project itself: choose the folder of your pictures beside it.", "✗")
            return
        try:
            stored = resolved.relative_to(root).as_posix()
        except ValueError:
            stored = str(resolved)
        before: dict[str, object] = {}
        index = self.concept_index

        def edit(config) -> None:
            if len(config.concepts) <= index:
                raise LoratuiError("loratui.toml has no such concept: create one with `loratui new`")
            concept = config.concepts[index]
            before["source"], before["exclude"] = concept.source, list(concept.exclude)
            concept.source = stored
            concept.exclude = []  # names of the old folder mean nothing in the new one (^z brings them back)

        try:
            project.update(edit)
        except (LoratuiError, OSError, ValueError) as exc:
            self.say(f"The folder was not changed: {exc}", "✗")
            return
        if before["source"] == stored:
            self.undo.append(("source unchanged", str(before["source"]), list(before["exclude"]), index))  # type: ignore
        else:
            self.undo.append((f"source {stored}", str(before["source"]), list(before["exclude"]), index))  # type: ignore
        self.say(f"Source is now {_home(resolved)} (saved in loratui.toml, ^z undoes); scanning it.")
        self.start_scan()

    def ready_for_next(self) -> bool:
        if self.scanned_all and not any(not row.excluded and row.image is not None for row in self.rows.values()):
            self.say("No picture is kept: space takes one back, ^o another folder." if self.rows
                     else "No pictures here yet: ^o chooses their folder.", "✗")
            return False
        return True
