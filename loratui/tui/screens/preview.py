"""Step 6 Preview (design §4.6): the prompt, seed, weights and steps of the grid; the grid as a score table
(checkpoints x weights) with the highlighted cell drawn on the right; ^r renders what is missing as a
`loratui grid --detach` job (cells fill in from its events; cached cells are reused), space picks a cell
(grid.json), enter zooms, ^s opens the install dialog. While training runs on a CPU-only machine it waits for the
training to end, and says why. The palette's entries (render only the suggested row, the PNG path, the negative
prompt, sampling steps, terminal graphics) are in preview_palette.py, the graphics in preview_graphics.py, the
install keys in preview_install.py."""

from __future__ import annotations

import os
import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, Static

from loratui.tui.pacing import reads_now
from loratui.tui.screens.preview_cells import DONE, FAILED, QUEUED, RENDERING, CellEvents, GridView, apply_cell
from loratui.tui.screens.preview_graphics import PreviewGraphics
from loratui.tui.screens.preview_install import PreviewInstall
from loratui.tui.screens.preview_palette import NegativePromptDialog, PreviewCommands
from loratui.tui.screens.step_screen import StepScreen
from loratui.tui.widgets.job_panel import JobPanel
from loratui.tui.widgets.picture import Picture
from loratui.tui.widgets.score_grid import DrawnCell, ScoreGrid
from loratui.tui.widgets.tile_view import TILE_COLUMNS, TILE_ROWS, Tile, TileView

EMPTY = ("No checkpoints yet. Train first (esc), or render LoRA files from elsewhere in a shell: loratui grid DIR "
         "--checkpoints FILE.safetensors")
EMPTY_TIP = " i Step 5 Train (esc) writes the checkpoints this step compares."
LAST_EMPTY = "This is the last step. No checkpoints yet: train first (esc)."
TIP = " i space picks a winner; ^s installs it into your WebUI or ComfyUI Lora folder."
REPLAN_DELAY_S = 0.4  # typing in a field re-plans the grid once the typing pauses
FIELDS = ("prompt", "seed", "weights", "steps")
FOLLOW_S = 0.25  # the running grid's new cells are read 4 times a second, as the job panel polls


def cpu_wait_message() -> str:
    cores = os.cpu_count() or 1
    return (f"Training is using the CPU: two torch processes on {cores} core{'s' if cores != 1 else ''} slow each "
            "other tenfold, so the grid renders when training ends (^r renders now anyway).")


