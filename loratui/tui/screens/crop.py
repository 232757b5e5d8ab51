"""Step 2 Crop (design §4.2): the training resolution and crop mode, every kept picture with its crop box drawn
over it (box characters, visible without colour), the box edited by hand (saved in loratui.toml as the picture's
``dataset.crop_boxes`` entry), the prepared result, and prepare run as a `loratui prepare` job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from loratui.config import CROP_MODES
from loratui.errors import LoratuiError
from loratui.tui.screens.step_screen import StepScreen
from loratui.tui.widgets.job_panel import JobPanel
from loratui.tui.widgets.picture import Picture

if TYPE_CHECKING:
    from loratui.config import Config
    from loratui.dataset.crop_view import CropPicture

MODE_WORDS = {"focal": "focal: faces", "center": "centre", "none": "none: buckets"}
MODE_HELP = {
    "focal": "focal: centred on faces and detail",
    "center": "centre: a square from the middle",
    "none": "none: whole pictures, in buckets",
}
FILTERS = ("all", "manual", "upscaled", "no face")
NAME_WIDTH = 14  # with state, mark and flag: one line in the 26 columns of the list at 80x24
IDLE_HINT = " i enter edits the box, ^t prepared result, ^f filter, ^r prepare, ^n go on."


def _found(method: str) -> str:
    """The crop method as the 120-column list names it: face, detail, centre, manual."""
    if method.startswith("face"):
        return "face"
    return {"saliency": "detail", "center": "centre", "bucket": "whole"}.get(method, method[:8])


@dataclass
class PlanInfo:
    """Where a picture is cut, for the list and the drawing: from prepare's record or planned here."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]  # output size
    source_size: tuple[int, int]
    method: str
    error: str = ""

    @property
    def upscale(self) -> float:
        return max(self.size[0] / max(1, self.box[2] - self.box[0]), self.size[1] / max(1, self.box[3] - self.box[1]))


class ModeChoice(Static, can_focus=True):
    """The crop mode as written radio buttons, `(◉) focal  ( ) centre  ( ) none`; left/right/space change it."""

    BINDINGS = [
        Binding("left", "step(-1)", "Mode", show=False),
        Binding("right", "step(1)", "Mode", show=False),
    ]

    def __init__(self, mode: str, on: str, *, id: str | None = None) -> None:  # noqa: A002
        self.mode, self.on = mode, on
        super().__init__(self._text(), id=id)

    def _text(self) -> str:
        return "Mode " + "  ".join(f"({self.on if m == self.mode else ' '}) {MODE_WORDS[m]}" for m in CROP_MODES)

    def show_mode(self) -> None:
        self.update(self._text())

    def action_step(self, delta: int) -> None:
        mode = CROP_MODES[(CROP_MODES.index(self.mode) + delta) % len(CROP_MODES)]
        screen = self.screen
        if isinstance(screen, CropScreen) and screen.set_mode(mode):
            self.mode = mode
            self.show_mode()


class CropPreview(Vertical, can_focus=False):
    """The highlighted picture; focused only while its box is edited (enter on the list)."""

    BINDINGS = [
        Binding("up", "move(0,-1)", "Move", key_display="arrows"),
        Binding("down", "move(0,1)", show=False),
        Binding("left", "move(-1,0)", show=False),
        Binding("right", "move(1,0)", show=False),
        Binding("plus,equals_sign", "size(1)", "Size", key_display="+-"),
        Binding("minus", "size(-1)", show=False),
        Binding("0", "auto", "Auto"),
        Binding("enter,escape", "done", "Done", key_display="esc"),
    ]

    def _crop(self) -> CropScreen:
        screen = self.screen
        assert isinstance(screen, CropScreen)
        return screen

    def action_move(self, dx: int, dy: int) -> None:
        self._crop().move_box(dx, dy)

    def action_size(self, steps: int) -> None:
        self._crop().resize_box(steps)

    def action_auto(self) -> None:
        self._crop().auto_box()

    def action_done(self) -> None:
        self._crop().finish_edit()


