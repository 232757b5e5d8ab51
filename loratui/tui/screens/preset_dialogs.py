"""The preset dialogs of step 4: save the settings under a name (``^s``), and confirm a replace (an existing
preset, a preset loaded over changed fields). The safe answer is focused; esc means it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from loratui.config import Config
from loratui.errors import LoratuiError
from loratui.tui.screens.confirm import ConfirmDialog
from loratui.tui.widgets.marked_button import MarkedButton

DIALOG_CSS = """
SavePresetDialog, ReplaceDialog { align: center middle; }
#preset-box, #replace-box { width: 66; height: auto; border: heavy $accent; background: $surface; padding: 0 1; }
#preset-box Input { margin-bottom: 1; }
#preset-error { height: auto; }
#preset-buttons, #replace-buttons { height: auto; margin-top: 1; }
#preset-buttons Button, #replace-buttons Button { margin-right: 2; }
.-ascii #preset-box, .-ascii #replace-box { border: ascii $accent; }
.-ascii #preset-box Input, .-ascii #preset-box Input:focus { border: ascii $accent; }
"""


class ReplaceDialog(ConfirmDialog[bool]):
    """Yes or no about replacing something; "no" is focused (nothing is lost by it)."""

    DEFAULT_CSS = DIALOG_CSS
    SCOPED_CSS = False
    BINDINGS = [Binding("escape", "no", "Keep"), Binding("r", "yes", show=False)]

    def __init__(self, title: str, text: str, yes: str, no: str) -> None:
        super().__init__()
        self.title_text, self.text, self.yes, self.no = title, text, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="replace-box") as box:
            box.border_title = self.title_text
            yield Static(self.text)
            with Horizontal(id="replace-buttons"):
                yield MarkedButton(self.no, id="no", variant="primary")
                yield MarkedButton(f"{self.yes} (r)", id="yes")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)


class SavePresetDialog(ConfirmDialog[str | None]):
    """``^s``: a name and one line of description; an existing name asks before it is replaced."""

    DEFAULT_CSS = DIALOG_CSS
    SCOPED_CSS = False
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, config: Config, family: str = "") -> None:
        super().__init__()
        self.config, self.family = config, family

    def compose(self) -> ComposeResult:
        suggested = f"my-{self.config.project.preset}" if self.config.project.preset else "my-preset"
        if self.config.project.preset.startswith("my-"):
            suggested = self.config.project.preset
        with Vertical(id="preset-box") as box:
            box.border_title = "Save the settings as a preset"
            yield Static("Name (letters, digits, - and _); it is saved in your loratui config folder:")
            yield Input(suggested, id="preset-name", select_on_focus=True)
            yield Static("What it is for, in one line:")
            yield Input(f"my settings, from {self.config.project.preset or 'the defaults'}", id="preset-about",
                        select_on_focus=False)
            yield Static("", id="preset-error")
            with Horizontal(id="preset-buttons"):
                yield MarkedButton("Save", id="save", variant="primary")
                yield MarkedButton("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#preset-name", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "preset-name":
            self.query_one("#preset-about", Input).focus()
        else:
            self._save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self._save()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _save(self, force: bool = False) -> None:
        from loratui.presets import BUILTIN_DIR, NAME_RE, save_preset, user_preset_dir

        name = self.query_one("#preset-name", Input).value.strip()
        about = self.query_one("#preset-about", Input).value.strip() or "my settings"
        error = self.query_one("#preset-error", Static)
        failed = getattr(getattr(self.app, "glyphs", None), "failed", "x")
        if NAME_RE.match(name) and not (BUILTIN_DIR / f"{name}.toml").exists() and not force \
                and (user_preset_dir() / f"{name}.toml").exists():
            self.app.push_screen(ReplaceDialog(
                f"Replace preset {name}?", f"A preset named {name} exists already. Replacing it changes it for "
                "every project that loads it from now on.", "Replace", "Keep it"),
                lambda yes: self._save(force=True) if yes else self.query_one("#preset-name", Input).focus())
            return
        try:
            save_preset(name, self.config, about, self.family, force=force)
        except (LoratuiError, OSError) as exc:
            error.update(f"{failed} {exc}")
            self.query_one("#preset-name", Input).focus()
            return
        self.dismiss(name)
