"""`^s` on Preview (design §4.6): install the picked (else suggested) checkpoint into a WebUI, Forge or ComfyUI
Lora folder: a list of the folders found on this machine plus a typed one, the name (with the file it makes),
the card's preferred weight and the A1111 card switch. A file already there asks keep both / replace / cancel;
the install runs in a thread through the engine, and the dialog ends on how to call the LoRA in A1111 and ComfyUI."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, OptionList, Static

from loratui.errors import LoratuiError
from loratui.project import Project
from loratui.tui.glyphs import UNICODE
from loratui.tui.screens.confirm import ConfirmDialog
from loratui.tui.widgets.marked_button import MarkedButton

DEMO_LORA_FOLDER = Path("webui") / "models" / "Lora"  # the demo's stand-in for a WebUI (loratui.demo.headless)
WEIGHT_RANGE = (-2.0, 2.0)


@dataclass
class InstallPlan:
    """What the dialog offers: the engine's choice of checkpoint and weight, the folders found, the defaults."""

    checkpoint: Path
    shown: str  # the checkpoint as the dialog names it: "ep04 at 0.8 (output/akari-000004.safetensors)"
    why: str
    weight: float
    name: str
    trigger: str
    folders: list[Path] = field(default_factory=list)
    prompt: str | None = None
    negative_prompt: str | None = None


def lora_folders(project: Project) -> list[Path]:
    """The project's own webui/models/Lora first (the demo's), then the WebUI, Forge and ComfyUI folders found
    under the home folder, /workspace and /opt."""
    from loratui.preview.install import find_lora_folders

    found = [project.root / DEMO_LORA_FOLDER] if (project.root / DEMO_LORA_FOLDER).is_dir() else []
    for folder in find_lora_folders():
        if all(folder.resolve() != known.resolve() for known in found):
            found.append(folder)
    return found


def install_plan(project: Project) -> InstallPlan | str:
    """The dialog's defaults (a thread runs this: it reads headers and lists folders); a one-line reason if there
    is nothing to install."""
    from loratui.preview.grid_file import read_grid
    from loratui.preview.grid_plan import format_weight, stored_path
    from loratui.preview.install import choose_checkpoint

    try:
        config = project.load()
        choice = choose_checkpoint(project, config)
        try:
            grid = read_grid(project)
        except LoratuiError:
            grid = None
    except (LoratuiError, OSError) as exc:
        return str(exc)
    stored = stored_path(choice.checkpoint, project.root)
    label = next((c.label for c in grid.cells if c.checkpoint == stored), "") if grid is not None else ""
    weight = choice.weight if choice.weight is not None else 1.0
    shown = f"{label} at {format_weight(weight)} ({stored})" if label else stored
    trigger = ", ".join(dict.fromkeys(c.trigger for c in config.concepts if c.trigger))
    return InstallPlan(choice.checkpoint, shown, choice.why, weight, project.output_name(config), trigger,
                       lora_folders(project), choice.prompt, choice.negative_prompt)


def home_path(path: Path) -> str:
    """`/home/me/sd/models/Lora` -> `~/sd/models/Lora`: shorter, and what the user types."""
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


class FolderList(OptionList):
    """The folders found; up/down move, space or enter chooses the highlighted one."""

    BINDINGS = [Binding("space", "select", "Choose", show=False)]