class PreviewScreen(PreviewGraphics, PreviewInstall, StepScreen):
    HELP_TEXT = ("Render every checkpoint at every weight with the same seed and a prompt the pictures never "
                 "had (the trigger plus smile): the best cell looks like your pictures and still bends to the "
                 "prompt. space picks it, ^s installs it into your WebUI or ComfyUI.")
    HELP_KEYS = (
        ("arrows", "move in the grid"),
        ("space", "pick the highlighted cell (install uses your pick)"),
        ("enter", "the highlighted cell on the whole screen"),
        ("^r", "render what is missing (cached cells are reused); cancel"),
        ("^s", "install the pick (else the suggestion) into a Lora folder"),
        ("^t", "scores <-> pictures (the pictures view needs 120x40)"),
        ("tab", "prompt, seed, weights, steps: edit, then ^r"),
        ("esc", "leave a field, or go back a step"),
    )
    COMMANDS = {PreviewCommands}
    BINDINGS = [
        Binding("ctrl+r", "render", "Render", key_display="^r", id="preview.render"),
        Binding("ctrl+s", "install", "Install", key_display="^s", id="preview.install"),
        Binding("ctrl+t", "toggle_view", "View", key_display="^t", id="preview.view"),
        Binding("escape", "escape", "Back", show=False),
    ]
    DEFAULT_CSS = """
    PreviewScreen #pv-inputs { height: 1; }
    PreviewScreen #pv-inputs Static { width: auto; }
    PreviewScreen #pv-inputs Input, PreviewScreen #pv-inputs Input:focus { height: 1; border: none; padding: 0; }
    PreviewScreen #pv-prompt { width: 18; }
    PreviewScreen #pv-seed { width: 6; }
    PreviewScreen #pv-weights { width: 15; }
    PreviewScreen #pv-steps { width: 3; }
    PreviewScreen #pv-panes { height: 1fr; }
    PreviewScreen #pv-grid-box { width: 47; border: round $panel; }
    PreviewScreen #pv-grid-box:focus-within { border: heavy $accent; }
    PreviewScreen #pv-cell-box { width: 1fr; border: round $panel; }
    PreviewScreen #pv-legend { height: 1; }
    PreviewScreen #pv-tiles { display: none; }
    PreviewScreen #pv-note { height: auto; }
    PreviewScreen #pv-picture { height: 1fr; }
    PreviewScreen #pv-cell-info { height: 5; }
    PreviewScreen #pv-choice, PreviewScreen #pv-png, PreviewScreen #pv-tip { height: 1; }
    PreviewScreen JobPanel { height: 1; }
    PreviewScreen.-wide #pv-grid-box { width: 1fr; }
    PreviewScreen.-wide #pv-cell-box { width: 44; }
    PreviewScreen.-wide #pv-cell-info { height: 6; }
    .-ascii PreviewScreen #pv-grid-box, .-ascii PreviewScreen #pv-cell-box { border: ascii $panel; }
    .-ascii PreviewScreen #pv-grid-box:focus-within { border: ascii $accent; }
    """
    SCOPED_CSS = False  # every rule names PreviewScreen; unscoped so the app's -ascii class reaches them

    def __init__(self, step) -> None:  # noqa: ANN001
        super().__init__(step)
        self.view = GridView()
        self.cursor: tuple[int, int] = (0, 0)
        self.waiting = False  # training holds the CPU: render when it ends
        self._read_once = False
        self._replan: Timer | None = None
        self._events: CellEvents | None = None
        self._followed_at = float("-inf")
        self._install_after_render = False
        self._job_view: GridView | None = None  # the grid the running job renders (its options were these)
        self._outputs: tuple = ()  # output/'s LoRA files (name, size, mtime): a new checkpoint re-plans
        self._training = False
        self.pictures = True  # at 120x40 the grid is drawn as pictures (^t: the score table)
        self._render_after_read: bool | None = None  # ^r came before the grid of the typed fields was read
        self._row_after_read: str | None = None  # ... and it was for one row only (this checkpoint)
        self.negative_prompt: str | None = None  # [preview].negative_prompt (None: unread, the engine reads it)

    # --- layout ---------------------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="pv-inputs"):
            yield Static("Prompt[", markup=False)
            yield Input("", id="pv-prompt", select_on_focus=False)
            yield Static("] Seed[", markup=False)
            yield Input("", id="pv-seed", select_on_focus=False, restrict=r"[0-9]*")
            yield Static("] Weights[", markup=False)
            yield Input("", id="pv-weights", select_on_focus=False)
            yield Static("] Steps[", markup=False)
            yield Input("", id="pv-steps", select_on_focus=False, restrict=r"[0-9]*")
            yield Static("]", markup=False)
        with Horizontal(id="pv-panes"):
            with Vertical(id="pv-grid-box"):
                yield ScoreGrid(id="pv-grid")
                yield TileView(id="pv-tiles")
                yield Static("", id="pv-note")
                yield Static("", id="pv-legend", markup=False)
            with Vertical(id="pv-cell-box"):
                yield Picture(id="pv-picture")
                yield Static("", id="pv-cell-info", markup=False)
        yield Static("", id="pv-choice", markup=False)
        yield Static("", id="pv-png", markup=False)
        yield Static(TIP, id="pv-tip", markup=False)
        project = self.wizard.project
        assert project is not None
        yield JobPanel(project, "grid", id="pv-job")

    def on_mount(self) -> None:
        if not self.query("#pv-prompt"):
            return  # the app closed while this screen was being mounted: its widgets are gone already
        project = self.wizard.project
        assert project is not None
        self._events = CellEvents(project)
        self._fill_inputs()
        self.query_one("#pv-grid-box").border_title = "Score per cell"
        self.query_one("#pv-cell-box").border_title = "Cell"
        self._outputs = self._output_files()
        self.reload()
        self.set_interval(FOLLOW_S, self._follow_job)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self._read_once and not self.query_one(JobPanel).running:
            self.reload()  # a training run may have written checkpoints since

    def wide_changed(self) -> None:
        self._draw()

    def _fill_inputs(self) -> None:
        from loratui.preview.grid_plan import fill_prompt, format_weight

        project = self.wizard.project
        try:
            config = project.load()
        except Exception:  # noqa: BLE001 - a broken loratui.toml: the plan says why, in one line
            return
        preview = config.preview
        self.negative_prompt = preview.negative_prompt
        values = {"prompt": fill_prompt(preview.prompt, config), "seed": str(preview.seed),
                  "weights": " ".join(_short(format_weight(w)) for w in preview.weights), "steps": str(preview.steps)}
        for name, value in values.items():
            self.query_one(f"#pv-{name}", Input).value = value

    # --- reading the grid -----------------------------------------------------------------------------------

    def reload(self) -> None:
        options = self._options(quiet=True)
        if options is None:
            return
        self._read(options)

    @work(thread=True, exclusive=True, group="preview-read", exit_on_error=False)
    def _read(self, options) -> None:  # noqa: ANN001
        from loratui.tui.screens.preview_cells import read_view

        view = read_view(self.wizard.project, options)
        self.app.call_from_thread(self._show_view, view)

    def _show_view(self, view: GridView) -> None:
        if self.query_one(JobPanel).running and self._job_view is not None:
            return  # the job's own grid is on screen; this one is read again when it ends
        first = not self._read_once
        self._read_once = True
        self.view = view
        asked, self._render_after_read = self._render_after_read, None
        one_row, self._row_after_read = self._row_after_read, None
        if view.rows:
            row, column = self.cursor
            self.cursor = (min(row, len(view.rows) - 1), min(column, len(view.weights) - 1))
            if first:
                best = view.picked if view.picked is not None else view.suggested
                if best is not None:
                    self.cursor = divmod(best, len(view.weights))
        if first:
            self._draw()
            (self._grid_widget() if view.rows else self.query_one("#pv-prompt", Input)).focus()
        self._draw()
        if asked is not None:
            self._start_render(asked=asked, checkpoint=one_row)
            return
        self._after_read()

    def _after_read(self) -> None:
        """Previews while training runs (issue item 5): with a GPU, render finished checkpoints at once; on the
        CPU alone, wait for the training to end (and say why)."""
        if not self.view.rows or not self.view.missing or self.query_one(JobPanel).running:
            return
        if not self._training_runs():
            return
        if self._has_gpu():
            self._start_render()
        elif not self.waiting:
            self.waiting = True
            self.say("Waiting for training to end before rendering (CPU only): ^r renders now anyway.", "!")
            self._draw()

    def _training_runs(self) -> bool:
        state = self.wizard.state
        return bool(state and any(job.alive and job.kind == "train" for job in state.jobs))

    def _has_gpu(self) -> bool:
        return self.wizard.gpu_name not in ("", "CPU")

    def refresh_frame(self) -> None:
        super().refresh_frame()
        if not self.is_mounted or not self._read_once:
            return
        training = self._training_runs()
        ended, self._training = self._training and not training, training
        outputs = self._output_files()
        if outputs != self._outputs:
            self._outputs = outputs
            if not self.query_one(JobPanel).running:
                self.reload()  # a new checkpoint: a new row
        if ended and self.waiting:
            self.waiting = False
            self.say("Training ended: rendering the grid.")
            options = self._options(quiet=True)
            if options is not None:
                # Read the checkpoints again first: the run's final file is new (a row the plan lacks).
                self._render_after_read = False
                self._read(options)

    def _output_files(self) -> tuple:
        project = self.wizard.project
        try:
            return tuple(sorted((entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
                                for entry in os.scandir(project.output_dir) if entry.name.endswith(".safetensors")))
        except OSError:
            return ()

    # --- drawing --------------------------------------------------------------------------------------------

    def _draw(self) -> None:
        view = self.view
        glyphs = self.wizard.glyphs
        grid = self.query_one(ScoreGrid)
        box = self.query_one("#pv-grid-box")
        note = self.query_one("#pv-note", Static)
        legend = self.query_one("#pv-legend", Static)
        running = self.query_one(JobPanel).running
        self.query_one("#pv-tip", Static).update(EMPTY_TIP if view.error else TIP)
        if view.error:
            grid.display = False
            note.update(EMPTY if view.error.startswith("no checkpoints") else f"{glyphs.failed} {view.error}")
            legend.update("")
            box.border_subtitle = ""
            self._show_cell()
            self._show_lines()
            return
        tiles_shown = self.wide and self.pictures
        tiles = self.query_one(TileView)
        focus_was = self.focused in (grid, tiles)
        grid.display, tiles.display = not tiles_shown, tiles_shown
        if focus_was:
            self._grid_widget().focus()
        suggested, picked = self._suggested_mark(), glyphs.done
        drawn = [[self._drawn(view.cells[r * len(view.weights) + c], suggested, picked)
                  for c in range(len(view.weights))] for r in range(len(view.rows))]
        from loratui.preview.grid_plan import format_weight

        if tiles_shown:
            self._show_tiles(drawn)
        else:
            grid.show_table(view.rows, [_short(format_weight(w)) for w in view.weights], drawn, self.cursor,
                            glyphs.cursor)
        box.border_subtitle = f"{view.done}/{len(view.cells)}"
        note.update(cpu_wait_message() if self.waiting else "")
        queued = "queued" if running else "to render"
        legend.update(f"{suggested} suggested {picked} picked {glyphs.failed} damaged ? {queued}")
        self._show_cell()
        self._show_lines()

    def _grid_widget(self) -> ScoreGrid | TileView:
        return self.query_one(TileView) if self.wide and self.pictures else self.query_one(ScoreGrid)

    def _show_tiles(self, drawn: list[list[DrawnCell]]) -> None:
        """The 3 x 5 tiles around the cursor: its row in the middle where there is one above and below."""
        view, (row, column) = self.view, self.cursor
        top = max(0, min(row - TILE_ROWS // 2, len(view.rows) - TILE_ROWS))
        left = max(0, min(column - TILE_COLUMNS // 2, len(view.weights) - TILE_COLUMNS))
        cursor = self.wizard.glyphs.cursor
        tiles = []
        for r in range(top, min(len(view.rows), top + TILE_ROWS)):
            line = []
            for c in range(left, min(len(view.weights), left + TILE_COLUMNS)):
                cell = view.cells[r * len(view.weights) + c]
                mark = cursor if (r, c) == (row, column) else " "
                value = drawn[r][c]
                state = {QUEUED: " not rendered", RENDERING: " rendering", FAILED: " failed"}.get(cell.state, "")
                line.append(Tile(f"{mark}{cell.title}", cell.file if cell.state == DONE else None,
                                 f" {value.value}{value.marks}{state}"))
            tiles.append(line)
        self.query_one(TileView).show_tiles(tiles)

    def _suggested_mark(self) -> str:
        return self.wizard.glyphs.on

    def _drawn(self, cell, suggested: str, picked: str) -> DrawnCell:  # noqa: ANN001
        from loratui.preview.grid import format_score

        failed = self.wizard.glyphs.failed
        index = cell.row * len(self.view.weights) + cell.column
        marks = (suggested if index == self.view.suggested else "") + (picked if index == self.view.picked else "")
        if cell.state == RENDERING:
            return DrawnCell("...", marks)
        if cell.state == FAILED:
            return DrawnCell(failed, marks)
        if cell.state == QUEUED:
            return DrawnCell("?", marks)
        total = cell.total
        value = format_score(total) if total is not None else "-"
        if cell.damaged:
            value = failed + (value if len(value) <= 3 else value[:3])
        return DrawnCell(value, marks)

    def _show_cell(self) -> None:
        from loratui.preview.grid import format_score

        box = self.query_one("#pv-cell-box")
        info = self.query_one("#pv-cell-info", Static)
        picture = self.query_one("#pv-picture", Picture)
        cell = self.current_cell()
        if cell is None:
            box.border_title = "Cell"
            picture.show(None)
            info.update("")
            self.graphics_cell_changed()
            return
        glyphs = self.wizard.glyphs
        box.border_title = cell.title
        # With terminal graphics on (palette), the box stays blank under the full-resolution picture.
        picture.show(cell.file if cell.state == DONE and not self.graphics_on else None)
        self.graphics_cell_changed()
        index = cell.row * len(self.view.weights) + cell.column
        if cell.state == QUEUED:
            lines = ["not rendered yet: ^r renders it" if not self.query_one(JobPanel).running else "queued"]
        elif cell.state == RENDERING:
            lines = ["rendering..."]
        elif cell.state == FAILED:
            lines = [f"{glyphs.failed} failed: {cell.error or 'no picture'}"]
        else:
            scores = cell.scores or {}
            marks = [word for mark, word in ((index == self.view.suggested, f"{self._suggested_mark()} suggested"),
                                             (index == self.view.picked, f"{glyphs.done} picked")) if mark]
            damage = "none" if not cell.damaged else (f"{format_score(scores.get('damage'))} "
                                                      f"{', '.join(cell.damage_kinds)}").strip()
            lines = [f"score {format_score(cell.total)}  {' '.join(marks)}".rstrip(),
                     f"looks like your set {format_score(scores.get('resemblance'))}",
                     f"prompt extra seen {format_score(scores.get('flexibility'))}",
                     f"{glyphs.failed + ' ' if cell.damaged else ''}damage {damage}"]
            if not scores:
                lines[1:] = ["not scored (rendered with --no-score)"]
            lines.append("enter: full screen")
        info.update("\n".join(lines))

    def _show_lines(self) -> None:
        from loratui.preview.grid import format_score

        view = self.view
        choice = self.query_one("#pv-choice", Static)
        png = self.query_one("#pv-png", Static)
        suggested = view.cells[view.suggested] if view.suggested is not None else None
        picked = view.cells[view.picked] if view.picked is not None else None

        def named(cell) -> str:  # noqa: ANN001
            return f"{cell.title} ({format_score(cell.total)})"

        if view.error:
            text = ""
        elif suggested and picked and picked is not suggested:
            text = f" Suggested: {named(suggested)}. You picked {named(picked)}; yours is used."
        elif picked:
            text = f" You picked {named(picked)}, also the suggestion; ^s installs it."
        elif suggested:
            text = f" Suggested: {named(suggested)}. space picks another cell."
        elif view.rows and self.query_one(JobPanel).running:
            text = " Rendering: the suggestion comes once every cell is scored."
        elif view.rows:
            text = " No suggestion yet: ^r renders the missing cells and scores them."
        else:
            text = ""
        choice.update(text[:80])
        if view.png:
            columns, rows = view.png_shape
            line = f" Grid PNG: {view.png} ({columns} x {rows} cells)"
            tail = " - copy it to your PC to view."
            png.update(line + tail if len(line + tail) <= 80 else line)  # the path whole, never cut
        else:
            png.update(" Grid PNG: none yet - ^r writes preview/grid-<time>.png (full size).")

    def current_cell(self):  # noqa: ANN201
        return self.view.cell(*self.cursor) if self.view.rows else None

    # --- the grid's keys ------------------------------------------------------------------------------------

    def move_cursor(self, rows: int, columns: int) -> None:
        if not self.view.rows:
            return
        row, column = self.cursor
        self.cursor_to(row + rows, column + columns)

    def cursor_to(self, row: int | None, column: int | None) -> None:
        if not self.view.rows:
            return
        row = self.cursor[0] if row is None else row
        column = self.cursor[1] if column is None else column
        self.cursor = (max(0, min(len(self.view.rows) - 1, row)), max(0, min(len(self.view.weights) - 1, column)))
        self._draw()

    def pick_cell(self) -> None:
        cell = self.current_cell()
        if cell is None:
            self.say(EMPTY if self.view.error else "Nothing to pick yet: ^r renders the grid.", "!")
            return
        index = cell.row * len(self.view.weights) + cell.column
        if cell.state != DONE:
            self.say(f"{cell.title} is not rendered: ^r renders it, then space picks it.", "!")
            return
        if index not in self.view.in_grid:
            self.say(f"{cell.title} is not in the last grid yet: ^r writes the grid, then space picks it.", "!")
            return
        if index == self.view.picked:
            self.say(f"{cell.title} is already your pick; ^s installs it.")
            return
        self._pick(cell.checkpoint, cell.weight, index)

    @work(thread=True, exclusive=True, group="preview-pick", exit_on_error=False)
    def _pick(self, checkpoint: str, weight: float, index: int) -> None:
        from loratui.errors import LoratuiError
        from loratui.preview.grid_file import set_picked

        try:
            set_picked(self.wizard.project, checkpoint, weight)
        except (LoratuiError, OSError) as exc:
            self.app.call_from_thread(self.say, str(exc), "✗")
            return
        self.app.call_from_thread(self._picked, index)

    def _picked(self, index: int) -> None:
        from loratui.preview.grid import format_score

        self.view.picked = index
        cell = self.view.cells[index]
        self._draw()
        self.say(f"Picked {cell.title} ({format_score(cell.total)}): ^s installs it.")

    def zoom_cell(self) -> None:
        from loratui.tui.screens.images import ZoomScreen

        cell = self.current_cell()
        if cell is None or cell.state != DONE or cell.file is None:
            self.say("Nothing to show: this cell is not rendered yet (^r renders it).", "!")
            return
        self.app.push_screen(ZoomScreen(cell.file, f"{cell.title} - {self.view.prompt}"[:70]))

    # --- the fields -----------------------------------------------------------------------------------------

    def _options(self, *, quiet: bool = False):  # noqa: ANN202
        """The inputs as the engine's grid options; None (and the field focused, the reason said) if one is bad."""
        from loratui.errors import LoratuiError
        from loratui.preview.grid_plan import SEED_RANGE, GridOptions, parse_weights, validate_options

        values = {name: self.query_one(f"#pv-{name}", Input).value.strip() for name in FIELDS}
        problem, field = "", ""
        options = GridOptions(prompt=values["prompt"], negative_prompt=self.negative_prompt)
        try:
            options.weights = parse_weights(values["weights"])
            if not options.weights:
                raise LoratuiError("--weights: give at least one weight, e.g. 0.6 0.8 1")
        except LoratuiError as exc:
            problem, field = str(exc).replace("--weights", "Weights", 1), "weights"
        if not values["prompt"]:
            problem, field = "Prompt: empty - type what every cell draws, e.g. your trigger word, smile", "prompt"
        for name in ("seed", "steps"):
            if problem:
                break
            if not values[name].isdigit():
                low, high = SEED_RANGE if name == "seed" else (1, 150)
                problem, field = f"{name.capitalize()}: {values[name] or 'empty'} - give a whole number from " \
                                 f"{low} to {high}", name
                break
            setattr(options, name, int(values[name]))
            try:
                validate_options(options)
            except LoratuiError as exc:
                problem, field = str(exc).replace(f"--{name}", name.capitalize(), 1), name
        if problem:
            if not quiet:
                self.say(problem, "✗")
                self.query_one(f"#pv-{field}", Input).focus()
            return None
        return options

    @on(Input.Changed)
    def _field_changed(self, event: Input.Changed) -> None:
        if not self._read_once or not (event.input.id or "").startswith("pv-"):
            return
        if self._replan is not None:
            self._replan.stop()
        self._replan = self.set_timer(REPLAN_DELAY_S, self._replan_now)

    def _replan_now(self) -> None:
        self._replan = None
        if self.query_one(JobPanel).running:
            return  # the job's grid stays on screen; the new one is planned when it ends
        options = self._options(quiet=True)
        if options is not None:
            self._read(options)

    @on(Input.Submitted)
    def _field_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._options() is not None and self.view.rows:
            self._grid_widget().focus()

    def action_escape(self) -> None:
        if isinstance(self.focused, Input) and self.view.rows:  # leave the field for the grid (design §2.8)
            if self._options() is not None:
                self._grid_widget().focus()
            return
        self.wizard.action_back()  # no grid to go to (no checkpoints): back a step

    # --- rendering ------------------------------------------------------------------------------------------

    def action_render(self) -> None:
        panel = self.query_one(JobPanel)
        if panel.running:
            panel.cancel()
            self._install_after_render = False
            self.say("Stopping the grid: it finishes the cell it is on; the cells done so far stay cached.")
            return
        self._start_render(asked=True)

    def _start_render(self, *, asked: bool = False, checkpoint: str | None = None) -> bool:
        """Render the missing cells (of ``checkpoint``'s row only, when given) as a `loratui grid` job."""
        if self.view.error:
            self.say(EMPTY if self.view.error.startswith("no checkpoints") else self.view.error, "!")
            return False
        options = self._options()
        if options is None:
            return False
        if options != self.view.options:
            # The fields changed since the grid on screen was read: read theirs first (the job follows it).
            self._render_after_read, self._row_after_read = asked, checkpoint
            self._read(options)
            return True
        cells = [c for c in self.view.cells if checkpoint is None or c.checkpoint == checkpoint]
        missing = sum(1 for c in cells if c.state != DONE)
        if checkpoint is not None and not cells:
            self.say("That checkpoint is no longer in the grid: ^r renders the whole grid.", "!")
            return False
        if checkpoint is not None and not missing:
            self.say(f"Every cell of {cells[0].label} is rendered (cached): change the weights, seed or prompt for "
                     "new ones.")
            return False
        if self.view.rows and not missing and self.view.same_grid and asked:
            self.say("Every cell is rendered (cached): change the weights, seed or prompt for new ones.")
            return False
        if self.waiting and asked:
            self.say("Rendering while training runs: both go slower on a CPU.", "!")
        self.waiting = False
        self._save_settings(options)
        from loratui.jobs.command import GridOptions as GridJob
        from loratui.preview.grid_plan import format_weight

        only = None if checkpoint is None else (str(self.wizard.project.root / checkpoint),)
        weights = ",".join(format_weight(w) for w in options.weights)
        job = GridJob(checkpoints=only, prompt=options.prompt, negative_prompt=options.negative_prompt,
                      seed=options.seed, steps=options.steps, weights=weights)
        panel = self.query_one(JobPanel)
        if not panel.start(job):
            return False
        self._job_view = self.view
        for cell in cells:
            if cell.state != DONE:
                cell.state, cell.error = QUEUED, None
        self.query_one("#pv-tip").display = False
        row = f" of {cells[0].label}" if checkpoint is not None else ""
        self.say(f"Rendering {missing} cell{'s' if missing != 1 else ''}{row}: ^r cancels; done cells are cached.")
        self._draw()
        return True

    def _save_settings(self, options) -> None:  # noqa: ANN001
        """The grid's settings go into loratui.toml's [preview], so the next grid (and `loratui grid`) uses them;
        a prompt that is the default with the trigger filled in stays the {trigger} template."""
        from loratui.errors import LoratuiError
        from loratui.preview.grid_plan import fill_prompt

        def change(config) -> None:  # noqa: ANN001
            preview = config.preview
            if options.prompt != fill_prompt(preview.prompt, config):
                preview.prompt = options.prompt
            preview.seed, preview.steps, preview.weights = options.seed, options.steps, list(options.weights)

        try:
            self.wizard.project.update(change)
        except (LoratuiError, OSError) as exc:
            self.say(f"The grid renders, but its settings were not saved: {exc}", "!")

    def _follow_job(self) -> None:
        panels = self.query(JobPanel)
        if not panels:
            return  # the app is closing: the screen's widgets went before its timer
        if not reads_now(self, self._followed_at, FOLLOW_S):
            return
        self._followed_at = time.monotonic()
        panel = panels.first()
        status = panel.status
        tip = self.query_one("#pv-tip")
        tip.display = not panel.display
        if not panel.running or self._job_view is None or self._events is None:
            return
        view = self._job_view
        changed = False
        for event in self._events.new_cells(status):
            changed |= apply_cell(view, event, self.wizard.project) is not None
        rendering = status.item if status.stage == "render" else None
        for cell in view.cells:
            if cell.state in (QUEUED, RENDERING):  # the cell the job is on now reads "...", the rest "?"
                want = RENDERING if cell.title == rendering else QUEUED
                if want != cell.state:
                    cell.state, changed = want, True
        if changed:
            self.view = view
            self._draw()

    @on(JobPanel.Finished)
    def _job_finished(self, event: JobPanel.Finished) -> None:
        status = event.status
        self._follow_job_end()
        if status.state == "done":
            summary = status.summary or {}
            self.say(f"Grid done: {summary.get('rendered', 0)} rendered, {summary.get('cached', 0)} cached, "
                     f"{summary.get('failed', 0)} failed. space picks, ^s installs.")
        else:
            level = "✗" if status.state in {"failed", "lost"} else "!"
            self.say(f"Grid {status.state.upper()}{': ' + status.message if status.message else ''}", level)
            self._install_after_render = False
        if self._install_after_render:
            self._install_after_render = False
            self.action_install()

    def _follow_job_end(self) -> None:
        self._job_view = None
        self.reload()

    @on(JobPanel.Failed)
    def _job_failed(self, event: JobPanel.Failed) -> None:
        self._install_after_render = False
        self.say(event.message, "✗")

    # --- the palette (design §4.6) ------------------------------------------------------------------------

    def action_render_suggested_row(self) -> None:
        if self.query_one(JobPanel).running:
            self.say("The grid is rendering: wait for it (or ^r cancels it), then render the suggested row.", "!")
            return
        if self.view.error:
            self.say(EMPTY if self.view.error.startswith("no checkpoints") else self.view.error, "!")
            return
        if self.view.suggested is None:
            self.say("No suggestion yet: ^r renders the whole grid and scores it; then this renders its row.", "!")
            return
        self._start_render(asked=True, checkpoint=self.view.cells[self.view.suggested].checkpoint)

    def action_show_png_path(self) -> None:
        if not self.view.png:
            self.say("No grid PNG yet: ^r writes preview/grid-<time>.png (full size).", "!")
            return
        self.say(f"Grid PNG: {self.wizard.project.root / self.view.png}")

    def action_negative_prompt(self) -> None:
        if self.negative_prompt is None:
            self._fill_inputs()
        self.app.push_screen(NegativePromptDialog(self.negative_prompt or ""), self._negative_prompt_given)

    def _negative_prompt_given(self, value: str | None) -> None:
        from loratui.errors import LoratuiError

        if value is None:
            self.say("Negative prompt kept.")
            return
        if value == self.negative_prompt:
            self.say("Negative prompt unchanged.")
            return

        def change(config) -> None:  # noqa: ANN001
            config.preview.negative_prompt = value

        try:
            self.wizard.project.update(change)
        except (LoratuiError, OSError) as exc:
            self.say(f"The negative prompt was not saved: {exc}", "✗")
            return
        self.negative_prompt = value
        self.say("Negative prompt saved: the next ^r renders with it (new cells).")
        self._replan_now()

    def action_focus_steps(self) -> None:
        self.query_one("#pv-steps", Input).focus()
        self.say("Sampling steps: 1-150 (more = slower, finer); enter or esc goes back to the grid, ^r renders.")

    # --- the pictures view (^t) -----------------------------------------------------------------------------

    def action_toggle_view(self) -> None:
        width, height = self.app.size
        if not self.wide:
            self.say(f"The pictures view needs 120x40 (now {width}x{height}); enter shows one cell full screen.")
            return
        self.pictures = not self.pictures
        self._draw()
        if self.view.rows:
            self._grid_widget().focus()
        self.say("Pictures: 3 checkpoints x 5 weights around the cursor." if self.pictures else "Scores per cell.")

    # --- ^n -------------------------------------------------------------------------------------------------

    def ready_for_next(self) -> bool:
        """The last step: ^n renders the grid when there is none, then opens the install dialog on the pick (else
        the suggestion); it never moves on (there is no step 7)."""
        if self.query_one(JobPanel).running:
            self._install_after_render = True
            self.say("The grid is rendering: the install dialog opens when it is done.")
            return False
        if self.view.error:
            empty = self.view.error.startswith("no checkpoints")
            self.say(LAST_EMPTY if empty else self.view.error, "!")
            return False
        if self.view.png is None or not self.view.done:
            self._install_after_render = True
            if not self._start_render():
                self._install_after_render = False
            return False
        self.action_install()
        return False


def _short(weight: str) -> str:
    """`0.6` -> `.6` in the narrow weights field and the table's head; `1.0` stays (it reads as the full LoRA)."""
    return weight[1:] if weight.startswith("0.") else weight.replace("-0.", "-.")
