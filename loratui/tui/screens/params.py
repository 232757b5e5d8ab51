"""Step 4 Parameters (design §4.4, §5): the beginner form and the expert view of every setting, each with its
help line, checked as typed with the engine's own messages; the step estimator beside it, recomputed on every
change; presets to load and save; valid changes written to loratui.toml at once (atomically, comments kept)."""

from __future__ import annotations

import copy
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Input, Static

from loratui.config import PRESET_SECTIONS, Config
from loratui.errors import LoratuiError, Problem
from loratui.tui.commands import Command, ListedCommands
from loratui.tui.params_fields import (
    CONCEPTS,
    ELSEWHERE_FIELDS,
    FIELDS,
    FieldSpec,
    family_name,
    parse,
    read,
    shown,
    write,
)
from loratui.tui.screens.step_screen import StepScreen
from loratui.tui.widgets.form_fields import Choice, Edited, FieldRow
from loratui.tui.widgets.marked_button import MarkedButton
from loratui.tui.widgets.steps_panel import StepsPanel

SAVE_DELAY_S = 0.4  # a burst of typing is written once, when it pauses
CHECK_DELAY_S = 0.3  # the base model is looked at once typing pauses (a header read, in a thread)
NO_PRESET = "none"
# Compared with the preset: its own sections, minus what a preset never holds (paths, hand-placed boxes).
NOT_COMPARED = {"tagging.model", "dataset.crop_boxes"}


class ParamsCommands(ListedCommands):
    def _commands(self) -> list[Command]:
        screen = self.screen
        if not isinstance(screen, ParamsScreen):
            return []
        return [
            ("Load a preset", "its settings replace the form's (paths and concepts stay)", screen.action_load_preset),
            ("Save the settings as a preset", "^s", screen.action_save_preset),
            ("Revert all to the preset", "every ✎ field back to the preset's value", screen.action_revert_all),
            ("Show changes from the preset", "each changed setting with both values", screen.action_show_changes),
            ("Show this run as an sd-scripts TOML", "loratui export-kohya writes it", screen.action_show_kohya),
            ("Show the steps per bucket", "the estimate in full, as `loratui estimate` prints it",
             screen.action_show_estimate),
            ("Beginner / expert view", "^t", screen.action_toggle_view),
        ]


class ViewSwitch(Static, can_focus=True):
    """Row 3: ``View (◉) Beginner ( ) Expert``; space, enter or left/right switch it."""

    BINDINGS = [Binding("space,enter,left,right", "switch", show=False)]

    def action_switch(self) -> None:
        screen = self.screen
        if isinstance(screen, ParamsScreen):
            screen.action_toggle_view()


