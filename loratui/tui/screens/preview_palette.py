"""Step 6 Preview's palette entries (design §4.6 "Palette"): render only the suggested row, show the grid PNG's
full path, the negative prompt (a one-field dialog; enter saves it to loratui.toml [preview], esc keeps it),
sampling steps (focuses the Steps field), and terminal graphics (only when the terminal answered the probe with Kitty
or Sixel; never inside tmux or screen)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from loratui.tui.commands import Command, ListedCommands


class PreviewCommands(ListedCommands):
    def _commands(self) -> list[Command]:
        from loratui.tui.screens.step_screen import StepScreen

        screen = self.screen
        # The Preview step's screen (its class is not imported: preview.py imports this module)
        if not isinstance(screen, StepScreen) or screen.step.number != 6:
            return []
        return [
            ("Preview: render only the suggested row", "its checkpoint at every weight (loratui grid --checkpoints)",
             screen.action_render_suggested_row),
            ("Preview: show the grid PNG path", "the full path in the status line (copy it to your PC)",
             screen.action_show_png_path),
            ("Preview: negative prompt", "what every cell avoids; saved to loratui.toml [preview]",
             screen.action_negative_prompt),
            ("Preview: sampling steps", "the Steps field (1-150), then ^r", screen.action_focus_steps),
            *self._graphics(screen),
        ]

    @staticmethod
    def _graphics(screen) -> list[Command]:  # noqa: ANN001 - a PreviewScreen
        """Only when the terminal answered the probe with Kitty or Sixel, and never inside tmux or screen."""
        if not screen.graphics_offered():
            return []
        if screen.graphics_on:
            return [("Preview: stop terminal graphics", "back to the half-cell picture",
                     screen.action_terminal_graphics)]
        return [("Preview: use terminal graphics (Kitty/Sixel)", "the highlighted cell at full resolution",
                 screen.action_terminal_graphics)]


class NegativePromptDialog(ModalScreen[str | None]):
    """One field, pre-filled with the saved negative prompt: ``enter`` gives the typed text back (empty is allowed:
    nothing to avoid), ``esc`` gives None (the saved one stays)."""

    DEFAULT_CSS = """
    NegativePromptDialog { align: center middle; }
    NegativePromptDialog #negative-box { width: 72; height: auto; border: heavy $accent; padding: 0 1;
        background: $surface; }
    NegativePromptDialog Input, NegativePromptDialog Input:focus { border: none; height: 1; padding: 0;
        width: 1fr; }
    .-ascii NegativePromptDialog #negative-box { border: ascii $accent; }
    """
    SCOPED_CSS = False  # every rule names NegativePromptDialog; unscoped so the app's -ascii class reaches them
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, value: str) -> None:
        super().__init__()
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="negative-box") as box:
            box.border_title = "Negative prompt"
            box.border_subtitle = "enter saves · esc keeps"
            yield Static("What every cell should avoid. The next ^r renders with it (new cells: the cached ones "
                         "were drawn with the old one).")
            yield Input(self.value, id="negative", placeholder="e.g. lowres, bad hands, blurry",
                        select_on_focus=False)

    def on_mount(self) -> None:
        self.query_one("#negative", Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.input.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