class CropScreen(StepScreen):
    HELP_TEXT = ("Cut every picture to the training size. The box on the picture is what prepare keeps; enter "
                 "edits it by hand (saved in loratui.toml), ^r prepares the dataset.")
    HELP_KEYS = (
        ("enter", "edit the highlighted picture's crop box"),
        ("arrows", "move the box by 2% of the picture (editing)"),
        ("+ -", "resize the box by 5% (editing)"),
        ("0", "put the box back to automatic (editing)"),
        ("enter, esc", "done editing: the box is saved in loratui.toml"),
        ("^z", "undo the last box change"),
        ("^r", "prepare the dataset (again: only what changed); cancel while it runs"),
        ("^t", "the picture with its box <-> the prepared result"),
        ("^f", "show all / manual / upscaled / no face found"),
        ("tab", "resolution -> mode -> pictures"),
    )
    BINDINGS = [
        Binding("ctrl+r", "prepare", "Prepare", key_display="^r", id="crop.prepare"),
        Binding("ctrl+t", "toggle_view", "Result", show=False, id="crop.view"),
        Binding("ctrl+f", "filter", "Filter", show=False, id="crop.filter"),
        Binding("ctrl+z", "undo", "Undo", show=False, id="crop.undo"),
        Binding("escape", "escape", "Back", show=False, id="crop.back"),
    ]
    DEFAULT_CSS = """
    CropScreen #crop-top { height: 1; }
    CropScreen #crop-top Static { width: auto; }
    CropScreen #resolution { width: 6; }
    CropScreen #resolution.-invalid { text-style: reverse; }
    CropScreen #mode { margin-left: 3; }
    CropScreen #mode:focus { text-style: bold reverse; }
    CropScreen #crop-main { height: 1fr; }
    CropScreen #crop-left { width: 31; height: 1fr; }
    CropScreen #crop-list { height: 1fr; border: round $panel; padding: 0; scrollbar-size-vertical: 1; }
    CropScreen #crop-list:focus { border: heavy $accent; }
    CropScreen.-wide #crop-left { width: 47; }
    CropScreen #crop-histogram { display: none; height: auto; max-height: 9; border: round $panel; }
    CropScreen.-wide #crop-histogram { display: block; }
    CropScreen #crop-preview { width: 1fr; height: 1fr; border: round $panel; }
    CropScreen #crop-preview.-editing { border: heavy $accent; }
    CropScreen #crop-buckets { height: auto; max-height: 4; }
    CropScreen #crop-info { height: 1; }
    CropScreen #crop-summary, CropScreen #crop-hint { height: 1; }
    CropScreen .-ascii-box { border: ascii $panel; }
    """

    def __init__(self, step) -> None:  # noqa: ANN001
        super().__init__(step)
        self.pictures: list[CropPicture] = []
        self.shown: list[CropPicture] = []
        self.plans: dict[str, PlanInfo] = {}
        self.filter = 0
        self.name_filter = ""  # letters typed on the list filter it by name
        self.show_result = False
        self.editing: str | None = None  # key of the picture whose box is being edited
        self.edit_box: tuple[int, int, int, int] | None = None
        self.edit_changed = False
        self.undo_stack: list[tuple[str, list[int] | None]] = []
        self.advance_when_done = False
        self._positions: dict[str, int] = {}  # picture key -> its row in the list
        self._cursor_key = ""  # the row drawn with the cursor mark
        self._summary_due = False
        self.config: Config | None = None

    # --- layout ---------------------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        project = self.wizard.project
        assert project is not None
        self.config = self._load()
        resolution = str(self.config.dataset.resolution) if self.config else "512"
        mode = self.config.dataset.crop if self.config else "focal"
        on = self.wizard.glyphs.on
        with Horizontal(id="crop-top"):
            yield Static("Resolution ")
            yield Input(resolution, id="resolution", compact=True, max_length=5, restrict=r"[0-9]*")
            yield Static(" px")
            yield ModeChoice(mode, on, id="mode")
        with Horizontal(id="crop-main"):
            with Vertical(id="crop-left"):
                yield OptionList(id="crop-list")
                yield Static("", id="crop-histogram")  # 120x40: how many pictures go to each output size
            with CropPreview(id="crop-preview"):
                yield Static("", id="crop-buckets")
                yield Picture(id="crop-picture")
                yield Static("", id="crop-info")
        yield Static("", id="crop-summary")
        yield JobPanel(project, "prepare", id="crop-job")
        yield Static(IDLE_HINT, id="crop-hint")

    def on_mount(self) -> None:
        if self.wizard.ascii_only:
            for box in self.query("#crop-list, #crop-preview, #crop-histogram"):
                box.add_class("-ascii-box")
        self.query_one("#crop-list", OptionList).focus()
        self.reload()

    def _load(self) -> Config | None:
        project = self.wizard.project
        try:
            return project.load() if project else None
        except LoratuiError as exc:
            self.call_after_refresh(self.say, f"loratui.toml: {str(exc).splitlines()[0]}", "✗")
            return None

    # --- the list -------------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the settings and the pictures again (after a prepare, a settings change)."""
        self.config = self._load()
        self._scan()

    @work(thread=True, exclusive=True, group="crop-scan", exit_on_error=False)
    def _scan(self) -> None:
        from loratui.dataset.crop_view import crop_pictures

        project, config = self.wizard.project, self.config
        if project is None or config is None:
            return
        try:
            pictures = crop_pictures(project, config)
        except (LoratuiError, OSError) as exc:
            self.app.call_from_thread(self.say, f"{exc}", "✗")
            return
        self.app.call_from_thread(self._scanned, pictures)

    def _scanned(self, pictures: list[CropPicture]) -> None:
        self.pictures = pictures
        self.plans = {}
        for picture in pictures:
            plan = picture.prepared_plan
            if plan is not None and picture.record and picture.record.get("source_size"):
                width, height = picture.record["source_size"]
                self.plans[picture.key] = PlanInfo(plan.box, plan.size, (width, height), plan.method)
        self._fill_list()
        self._plan_missing()

    def _matches(self, picture: CropPicture) -> bool:
        if self.name_filter and self.name_filter.lower() not in picture.relpath.lower():
            return False
        which = FILTERS[self.filter]
        plan = self.plans.get(picture.key)
        if which == "manual":
            return picture.manual is not None
        if which == "upscaled":
            return plan is not None and plan.upscale > 1 + 1e-6
        if which == "no face":
            return plan is not None and plan.method == "centre"
        return True

    def _row(self, picture: CropPicture, cursor: bool) -> str:
        plan = self.plans.get(picture.key)
        state = "MANUAL" if picture.manual else "auto"
        mark = self.wizard.glyphs.done if picture.up_to_date else " "
        if plan is None:
            flag = "..."
        elif plan.error:
            flag = self.wizard.glyphs.failed
        else:
            flag = "UP" if plan.upscale > 1 + 1e-6 else ""
        name = picture.relpath if len(picture.relpath) <= NAME_WIDTH else picture.relpath[:NAME_WIDTH - 1] + "~"
        line = f"{self.wizard.glyphs.cursor if cursor else ' '} {state:<6} {mark} {name:<{NAME_WIDTH}} {flag:3}"
        if self.wide and plan is not None and not plan.error:
            # 120x40 (design §4.2): how much the crop is scaled, and how the box was found.
            # "/4.0": the box is 4 times the training size, shrunk; "x1.3": enlarged (UP).
            scale = (plan.box[2] - plan.box[0]) / max(1, plan.size[0])
            factor = f"/{scale:.1f}" if scale >= 1 else f"x{1 / scale:.1f}"
            line += f" {factor:>5} {_found(plan.method):8}"
        return line.rstrip()

    def wide_changed(self) -> None:
        if self.shown:
            self._refresh_rows()
        self._show_histogram()

    def _fill_list(self) -> None:
        listing = self.query_one("#crop-list", OptionList)
        current = self.current()
        self.shown = [p for p in self.pictures if self._matches(p)]
        self._positions = {p.key: index for index, p in enumerate(self.shown)}
        self._cursor_key = ""
        listing.clear_options()
        listing.add_options([Option(self._row(p, False), id=p.key) for p in self.shown])
        title = f"{len(self.shown)} pictures"
        if FILTERS[self.filter] != "all":
            title += f" ({FILTERS[self.filter]})"
        listing.border_title = title
        listing.border_subtitle = f"filter: {self.name_filter}  esc clears" if self.name_filter else ""
        if self.shown:
            keys = [p.key for p in self.shown]
            listing.highlighted = keys.index(current.key) if current and current.key in keys else 0
        else:
            self._show_current()
        self._summary()

    def _refresh_rows(self, keys: list[str] | None = None) -> None:
        """Redraw these rows (all without ``keys``): a key press redraws two rows, not the whole list."""
        listing = self.query_one("#crop-list", OptionList)
        indexes = range(len(self.shown)) if keys is None else [self._positions[k] for k in keys
                                                                if k in self._positions]
        for index in indexes:
            listing.replace_option_prompt_at_index(index, self._row(self.shown[index], index == listing.highlighted))

    def current(self) -> CropPicture | None:
        listing = self.query_one("#crop-list", OptionList)
        index = listing.highlighted
        if index is None or not 0 <= index < len(self.shown):
            return None
        return self.shown[index]

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        current = self.current()
        self._refresh_rows([self._cursor_key] + ([current.key] if current else []))
        self._cursor_key = current.key if current else ""
        self._show_current()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.start_edit()

    # --- planning the automatic boxes (focal searches faces: a thread) --------------------------------------

    @work(thread=True, exclusive=True, group="crop-plan", exit_on_error=False)
    def _plan_missing(self) -> None:
        worker = get_current_worker()
        config = self.config
        if config is None:
            return
        for picture in list(self.pictures):
            if worker.is_cancelled:
                return
            if picture.key in self.plans:
                continue
            info = self._plan(picture, config, picture.manual)
            self.app.call_from_thread(self._planned, picture.key, info)

    @staticmethod
    def _plan(picture: CropPicture, config: Config, manual: object) -> PlanInfo:
        from loratui.dataset.crop_view import plan_for
        from loratui.dataset.image_open import UnreadableImage

        try:
            planned = plan_for(picture, config.dataset, manual)
        except UnreadableImage as exc:
            return PlanInfo((0, 0, 1, 1), (1, 1), (1, 1), "error", exc.reason)
        except (OSError, ValueError) as exc:
            return PlanInfo((0, 0, 1, 1), (1, 1), (1, 1), "error", str(exc) or type(exc).__name__)
        plan = planned.plan
        return PlanInfo(plan.box, plan.size, planned.loaded.size, plan.method)

    def _planned(self, key: str, info: PlanInfo) -> None:
        self.plans[key] = info
        self._refresh_rows([key])
        current = self.current()
        if current is not None and current.key == key:
            self._show_current()
        # The counts and the bucket table cover every picture: redrawn at most 5 times a second while the
        # boxes are worked out one by one, so 500 pictures do not redraw them 500 times.
        if not self._summary_due:
            self._summary_due = True
            self.set_timer(0.2, self._flush_summary)

    def _flush_summary(self) -> None:
        self._summary_due = False
        self._show_buckets()
        self._summary()

    # --- the preview ----------------------------------------------------------------------------------------

    def _show_current(self) -> None:
        picture = self.current()
        preview = self.query_one("#crop-preview", CropPreview)
        image = self.query_one("#crop-picture", Picture)
        info = self.query_one("#crop-info", Static)
        self._show_buckets()
        if picture is None:
            preview.border_title = ""
            image.show(None)
            info.update("Nothing to crop. esc goes back to Images." if not self.pictures else
                        "No picture matches the filter: esc clears it, ^f shows the others.")
            return
        preview.border_title = picture.relpath
        preview.border_subtitle = "editing" if self.editing == picture.key else ("result" if self.show_result else "")
        if self.show_result:
            if picture.output.is_file():
                image.show(picture.output)
                note = "" if picture.up_to_date else " (before the last change: ^r prepares it again)"
                info.update(f"prepared {picture.output.name}{note}")
            else:
                image.show(None)
                info.update("Not prepared yet: ^r prepares the dataset.")
            return
        plan = self.plans.get(picture.key)
        image.show(picture.path, self._overlay)
        if plan is None:
            info.update("loading…")
        elif plan.error:
            info.update(f"{self.wizard.glyphs.failed} {plan.error}")
        else:
            box = self.edit_box if self.editing == picture.key and self.edit_box else plan.box
            width, height = plan.source_size
            size = plan.size
            if self.config and self.config.dataset.crop != "none":
                size = (self.config.dataset.resolution,) * 2
            scale = max(size[0] / max(1, box[2] - box[0]), size[1] / max(1, box[3] - box[1]))
            up = f"  UP {scale:.1f}x" if scale > 1 + 1e-6 else ""
            method = "manual" if self.editing == picture.key or picture.manual else plan.method
            if self.editing != picture.key:
                preview.border_subtitle = method
            info.update(f"box {box[2] - box[0]}x{box[3] - box[1]} at {box[0]},{box[1]} of {width}x{height} -> "
                        f"{size[0]}x{size[1]}{up}")

    def _overlay(self, columns: int, rows: int) -> dict[tuple[int, int], str]:
        picture = self.current()
        plan = self.plans.get(picture.key) if picture else None
        if picture is None or plan is None or plan.error:
            return {}
        box = self.edit_box if self.editing == picture.key and self.edit_box else plan.box
        width, height = plan.source_size
        x0 = min(columns - 1, int(box[0] * columns / width))
        x1 = max(x0, min(columns - 1, round(box[2] * columns / width) - 1))
        y0 = min(rows - 1, int(box[1] * rows / height))
        y1 = max(y0, min(rows - 1, round(box[3] * rows / height) - 1))
        ascii_only = self.wizard.ascii_only
        h, v = ("-", "|") if ascii_only else ("─", "│")
        corners = ("+",) * 4 if ascii_only else ("┌", "┐", "└", "┘")
        marks: dict[tuple[int, int], str] = {}
        for x in range(x0, x1 + 1):
            marks[(x, y0)] = h
            marks[(x, y1)] = h
        for y in range(y0, y1 + 1):
            marks[(x0, y)] = v
            marks[(x1, y)] = v
        marks[(x0, y0)], marks[(x1, y0)], marks[(x0, y1)], marks[(x1, y1)] = corners
        return marks

    def _show_histogram(self) -> None:
        if not self.wide:
            return
        from loratui.dataset.crop_view import bucket_table

        histogram = self.query_one("#crop-histogram", Static)
        histogram.border_title = "output sizes"
        table = bucket_table([p.size for p in self.plans.values() if not p.error])
        if not table:
            histogram.update("sizes follow when the boxes are worked out")
            return
        shown, rest = table[:7], table[7:]
        most = shown[0][1]
        width = 45 - 2 - 10 - 5  # the box's inside, less the size label and the count
        block = "#" if self.wizard.ascii_only else "█"
        lines = [f"{w:>4}x{h:<4} {block * max(1, round(n * width / most)):<{width}} {n:>4}" for (w, h), n in shown]
        if rest:
            lines.append(f"… {len(rest)} more sizes, {sum(n for _, n in rest)} pictures")
        histogram.update("\n".join(lines))

    def _show_buckets(self) -> None:
        self._show_histogram()
        buckets = self.query_one("#crop-buckets", Static)
        if not self.config or self.config.dataset.crop != "none":
            buckets.display = False
            return
        from loratui.dataset.crop_view import bucket_table

        sizes = [p.size for p in self.plans.values() if not p.error]
        table = bucket_table(sizes)
        text = "  ".join(f"{w}x{h}: {n}" for (w, h), n in table) or "loading…"
        missing = len(self.pictures) - len(sizes)
        buckets.update(f"buckets: {text}" + (f"  (… {missing} to read)" if missing > 0 else ""))
        buckets.display = True

    def _summary(self) -> None:
        summary = self.query_one("#crop-summary", Static)
        if self.config is None:
            summary.update(" ✗ loratui.toml cannot be read: fix it (loratui check DIR says how).")
            return
        manual = sum(1 for p in self.pictures if p.manual)
        up = sum(1 for p in self.pictures if (plan := self.plans.get(p.key)) and not plan.error
                 and plan.upscale > 1 + 1e-6)
        pending = sum(1 for p in self.pictures if not p.up_to_date)
        prepared = "dataset up to date" if self.pictures and not pending else f"{pending} to prepare"
        summary.update(f" {MODE_HELP[self.config.dataset.crop]}. {len(self.pictures) - manual} auto, {manual} "
                       f"manual, {up} UP; {prepared}")

    # --- settings -------------------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "resolution":
            if self.save_resolution():
                self.query_one("#mode", ModeChoice).focus()

    def on_descendant_blur(self, event) -> None:  # noqa: ANN001
        if getattr(event.widget, "id", None) == "resolution":
            self.save_resolution()

    def save_resolution(self) -> bool:
        """Check the field with loratui.toml's own rules; save it when it is good, else say why (nothing saved)."""
        from loratui.dataset.crop_view import parse_resolution, resolution_problem

        field = self.query_one("#resolution", Input)
        project, config = self.wizard.project, self.config
        if project is None or config is None:
            return False
        text = field.value.strip()
        problem = resolution_problem(config, text) if text else "type the training size in pixels, e.g. 512"
        if problem:
            field.add_class("-invalid")
            message = f"{self.wizard.glyphs.failed} resolution: {problem}"
            self.query_one("#crop-summary", Static).update(f" {message}")
            self.say(problem, "✗")  # the field is named on the line above; the status line is short
            return False
        field.remove_class("-invalid")
        value = parse_resolution(text)
        if value == config.dataset.resolution:
            return True
        self._update(lambda c: setattr(c.dataset, "resolution", value))
        self.say(f"Resolution {value} saved; ^r prepares again.")
        return True

    def set_mode(self, mode: str) -> bool:
        if self.config is None:
            return False
        self._update(lambda c: setattr(c.dataset, "crop", mode))
        self.say(f"Crop mode {mode} saved; ^r prepares again.")
        return True

    def _update(self, change) -> None:  # noqa: ANN001
        project = self.wizard.project
        assert project is not None
        try:
            self.config = project.update(change)
        except LoratuiError as exc:
            self.say(str(exc).splitlines()[0], "✗")
            return
        self._scan()

    # --- the box editor -------------------------------------------------------------------------------------

    def start_edit(self) -> None:
        picture = self.current()
        plan = self.plans.get(picture.key) if picture else None
        if picture is None:
            return
        if plan is None:
            self.say("The box is still being worked out: press enter again in a moment.", "!")
            return
        if plan.error:
            self.say(f"{picture.relpath}: {plan.error}", "✗")
            return
        self.show_result = False
        self.editing, self.edit_box, self.edit_changed = picture.key, plan.box, False
        preview = self.query_one("#crop-preview", CropPreview)
        preview.add_class("-editing")
        preview.can_focus = True  # only while editing: tab never lands here otherwise
        preview.focus()
        self.query_one("#crop-hint", Static).update(
            " i arrows move the box, + and - resize it, 0 puts it back to auto.")
        self._show_current()

    def _plan_of_edit(self) -> PlanInfo | None:
        return self.plans.get(self.editing) if self.editing else None

    def move_box(self, dx: int, dy: int) -> None:
        from loratui.dataset.crop_view import moved_box

        plan = self._plan_of_edit()
        if plan is None or self.edit_box is None:
            return
        self.edit_box = moved_box(self.edit_box, plan.source_size, dx, dy)
        self.edit_changed = True
        self._show_current()

    def resize_box(self, steps: int) -> None:
        from loratui.dataset.crop_view import resized_box

        plan = self._plan_of_edit()
        if plan is None or self.edit_box is None or self.config is None:
            return
        self.edit_box = resized_box(self.edit_box, plan.source_size, steps, self.config.dataset)
        self.edit_changed = True
        self._show_current()

    def auto_box(self) -> None:
        picture = self.current()
        if picture is None or self.editing != picture.key:
            return
        if picture.manual is not None:
            self._save_box(picture, None)
        self.plans.pop(picture.key, None)
        self.edit_box, self.edit_changed = None, False
        self.say(f"{picture.relpath}: back to the automatic box (used on the next prepare).")
        self._replan(picture)

    def finish_edit(self) -> None:
        picture = next((p for p in self.pictures if p.key == self.editing), None)
        if picture is not None and self.edit_changed and self.edit_box is not None:
            self._save_box(picture, list(self.edit_box))
            self.say(f"Box saved for {picture.relpath} (used on the next prepare).")
        self.editing, self.edit_box, self.edit_changed = None, None, False
        preview = self.query_one("#crop-preview", CropPreview)
        preview.remove_class("-editing")
        self.query_one("#crop-list", OptionList).focus()
        preview.can_focus = False
        self.query_one("#crop-hint", Static).update(
            IDLE_HINT)
        if picture is not None:
            self._replan(picture)
        self._show_current()

    def _save_box(self, picture: CropPicture, box: list[int] | None, *, undoable: bool = True) -> None:
        if undoable:
            self.undo_stack.append((picture.key, picture.manual))

        def change(config: Config) -> None:
            if box is None:
                config.dataset.crop_boxes.pop(picture.key, None)
            else:
                config.dataset.crop_boxes[picture.key] = box

        project = self.wizard.project
        assert project is not None
        try:
            self.config = project.update(change)
        except LoratuiError as exc:
            self.say(str(exc).splitlines()[0], "✗")
            return
        picture.manual = box
        picture.up_to_date = False
        picture.record = None

    def _replan(self, picture: CropPicture) -> None:
        self.plans.pop(picture.key, None)
        self._refresh_rows([picture.key])
        self._summary()
        self._plan_one(picture)

    @work(thread=True, group="crop-one", exit_on_error=False)
    def _plan_one(self, picture: CropPicture) -> None:
        config = self.config
        if config is None:
            return
        info = self._plan(picture, config, picture.manual)
        self.app.call_from_thread(self._planned_edit, picture.key, info)

    def _planned_edit(self, key: str, info: PlanInfo) -> None:
        if self.editing == key and self.edit_box is None:
            self.edit_box = info.box
        self._planned(key, info)

    def action_undo(self) -> None:
        if not self.undo_stack:
            self.say("No box change to undo.")
            return
        key, previous = self.undo_stack.pop()
        picture = next((p for p in self.pictures if p.key == key), None)
        if picture is None:
            return
        self._save_box(picture, previous, undoable=False)
        self.say(f"{picture.relpath}: box change undone.")
        if self.editing == key:
            self.edit_box, self.edit_changed = None, False
        self._replan(picture)

    # --- keys -----------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.editing and action in ("toggle_view", "filter"):
            return False  # hidden while a box is edited: enter or esc first
        return True

    def action_toggle_view(self) -> None:
        self.show_result = not self.show_result
        self._show_current()

    def action_filter(self) -> None:
        self.filter = (self.filter + 1) % len(FILTERS)
        self._fill_list()
        self.say(f"Showing {FILTERS[self.filter]} pictures (^f for the next filter).")

    def on_key(self, event) -> None:  # noqa: ANN001
        listing = self.query_one("#crop-list", OptionList)
        if self.focused is not listing:
            return
        if event.key == "backspace" and self.name_filter:
            self.name_filter = self.name_filter[:-1]
        elif event.is_printable and event.character and event.character not in " ?":
            self.name_filter += event.character
        else:
            return
        event.stop()
        event.prevent_default()
        self._fill_list()

    def action_escape(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#crop-list", OptionList).focus()
            return
        if self.name_filter:
            self.name_filter = ""
            self._fill_list()
            return
        if self.advance_when_done:  # esc cancels the wait for ^n, not the work (design §2.8)
            self.advance_when_done = False
            self.say("Prepare goes on; you stay on Crop when it ends.")
            return
        self.wizard.action_back()

    def action_prepare(self) -> None:
        panel = self.query_one("#crop-job", JobPanel)
        if panel.running:
            panel.cancel()
            self.advance_when_done = False
            self.say("Stopping prepare: the pictures done so far are kept.")
            return
        self.start_prepare()

    def start_prepare(self) -> bool:
        from loratui.jobs.command import PrepareOptions

        if not self.save_resolution():
            return False
        if self.editing:
            self.finish_edit()
        panel = self.query_one("#crop-job", JobPanel)
        if panel.start(PrepareOptions()):
            self.say("Preparing the dataset: ^r stops (what is done is kept).")
            return True
        return False

    def on_job_panel_finished(self, message: JobPanel.Finished) -> None:
        state = message.status.state
        advance, self.advance_when_done = self.advance_when_done, False
        if state == "done":
            self.say("Prepared: dataset/ is up to date." if not advance else "Prepared. On to step 3.")
        else:
            reason = f": {message.status.message}" if message.status.message else ""
            self.say(f"prepare {state}{reason}", "!" if state == "stopped" else "✗")
        self.reload()
        if advance and state == "done":
            self.wizard.go_to(self.step.number + 1)

    def on_job_panel_failed(self, message: JobPanel.Failed) -> None:
        self.advance_when_done = False
        self.say(message.message, "✗")

    def ready_for_next(self) -> bool:
        from loratui.dataset.crop_view import pending_prepare

        field = self.query_one("#resolution", Input)
        if self.config is None:
            self.say("loratui.toml cannot be read: `loratui check DIR` says what to fix.", "✗")
            return False
        if not self.save_resolution():
            field.focus()
            return False
        project, config = self.wizard.project, self.config
        if project is None or config is None:
            return False
        panel = self.query_one("#crop-job", JobPanel)
        if panel.running:
            self.advance_when_done = True
            self.say("Prepare is running: the next step opens when it is done.")
            return False
        try:
            pending = pending_prepare(project, config)
        except (LoratuiError, OSError) as exc:
            self.say(str(exc), "✗")
            return False
        if not pending:
            return True
        if self.start_prepare():
            self.advance_when_done = True
            self.say(f"Preparing {len(pending)} pictures first: step 3 opens when they are done.")
        return False