class CardSwitch(Static, can_focus=True):
    """`[✓] write the A1111 card` / `[ ] ...`: the state is written, not coloured; space or enter switches it."""

    BINDINGS = [Binding("space,enter", "switch", "Switch", show=False)]

    def __init__(self, on: bool, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("", id=id, markup=False)
        self.on = on

    def on_mount(self) -> None:
        self.show_state("")

    def show_state(self, card_name: str) -> None:
        self.card_name = card_name or getattr(self, "card_name", "")
        mark = getattr(getattr(self.app, "glyphs", None), "done", "v") if self.on else " "
        self.update(f"[{mark}] write the A1111 card (trigger word, weight){': ' + self.card_name if self.on else ''}")

    def action_switch(self) -> None:
        self.on = not self.on
        self.show_state("")


class ExistsDialog(ConfirmDialog[str | None]):
    """A LoRA of that name is already in the folder: keep both (focused), replace (`r`, never enter) or cancel."""

    DEFAULT_CSS = """
    ExistsDialog { align: center middle; }
    ExistsDialog #exists-box { width: 66; height: auto; border: heavy $accent; background: $surface; padding: 0 1; }
    ExistsDialog #exists-buttons { height: auto; margin-top: 1; }
    ExistsDialog Button { margin-right: 2; }
    .-ascii ExistsDialog #exists-box { border: ascii $accent; }
    """
    SCOPED_CSS = False
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("r", "replace", "Replace")]

    def __init__(self, file_name: str, described: str, free: str) -> None:
        super().__init__()
        self.file_name, self.described, self.free = file_name, described, free

    def compose(self) -> ComposeResult:
        with Vertical(id="exists-box") as box:
            box.border_title = "Already installed"
            box.border_subtitle = "esc cancels"
            yield Static(f"{self.file_name} is already there ({self.described}).\nKeep both: the new one goes in "
                         f"as {self.free}. Replace (r): the old one and its card are overwritten.", markup=False)
            with Horizontal(id="exists-buttons"):
                yield MarkedButton(f"Keep both: {self.free}", id="keep", variant="primary")
                yield MarkedButton("Replace (r)", id="replace")
                yield MarkedButton("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss({"keep": "keep", "replace": "replace"}.get(event.button.id or ""))

    def action_replace(self) -> None:
        self.dismiss("replace")

    def action_cancel(self) -> None:
        self.dismiss(None)


class InstallDialog(ConfirmDialog[str | None]):
    """Returns the status line's message once installed, None when cancelled."""

    DEFAULT_CSS = """
    InstallDialog { align: center middle; }
    InstallDialog #install-box { width: 78; height: auto; max-height: 100%; border: heavy $accent;
        background: $surface; padding: 0 1; }
    InstallDialog #install-form { height: auto; }
    InstallDialog .row { height: 1; }
    InstallDialog .row Static { width: auto; }
    InstallDialog Input, InstallDialog Input:focus { border: none; height: 1; padding: 0; }
    InstallDialog #install-other { width: 1fr; }
    InstallDialog #install-name { width: 24; }
    InstallDialog #install-weight { width: 6; }
    InstallDialog FolderList, InstallDialog FolderList:focus { height: auto; max-height: 4; border: none; padding: 0; }
    InstallDialog #install-error { height: auto; }
    InstallDialog #install-form Static { height: auto; }
    InstallDialog #install-buttons, InstallDialog #install-done-buttons { height: auto; align-horizontal: right; }
    InstallDialog Button { margin-left: 1; }
    InstallDialog #install-done, InstallDialog #install-done-buttons { display: none; }
    InstallDialog.-done #install-done, InstallDialog.-done #install-done-buttons { display: block; }
    InstallDialog.-done #install-form, InstallDialog.-done #install-buttons { display: none; }
    .-ascii InstallDialog #install-box { border: ascii $accent; }
    """
    SCOPED_CSS = False
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+o", "browse", "Type a folder", key_display="^o")]

    def __init__(self, plan: InstallPlan) -> None:
        super().__init__()
        self.plan = plan
        self.chosen = 0  # the folder of the list (when no folder is typed)
        self.busy = False
        self.message: str | None = None

    def compose(self) -> ComposeResult:
        from loratui.preview.grid_plan import format_weight

        plan = self.plan
        with Vertical(id="install-box") as box:
            box.border_title = "Install the LoRA"
            box.border_subtitle = "esc cancels"
            with Vertical(id="install-form"):
                yield Static(f"{plan.shown}: {plan.why}", markup=False)  # wraps: the reason is read whole
                found = "up/down, space chooses" if plan.folders else "none found: type one below"
                yield Static(f"Lora folder ({found}):", markup=False)
                yield FolderList(*self._folder_prompts(), id="install-folders")
                with Horizontal(classes="row"):
                    yield Static("Other folder [", markup=False)
                    yield Input("", id="install-other", placeholder="typed here, it is used instead (^o)",
                                select_on_focus=False)
                    yield Static("]", markup=False)
                with Horizontal(classes="row"):
                    yield Static("Name   [", markup=False)
                    yield Input(plan.name, id="install-name", select_on_focus=False)
                    yield Static("]", markup=False)
                    yield Static("", id="install-file", markup=False)
                with Horizontal(classes="row"):
                    yield Static("Weight [", markup=False)
                    yield Input(format_weight(plan.weight), id="install-weight", select_on_focus=False)
                    yield Static("] the preferred weight on the card and in the prompt", markup=False)
                yield CardSwitch(True, id="install-card")
                yield Static("", id="install-error", markup=False)
            with Horizontal(id="install-buttons"):
                yield MarkedButton("Install", id="install", variant="primary")
                yield MarkedButton("Cancel", id="cancel")
            yield Static("", id="install-done", markup=False)
            with Horizontal(id="install-done-buttons"):
                yield MarkedButton("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        folders = self.query_one(FolderList)
        folders.display = bool(self.plan.folders)
        if self.plan.folders:
            folders.highlighted = 0
        self._show_file()
        self.query_one("#install", Button).focus()

    # --- the folder -----------------------------------------------------------------------------------------

    def _folder_prompts(self) -> list[str]:
        on = getattr(self.app, "glyphs", UNICODE).on
        typed = self._typed()
        return [f"({on if index == self.chosen and not typed else ' '}) {home_path(folder)}"
                for index, folder in enumerate(self.plan.folders)]

    def _typed(self) -> str:
        try:
            return self.query_one("#install-other", Input).value.strip()
        except Exception:  # noqa: BLE001 - before the field exists (the first prompts)
            return ""

    def _redraw_folders(self) -> None:
        folders = self.query_one(FolderList)
        for index, prompt in enumerate(self._folder_prompts()):
            folders.replace_option_prompt_at_index(index, prompt)

    @on(OptionList.OptionSelected, "#install-folders")
    def _folder_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.chosen = event.option_index
        self.query_one("#install-other", Input).value = ""
        self._redraw_folders()
        self._show_file()

    def folder(self) -> Path | None:
        typed = self._typed()
        if typed:
            return Path(typed).expanduser()
        return self.plan.folders[self.chosen] if self.plan.folders else None

    def action_browse(self) -> None:
        # No folder browser in the wizard yet: ^o goes to the typed path, as design §2.7 lets a path be typed.
        self.query_one("#install-other", Input).focus()

    # --- name and file --------------------------------------------------------------------------------------

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        if event.input.id == "install-other":
            self._redraw_folders()
        self._show_file()

    def _show_file(self) -> None:
        from loratui.preview.install import CARD_SUFFIX, LORA_SUFFIX, check_name, existing_install

        name = self.query_one("#install-name", Input).value.strip()
        try:
            name = check_name(name)
        except LoratuiError:
            self.query_one("#install-file", Static).update(" (letters, digits, - _ . only)")
            return
        folder = self.folder()
        there = folder is not None and existing_install(folder, name) is not None
        self.query_one("#install-file", Static).update(f" -> {name}{LORA_SUFFIX}"
                                                       f"{' (already there)' if there else ''}")
        self.query_one(CardSwitch).show_state(f"{name}{CARD_SUFFIX}")

    def _error(self, message: str, field: str | None = None) -> None:
        failed = getattr(getattr(self.app, "glyphs", None), "failed", "x")
        self.query_one("#install-error", Static).update(f"{failed} {message}" if message else "")
        if field:
            self.query_one(field).focus()

    # --- installing -----------------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_install()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "install":
            self.action_install()
        elif event.button.id == "close":
            self.dismiss(self.message)
        else:
            self.dismiss(None)

    def _choices(self) -> tuple[Path, str, float] | None:
        from loratui.preview.install import check_name

        folder = self.folder()
        if folder is None:
            self._error("Lora folder: none found here - type the folder your WebUI or ComfyUI reads LoRAs from.",
                        "#install-other")
            return None
        try:
            name = check_name(self.query_one("#install-name", Input).value)
        except LoratuiError as exc:
            self._error(f"Name: {exc}", "#install-name")
            return None
        text = self.query_one("#install-weight", Input).value.strip()
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or not WEIGHT_RANGE[0] <= weight <= WEIGHT_RANGE[1]:
            self._error(f"Weight: {text or 'empty'} is not a number from {WEIGHT_RANGE[0]:g} to "
                        f"{WEIGHT_RANGE[1]:g} - 0.6 to 1.0 is usual", "#install-weight")
            return None
        return folder, name, weight

    def action_install(self) -> None:
        if self.busy or self.has_class("-done"):
            return
        choices = self._choices()
        if choices is None:
            return
        folder, name, weight = choices
        from loratui.preview.install import LORA_SUFFIX, existing_install, free_name

        existing = existing_install(folder, name)
        if existing is None:
            self._run(folder, name, weight, "")
            return
        self.app.push_screen(ExistsDialog(f"{name}{LORA_SUFFIX}", existing.describe(), free_name(folder, name)),
                             lambda how: self._after_exists(how, folder, name, weight))

    def _after_exists(self, how: str | None, folder: Path, name: str, weight: float) -> None:
        if how is None:
            self._error("Nothing installed: the file there is as it was. Change the name, or install again.")
            self.query_one("#install-name", Input).focus()
            return
        self._run(folder, name, weight, how)

    def _run(self, folder: Path, name: str, weight: float, how: str) -> None:
        self.busy = True
        self._error("")
        self.query_one("#install-error", Static).update("Installing… (copying the file)")
        self._install(folder, name, weight, how, self.query_one(CardSwitch).on)

    @work(thread=True, exclusive=True, group="install", exit_on_error=False)
    def _install(self, folder: Path, name: str, weight: float, how: str, card: bool) -> None:
        from loratui.lora.read import read_lora
        from loratui.preview.install import card_for, install_lora

        project = getattr(self.app, "project", None)
        plan = self.plan
        try:
            config = project.load()
            made = card_for(project, config, read_lora(plan.checkpoint), weight, plan.prompt,
                            plan.negative_prompt) if card else None
            result = install_lora(plan.checkpoint, folder, name, card=made, force=how == "replace",
                                  keep_both=how == "keep", project=project)
        except (LoratuiError, OSError) as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._done, result, weight)

    def _failed(self, message: str) -> None:
        self.busy = False
        self._error(message)

    def _done(self, result, weight: float) -> None:  # noqa: ANN001
        from loratui.preview.grid_plan import format_weight
        from loratui.preview.install import human_size

        self.busy = False
        glyphs = getattr(self.app, "glyphs", None)
        done = getattr(glyphs, "done", "v")
        name, folder = result.path.stem, result.path.parent
        strength = f"{weight:g}" if weight != 1 else format_weight(weight)
        trigger = f", {self.plan.trigger}" if self.plan.trigger else ""
        verb = "Replaced" if result.replaced else "Installed"
        lines = [f"{done} {verb} {result.path.name} ({human_size(result.size)})", f"  in {home_path(folder)}"]
        if result.renamed_from:
            lines.append(f"  {result.renamed_from}.safetensors stays as it was; this one is {result.path.name}.")
        if result.card_path is not None:
            lines.append(f"  Card: {result.card_path.name} (trigger word and weight {strength} on its card).")
        lines += ["", f"In A1111/Forge: <lora:{name}:{strength}>{trigger}",
                  f"In ComfyUI: a LoraLoader node with {result.path.name}, strength {strength}"]
        self.query_one("#install-done", Static).update("\n".join(lines))
        self.query_one("#install-box").border_title = "Installed"
        self.query_one("#install-box").border_subtitle = "enter closes"
        self.add_class("-done")
        self.query_one("#close", Button).focus()
        # The syntax first: the status line is one row, and it is what the user copies next.
        self.message = f"Installed {result.path.name}: <lora:{name}:{strength}>{trigger} (in {home_path(folder)})"

    def action_cancel(self) -> None:
        if self.busy:
            return  # the copy is atomic and quick: the dialog closes on its result
        self.dismiss(self.message)