class ParamsScreen(StepScreen):
    HELP_TEXT = ("How long and how hard to train. Total steps = pictures x repeats x epochs / batch size (rounded up "
                 "per bucket); aim for 1 500-5 000. Change epochs first, then repeats; batch size is a memory choice. "
                 "Valid changes are saved to loratui.toml at once.")
    HELP_KEYS = (
        ("up down, tab", "move between fields"),
        ("enter", "confirm and go to the next field; on a choice: open its list"),
        ("space", "flip a switch"),
        ("^t", "beginner <-> expert view (every setting, in 10 groups)"),
        ("^o", "browse for the base model (or the focused path field)"),
        ("^s", "save the settings as a preset"),
        ("^z", "put the focused field back to the preset's value"),
    )
    COMMANDS = {ParamsCommands}
    BINDINGS = [
        Binding("ctrl+t", "toggle_view", "Expert", key_display="^t", id="params.view"),
        Binding("ctrl+o", "browse", "Browse", key_display="^o", id="params.browse"),
        Binding("ctrl+s", "save_preset", "Save preset", key_display="^s", id="params.save"),
        Binding("ctrl+z", "revert_field", "Undo", show=False, id="params.undo"),
        # priority: the form scrolls on up/down itself; here they move between fields (and scroll to them)
        Binding("down", "move(1)", show=False, priority=True),
        Binding("up", "move(-1)", show=False, priority=True),
    ]
    DEFAULT_CSS = """
    ParamsScreen #params-top { height: 1; }
    ParamsScreen #params-top Static { width: auto; }
    ParamsScreen #view-switch { margin-right: 3; }
    ParamsScreen #view-switch:focus, ParamsScreen Choice:focus, ParamsScreen Toggle:focus {
        text-style: bold reverse; }
    ParamsScreen #params-changed { margin-left: 2; }
    ParamsScreen #params-main { height: 1fr; }
    ParamsScreen #params-form { width: 1fr; height: 1fr; border: heavy $accent; padding: 0 0;
        scrollbar-size-vertical: 1; }
    ParamsScreen #params-steps-box { width: 32; height: 1fr; border: round $panel; padding: 0 1; }
    ParamsScreen.-wide #params-steps-box { width: 44; }
    ParamsScreen #steps-panel { height: auto; }
    ParamsScreen #fit-epochs { display: none; height: 1; border: none; min-width: 0; padding: 0; }
    ParamsScreen #fit-epochs.-shown { display: block; }
    ParamsScreen .group-header { height: 1; text-style: bold; padding-left: 1; display: none; }
    ParamsScreen.-expert .group-header { display: block; }
    ParamsScreen .expert-only { display: none; }
    ParamsScreen.-expert .expert-only { display: block; }
    ParamsScreen.-expert FieldRow .field-label { width: 19; }
    ParamsScreen.-expert FieldRow .field-below { padding-left: 21; }
    ParamsScreen #beginner-note { padding: 1 0 0 2; height: auto; }
    ParamsScreen.-expert #beginner-note { display: none; }
    ParamsScreen #params-valid { height: 1; }
    ParamsScreen #params-help { height: 2; }
    ParamsScreen.-wide #params-help { height: 4; }
    ParamsScreen .-ascii-box { border: ascii $panel; }
    """

    def __init__(self, step) -> None:  # noqa: ANN001
        super().__init__(step)
        self.disk: Config | None = None  # loratui.toml as last read or written
        self.form: Config | None = None  # the same with the form's edits (maybe not valid yet)
        self.baseline: Config = Config()  # the preset's values (or the defaults) for ✎ and ^z
        self.baseline_name = ""
        self.expert = False
        self.rows: list[FieldRow] = []
        self.problems: dict[tuple[str, int], str] = {}
        self.family: str | None = None
        self.model_note = ""
        self.pictures: list | None = None  # ConceptPictures, read once in a thread
        self.pictures_error = ""
        self.estimate = None
        self.read_only = ""  # another wizard edits this project's settings: why this one does not
        self._save_timer = None
        self._check_timer = None
        self._checked_model: str | None = None
        self._load_problem = ""

    # --- layout ---------------------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        self._read_disk()
        form = self.form or Config()
        with Horizontal(id="params-top"):
            yield Static("View ")
            yield ViewSwitch("", id="view-switch")
            yield Static("Preset ")
            yield Choice(self.baseline_name or NO_PRESET, self._preset_names(), "Load preset", classes="preset-choice")
            yield Static("", id="params-changed")
        with Horizontal(id="params-main"):
            with VerticalScroll(id="params-form"):
                yield from self._compose_rows(form)
                yield Static("", id="beginner-note")
            with Vertical(id="params-steps-box"):
                yield StepsPanel("counting the pictures…", id="steps-panel")
                # Brackets so it reads as a button without colour (MarkedButton adds them itself under --ascii)
                yield MarkedButton("Fit epochs" if self.wizard.ascii_only else "[ Fit epochs ]", id="fit-epochs")
        yield Static("", id="params-valid")
        yield Static("", id="params-help")

    def _compose_rows(self, form: Config) -> ComposeResult:
        self.rows = []
        group = ""
        for spec in (*FIELDS, *ELSEWHERE_FIELDS):
            if spec.group != group:
                group = spec.group
                yield Static(Text(f"── {group} ──" if not self.wizard.ascii_only else f"-- {group} --"),
                             classes="group-header")
            for concept in self._concepts_of(spec, form):
                row = FieldRow(spec, read(form, spec, concept) if form.concepts or spec.section != CONCEPTS else "",
                               concept=concept, fixed=self._fixed_text(spec, form, concept),
                               width=_width_class(spec))
                if not spec.beginner:
                    row.add_class("expert-only")
                self.rows.append(row)
                yield row

    def _concepts_of(self, spec: FieldSpec, form: Config) -> range:
        if spec.section != CONCEPTS:
            return range(1)
        if spec.key == "trigger":
            return range(1)  # one row names every concept's trigger
        return range(max(1, len(form.concepts)))

    def on_mount(self) -> None:
        super().on_mount()
        if self.wizard.ascii_only:
            for box in self.query("#params-form, #params-steps-box"):
                box.add_class("-ascii-box")
        self.query_one("#params-steps-box").border_title = "Steps"
        self._claim_settings()
        if self.form is not None and self.form.project.base_model:
            self._schedule_model_check()
        self._draw_view()
        self._refresh_all()
        self._read_pictures()
        self.call_after_refresh(self._first_focus)

    def _claim_settings(self) -> None:
        holder = getattr(self.wizard, "settings_holder", None)
        if holder is not None:
            self.read_only = holder.describe()
            for row in self.rows:
                editor = row.editor
                if editor is not None:
                    editor.disabled = True
            self.query_one(".preset-choice", Choice).disabled = True

    def _first_focus(self) -> None:
        """The first invalid field, else the base model when empty, else Epochs (design §4.4)."""
        target = self._first_problem_row()
        if target is None and self.form is not None and not self.form.project.base_model:
            target = self._row("project.base_model")
        target = target or self._row("training.epochs")
        self._focus_row(target)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        # Crop and Tags may have changed the resolution, the trigger or the pictures meanwhile.
        if self.form is not None and not self._pending_edits():
            self._read_disk()
            self._reload_rows()
        self._read_pictures()

    def on_screen_suspend(self) -> None:
        self._save_now()

    def wide_changed(self) -> None:
        self._refresh_estimate()
        self._show_help(self.focused)

    # --- reading --------------------------------------------------------------------------------------------

    def _read_disk(self) -> None:
        project = self.wizard.project
        if project is None:
            return
        try:
            self.disk = project.load()
            self._load_problem = ""
        except LoratuiError as exc:
            self.disk = None
            self._load_problem = str(exc).splitlines()[0]
        self.form = copy.deepcopy(self.disk) if self.disk is not None else None
        self._read_baseline()

    def _read_baseline(self) -> None:
        from loratui.presets import find_preset

        name = self.form.project.preset if self.form else ""
        self.baseline, self.baseline_name = Config(), ""
        if name:
            try:
                self.baseline, self.baseline_name = find_preset(name).config, name
            except LoratuiError:
                self.baseline_name = ""  # a user preset deleted since: compare with the defaults

    def _preset_names(self) -> tuple[str, ...]:
        from loratui.presets import list_presets

        try:
            names = [preset.name for preset in list_presets()]
        except LoratuiError:
            names = []
        return (NO_PRESET, *names)

    def _reload_rows(self) -> None:
        form = self.form
        if form is None:
            return
        for row in self.rows:
            if row.spec.readonly or row.fixed:
                row.set_fixed(self._fixed_text(row.spec, form, row.concept))
            elif row.spec.section != CONCEPTS or row.concept < len(form.concepts):
                row.set_text(_editor_text(row.spec, read(form, row.spec, row.concept)))
        self.query_one(".preset-choice", Choice).set_value(self.baseline_name or NO_PRESET)
        self._refresh_all()

    @work(thread=True, exclusive=True, group="params-pictures", exit_on_error=False)
    def _read_pictures(self) -> None:
        from loratui.training.estimate import detected_gpu_name, read_concepts

        project, form = self.wizard.project, self.form
        if project is None or form is None:
            return
        detected_gpu_name()  # nvidia-smi once, here, not on the first keystroke
        try:
            pictures, error = read_concepts(project, form), ""
        except (LoratuiError, OSError) as exc:
            pictures, error = None, _no_pictures_reason(str(exc))
        self.app.call_from_thread(self._pictures_read, pictures, error)

    def _pictures_read(self, pictures: list | None, error: str) -> None:
        self.pictures, self.pictures_error = pictures, error
        self._refresh_estimate()

    # --- editing --------------------------------------------------------------------------------------------

    def on_edited(self, event: Edited) -> None:
        event.stop()
        if self.form is None or self.read_only:
            return
        row, spec = event.row, event.row.spec
        value = (event.text == "true") if spec.is_bool else parse(spec, event.text)
        if value == read(self.form, spec, row.concept) and type(value) is type(read(self.form, spec, row.concept)):
            return  # the editor echoing what it was given
        write(self.form, spec, value, row.concept)
        self._refresh_all()
        if spec.setting == "project.base_model":
            self._schedule_model_check()
        if spec.setting == "concepts.repeats" or spec.setting == "project.output_name":
            self._refresh_fixed()
        if spec.hint() is not str:
            self._schedule_save()
        # Text (a path, a name, a prompt) is saved on enter or when the field is left, never half-typed.

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._save_now()
        self.action_move(1)

    def on_descendant_blur(self, event) -> None:  # noqa: ANN001
        if self._pending_edits():
            self._save_now()

    def on_descendant_focus(self, event) -> None:  # noqa: ANN001
        widget = event.widget
        for row in self.rows:
            row.set_focused(row in widget.ancestors_with_self, self.wizard.glyphs.cursor)
        self._show_help(widget)

    def action_move(self, delta: int) -> None:
        """up/down: the previous or next field that is shown and can be edited (read-only rows are skipped)."""
        focusable = [w for w in self.focus_chain if not isinstance(w, Button) or w.id == "fit-epochs"]
        focused = self.focused
        if focused not in focusable:
            if focusable:
                focusable[0].focus()
            return
        index = focusable.index(focused) + delta
        if 0 <= index < len(focusable):
            focusable[index].focus()
            focusable[index].scroll_visible()

    def _focus_row(self, row: FieldRow | None) -> None:
        if row is None:
            return
        editor = row.editor
        if editor is not None and editor.display and not editor.disabled:
            editor.focus()
            row.scroll_visible()
        else:
            self.query_one("#view-switch").focus()

    # --- checking and the estimate --------------------------------------------------------------------------

    def _refresh_all(self) -> None:
        self._check()
        self._refresh_notes()
        self._refresh_estimate()
        self._refresh_top()
        self._show_help(self.focused)

    def _check(self) -> None:
        from loratui.config_io import config_problems

        self.problems = {}
        if self.form is None:
            return
        for problem in config_problems(self.form):
            if problem.is_warning:
                continue
            place = _place_of(problem)
            if place is not None and place not in self.problems:
                self.problems[place] = problem.message

    def _refresh_notes(self) -> None:
        form = self.form
        if form is None:
            return
        failed = self.wizard.glyphs.failed
        for row in self.rows:
            spec = row.spec
            problem = self.problems.get((spec.setting, row.concept))
            note, below = "", ""
            if problem:
                note, below = f"{failed} not valid", f"{failed} {problem}"
            elif spec.setting == "concepts.repeats" and row.concept < len(form.concepts):
                concept = form.concepts[row.concept]
                note = f"{concept.repeats}_{concept.name}"
                if self._changed(spec, row.concept):
                    note += f" {self.wizard.glyphs.changed} {self._compared_with()}: {self._baseline_value(spec)}"
            elif self._changed(spec, row.concept):
                note = f"{self.wizard.glyphs.changed} {self._compared_with()}: {shown(self._baseline_value(spec))}"
            if spec.setting == "project.base_model" and not problem:
                below = self.model_note if form.project.base_model else "none: required (^o browses)"
            if spec.unit and not spec.readonly and not problem and not note:
                note = spec.unit
            if note and not below and not row.fits(note):
                note, below = "", note  # a long value (cosine_with_restarts) leaves no room beside it
            row.set_note(note)
            row.set_below(below)

    def _changed(self, spec: FieldSpec, concept: int) -> bool:
        if self.form is None or spec.readonly or spec.setting in NOT_COMPARED:
            return False
        if spec.section not in PRESET_SECTIONS and spec.setting != "concepts.repeats":
            return False
        return read(self.form, spec, concept) != self._baseline_value(spec)

    def _compared_with(self) -> str:
        return "preset" if self.baseline_name else "default"

    def _baseline_value(self, spec: FieldSpec) -> Any:
        """The preset's value (a preset holds no concepts: the repeats compare with loratui's default)."""
        if spec.section == CONCEPTS:
            from loratui.config import Concept

            return getattr(Concept(), spec.key)
        return copy.deepcopy(read(self.baseline, spec, 0))

    def changed_fields(self) -> list[tuple[FieldSpec, int]]:
        return [(row.spec, row.concept) for row in self.rows if self._changed(row.spec, row.concept)]

    def _refresh_top(self) -> None:
        view = self.query_one("#view-switch", ViewSwitch)
        on, off = self.wizard.glyphs.on, " "
        view.update(Text(f"({off if self.expert else on}) Beginner ({on if self.expert else off}) Expert"))
        source = "the preset" if self.baseline_name else "loratui's defaults"
        self.query_one("#beginner-note", Static).update(
            Text(f"Everything else: {source}.\n^t Expert shows and explains all of it."))
        count = len(self.changed_fields())
        changed = self.query_one("#params-changed", Static)
        changed.update(Text(f"{count} changed {self.wizard.glyphs.changed}" if count else "no changes"))

    def _refresh_estimate(self) -> None:
        from loratui.training.estimate import estimate

        panel = self.query_one("#steps-panel", StepsPanel)
        fit = self.query_one("#fit-epochs", MarkedButton)
        project, form = self.wizard.project, self.form
        self.estimate = None
        if project is None or form is None:
            panel.show_reason(self._load_problem or "No settings to count from.")
            fit.set_class(False, "-shown")
            return
        if self.pictures is None:
            panel.show_reason(self.pictures_error or "counting the pictures…")
            fit.set_class(False, "-shown")
            return
        counted = [s for s in ("training.epochs", "training.batch_size", "training.save_every_n_epochs",
                               "training.gradient_accumulation_steps", "training.gpus", "concepts.repeats",
                               "dataset.min_bucket_reso", "dataset.max_bucket_reso", "dataset.bucket_reso_steps")
                   if any(place[0] == s for place in self.problems)]
        if counted:
            label = next(spec.label for spec in FIELDS if spec.setting == counted[0])
            panel.show_reason(f"Fix {label} to see the steps.")
            fit.set_class(False, "-shown")
            return
        try:
            result = estimate(project, form, family=self.family, pictures=self.pictures)
        except (LoratuiError, ValueError, TypeError, ZeroDivisionError) as exc:
            panel.show_reason(str(exc).splitlines()[0])
            fit.set_class(False, "-shown")
            return
        self.estimate = result
        panel.show_estimate(result, done=self.wizard.glyphs.done, wide=self.wide)
        fit.set_class(not result.in_range and result.fit_epochs is not None, "-shown")

    # --- the help rows (20-22) ------------------------------------------------------------------------------

    def _show_help(self, widget: Widget | None) -> None:
        valid = self.query_one("#params-valid", Static)
        help_line = self.query_one("#params-help", Static)
        row = next((r for r in self.rows if widget is not None and r in widget.ancestors_with_self), None)
        first = self._first_problem()
        if self.read_only:
            state = f"! {self.read_only}"
        elif self._load_problem:
            state = f"{self.wizard.glyphs.failed} {self._load_problem}"
        elif first is not None:
            spec, concept, message = first
            state = f"{self.wizard.glyphs.failed} {spec.label}: {message}"
        else:
            state = f"{self.wizard.glyphs.done} All settings valid."
        if row is not None:
            text = row.spec.help()
            if row.spec.readonly:
                number = {"Images": 1, "Crop": 2, "Tags": 3}.get(row.spec.set_in, 0)
                text += f" Set on step {row.spec.set_in}" + (f" (^g {number})." if number else ".")
            elif self.wide:
                text += "\n" + self._facts(row)  # 120x40: room for the default, the preset's value and the limits
            focused = f"  {row.label_text} (focused):" if first is None and not self.read_only else ""
            valid.update(Text(_cut(state + focused, max(20, self.size.width - 1))))
            help_line.update(Text(text))
        elif widget is not None and widget.id == "fit-epochs" and self.estimate is not None:
            valid.update(Text(_cut(state, max(20, self.size.width - 1))))
            help_line.update(Text(f"Sets epochs to {self._fit_value()}, the nearest count whose total lands in "
                                  "1 500-5 000 steps."))
        else:
            valid.update(Text(_cut(state, max(20, self.size.width - 1))))
            help_line.update(Text("^t switches between the beginner form and every setting; the preset's "
                                  "values are the ones ✎ compares with; ^s saves yours as a preset."))

    def _facts(self, row: FieldRow) -> str:
        """ "Default 10 · preset sd15-character: 10 · allowed: 1 to 10,000 · `loratui settings training.epochs`" """
        from loratui.commands.settings_cmd import limits_text
        from loratui.config import default_of

        spec = row.spec
        parts = [f"Default {shown(default_of(spec.section, spec.key))}"]
        if self.baseline_name and spec.section in PRESET_SECTIONS:
            parts.append(f"preset {self.baseline_name}: {shown(self._baseline_value(spec))}")
        limits = limits_text(spec.meta())
        if limits:
            parts.append(f"allowed: {limits}")
        parts.append(f"more: loratui settings {spec.section}.{spec.key}")
        return " · ".join(parts)

    def _first_problem(self) -> tuple[FieldSpec, int, str] | None:
        for row in self.rows:
            message = self.problems.get((row.spec.setting, row.concept))
            if message:
                return row.spec, row.concept, message
        return None

    def _first_problem_row(self) -> FieldRow | None:
        first = self._first_problem()
        if first is None:
            return None
        return next(r for r in self.rows if r.spec is first[0] and r.concept == first[1])

    def _row(self, setting: str, concept: int = 0) -> FieldRow | None:
        return next((r for r in self.rows if r.spec.setting == setting and r.concept == concept), None)

    # --- fixed texts ----------------------------------------------------------------------------------------

    def _fixed_text(self, spec: FieldSpec, form: Config, concept: int) -> str:
        if not spec.readonly:
            return ""
        where = f"(set in {spec.set_in})"
        if spec.setting == "dataset.resolution":
            return f"{form.dataset.resolution} px {where}"
        if spec.setting == "concepts.trigger":
            triggers = ", ".join(c.trigger for c in form.concepts if c.trigger)
            return f"{triggers or 'none yet'} {where}"
        value = read(form, spec, concept) if spec.section != CONCEPTS or form.concepts else None
        if isinstance(value, (list, dict)):
            return f"{len(value)} {where}"
        if isinstance(value, bool):
            return f"{'on' if value else 'off'} {where}"
        return f"{value or 'none'} {where}"

    def _refresh_fixed(self) -> None:
        if self.form is not None:
            for row in self.rows:
                if row.spec.readonly:
                    row.set_fixed(self._fixed_text(row.spec, self.form, row.concept))

    # --- the model check ------------------------------------------------------------------------------------

    def _schedule_model_check(self) -> None:
        if self._check_timer is not None:
            self._check_timer.stop()
        self.model_note = "checking…"
        self._refresh_notes()
        self._check_timer = self.set_timer(CHECK_DELAY_S, self._check_model)

    def _check_model(self) -> None:
        if self.form is not None:
            self._detect(self.form.project.base_model)

    @work(thread=True, exclusive=True, group="params-model", exit_on_error=False)
    def _detect(self, base_model: str) -> None:
        from loratui.training.model_family import detect_base_model

        project = self.wizard.project
        if project is None or not base_model:
            self.app.call_from_thread(self._detected, base_model, None, "")
            return
        try:
            detection = detect_base_model(base_model, project.root)
        except LoratuiError as exc:
            self.app.call_from_thread(self._detected, base_model, None, f"{self.wizard.glyphs.failed} {exc}")
            return
        except OSError as exc:
            self.app.call_from_thread(self._detected, base_model, None,
                                      f"{self.wizard.glyphs.failed} {base_model}: cannot be read ({exc})")
            return
        family = detection.family
        note = (f"{family_name(family)}, found {self.wizard.glyphs.done}" if family
                else f"found {self.wizard.glyphs.done}, type unknown: {detection.note or 'check it is SD1.5/2/XL'}")
        self.app.call_from_thread(self._detected, base_model, family, note)

    def _detected(self, base_model: str, family: str | None, note: str) -> None:
        if self.form is None or self.form.project.base_model != base_model:
            return  # typed on meanwhile: a newer check is on its way
        self.family, self.model_note, self._checked_model = family, note, base_model
        self._refresh_notes()
        self._refresh_estimate()

    # --- saving ---------------------------------------------------------------------------------------------

    def _pending_edits(self) -> list[tuple[FieldSpec, int]]:
        if self.form is None or self.disk is None:
            return []
        pending = []
        for row in self.rows:
            spec = row.spec
            if spec.readonly or (spec.section == CONCEPTS and row.concept >= len(self.form.concepts)):
                continue
            if read(self.form, spec, row.concept) != read(self.disk, spec, row.concept):
                pending.append((spec, row.concept))
        if self.form.project.preset != self.disk.project.preset:
            pending.append((FieldSpec("project.preset", "Preset", ""), 0))
        return pending

    def _schedule_save(self) -> None:
        if self._save_timer is not None:
            self._save_timer.stop()
        self._save_timer = self.set_timer(SAVE_DELAY_S, self._save_now)

    def _save_now(self) -> bool:
        """Write the pending edits when every field is valid; True when nothing is left unsaved."""
        if self._save_timer is not None:
            self._save_timer.stop()
            self._save_timer = None
        project, form = self.wizard.project, self.form
        pending = self._pending_edits()
        if project is None or form is None or not pending or self.read_only:
            return not pending
        if self.problems:
            return False
        values = [(spec, concept, copy.deepcopy(read(form, spec, concept))) for spec, concept in pending]

        def apply(config: Config) -> None:
            for spec, concept, value in values:
                if spec.section != CONCEPTS or concept < len(config.concepts):
                    write(config, spec, value, concept)

        try:
            self.disk = project.update(apply)
        except (LoratuiError, OSError) as exc:
            self.say(f"Not saved: {str(exc).splitlines()[0]}", "✗")
            return False
        names = ", ".join(dict.fromkeys(spec.label for spec, _, _ in values))
        self.say(f"Saved {_cut(names, 40)} to loratui.toml.")
        return True

    # --- actions --------------------------------------------------------------------------------------------

    def action_toggle_view(self) -> None:
        self.expert = not self.expert
        self._draw_view()
        self._refresh_top()
        focused = self.focused
        if focused is not None and not all(w.display for w in focused.ancestors_with_self if isinstance(w, Widget)):
            self._first_focus()

    def _draw_view(self) -> None:
        self.set_class(self.expert, "-expert")
        form = self.query_one("#params-form")
        form.border_title = "Expert: every setting" if self.expert else "Beginner"
        form.border_subtitle = "^t beginner" if self.expert else "^t expert"
        self._refresh_top()
        self.call_after_refresh(self._refresh_notes)  # rows just shown have a width now: notes may move below

    def action_revert_field(self) -> None:
        row = next((r for r in self.rows if self.focused is not None and r in self.focused.ancestors_with_self), None)
        if row is None or self.form is None:
            return
        if not self._changed(row.spec, row.concept) and (row.spec.setting, row.concept) not in self.problems:
            self.say(f"{row.label_text} already has the {self.baseline_name or 'default'} value.")
            return
        if row.spec.section == CONCEPTS or row.spec.section in PRESET_SECTIONS:
            value: Any = self._baseline_value(row.spec)
        elif self.disk is not None:
            value = read(self.disk, row.spec, 0)  # a project setting has no preset value: back to the saved one
        else:
            return
        write(self.form, row.spec, value, row.concept)
        row.set_text(_editor_text(row.spec, value))
        self._refresh_all()
        self._schedule_save()
        self.say(f"{row.label_text} is back to {shown(value)}.")

    def action_revert_all(self) -> None:
        if self.form is None:
            return
        changed = self.changed_fields()
        for spec, concept in changed:
            write(self.form, spec, self._baseline_value(spec), concept)
        self._reload_rows()
        self._schedule_save()
        self.say(f"{len(changed)} settings back to {self.baseline_name or 'the defaults'}.")

    def action_fit_epochs(self) -> None:
        if self.estimate is None or self.estimate.fit_epochs is None or self.form is None:
            return
        value = self._fit_value()
        self.form.training.epochs = value
        row = self._row("training.epochs")
        if row is not None:
            row.set_text(str(value))
        self._refresh_all()
        self._schedule_save()
        assert self.estimate is not None
        self.say(f"Epochs set to {value}: {self.estimate.total_steps} steps.")
        self._focus_row(row)

    def _fit_value(self) -> int:
        assert self.estimate is not None and self.estimate.fit_epochs is not None
        first, last = self.estimate.fit_epochs
        return max(first, min(last, self.estimate.epochs))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "fit-epochs":
            event.stop()
            self.action_fit_epochs()

    def action_browse(self) -> None:
        from loratui.tui.screens.model_browser import ModelBrowser

        if self.read_only:
            self.say(self.read_only, "!")
            return
        row = next((r for r in self.rows if self.focused is not None and r in self.focused.ancestors_with_self), None)
        if row is None or not row.spec.path:
            row = self._row("project.base_model")
        assert row is not None and self.form is not None and self.wizard.project is not None
        current = str(read(self.form, row.spec, 0) or "")
        self.app.push_screen(ModelBrowser(row.spec.label, current, self.wizard.project.root),
                             lambda path: self._browsed(row, path))

    def _browsed(self, row: FieldRow, path: str | None) -> None:
        if path is None:
            return
        row.set_text(path)
        self.on_edited(Edited(row, path))
        self._save_now()  # a picked path is whole, not half-typed
        self._focus_row(row)

    def on_choice_chosen(self, event: Choice.Chosen) -> None:
        """The preset field (the form's own choices are turned into Edited by their rows)."""
        event.stop()
        self.load_preset(event.value)

    def action_load_preset(self) -> None:
        self.query_one(".preset-choice", Choice).action_open()

    def load_preset(self, name: str) -> None:
        """Replace the form's preset settings by ``name``'s (asks first when fields were changed)."""
        from loratui.presets import apply_preset, find_preset

        if self.form is None:
            return
        if name == NO_PRESET:
            self.form.project.preset = ""
            self._read_baseline()
            self._refresh_all()
            self._schedule_save()
            self.say("No preset: ✎ now compares with loratui's defaults.")
            return
        try:
            preset = find_preset(name)
        except LoratuiError as exc:
            self.say(str(exc), "✗")
            return
        changed = len(self.changed_fields())

        def load(yes: bool | None) -> None:
            if not yes or self.form is None:
                self.query_one(".preset-choice", Choice).set_value(self.baseline_name or NO_PRESET)
                return
            apply_preset(self.form, preset)
            self._read_baseline()
            self._reload_rows()
            self.query_one(".preset-choice", Choice).set_value(name)
            self._schedule_save()
            self.say(f"Preset {name} loaded: {preset.description}")

        if changed:
            from loratui.tui.screens.preset_dialogs import ReplaceDialog

            self.app.push_screen(ReplaceDialog(
                f"Load preset {name}?",
                f"Your {changed} changed setting{'s go' if changed != 1 else ' goes'} back to {name}'s values. "
                "The base model, output name and concepts stay.", "Load it", "Keep mine"), load)
        else:
            load(True)

    def action_save_preset(self) -> None:
        from loratui.tui.screens.preset_dialogs import SavePresetDialog

        if self.form is None:
            return
        if self.read_only:
            self.say(self.read_only, "!")
            return
        if self.problems:
            first = self._first_problem()
            assert first is not None
            self.say(f"Fix {first[0].label} first: a preset keeps valid settings only.", "✗")
            return
        self.app.push_screen(SavePresetDialog(self.form, self.family or ""), self._preset_saved)

    def _preset_saved(self, name: str | None) -> None:
        if not name or self.form is None:
            return
        self.form.project.preset = name
        self._read_baseline()
        self.query_one(".preset-choice", Choice).choices = self._preset_names()
        self.query_one(".preset-choice", Choice).set_value(name)
        self._refresh_all()
        self._save_now()
        self.say(f"Saved preset {name}; this project now compares with it.")

    def action_show_changes(self) -> None:
        from loratui.tui.screens.message import MessageScreen

        changed = self.changed_fields()
        if not changed or self.form is None:
            self.say(f"No setting differs from {self.baseline_name or 'the defaults'}.")
            return
        lines = [f"Changed from {self.baseline_name or 'the defaults'}:"]
        for spec, concept in changed:
            before = self._baseline_value(spec)
            lines.append(f"  {spec.setting}: {shown(before)} -> {shown(read(self.form, spec, concept))}")
        self.app.push_screen(MessageScreen(lines))

    def action_show_kohya(self) -> None:
        project = self.wizard.project
        if project is None:
            return
        self._save_now()
        self.say(f"From a shell: loratui export-kohya {project.root}  (writes kohya-config.toml and the launch line)")

    def action_show_estimate(self) -> None:
        from loratui.commands.estimate_cmd import render
        from loratui.tui.screens.message import MessageScreen

        if self.estimate is None:
            self.say("No estimate yet: " + (self.pictures_error or "fix the settings first."), "!")
            return
        self.app.push_screen(MessageScreen(render(self.estimate)))

    # --- the frame ------------------------------------------------------------------------------------------

    def ready_for_next(self) -> bool:
        first = self._first_problem()
        if first is not None:
            spec, concept, message = first
            self._focus_row(self._first_problem_row())
            self.say(f"{spec.label}: {message}", "✗")
            return False
        if self._load_problem:
            self.say(self._load_problem, "✗")
            return False
        if not self._save_now() and not self.read_only:
            return False
        return True


def _width_class(spec: FieldSpec) -> str:
    hint = spec.hint()
    if hint is str:
        return "-wide-input" if spec.path or spec.key in ("prompt", "negative_prompt") else "-long-input"
    if spec.key == "weights":
        return "-long-input"
    return ""


def _editor_text(spec: FieldSpec, value: Any) -> str:
    if spec.is_bool:
        return "true" if value else "false"
    return shown(value)


def _place_of(problem: Problem) -> tuple[str, int] | None:
    """``training.epochs`` -> ("training.epochs", 0); ``concepts[2].repeats`` -> ("concepts.repeats", 1)."""
    key = problem.key.split(" ")[0]
    if key.startswith("concepts["):
        index, _, rest = key[len("concepts["):].partition("]")
        try:
            return f"concepts{rest}", int(index) - 1
        except ValueError:
            return None
    if key.count(".") < 1:
        return None
    section, _, name = key.partition(".")
    return f"{section}.{name.split('[')[0].split('.')[0]}", 0


def _no_pictures_reason(message: str) -> str:
    if "no prepared pictures" in message:
        return "No prepared pictures yet: Crop (^g 2) prepares them; the steps follow from them."
    return message.splitlines()[0]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"

