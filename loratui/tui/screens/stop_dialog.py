"""`^r` while training runs (design §4.5, §2.12): keeping it going is focused and is what enter and esc answer;
stopping needs its own key, `s`. Keys typed in the first 300 ms are dropped (ConfirmDialog)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from loratui.tui.screens.confirm import ConfirmDialog
from loratui.tui.widgets.marked_button import MarkedButton

STOP_TEXT = ("It stops after the current step (a few seconds) and saves a state you can resume. Saved checkpoints "
             "stay.")


class StopDialog(ConfirmDialog[bool]):
    """Answers True to stop and save, False to keep training."""

    DEFAULT_CSS = """
    StopDialog { align: center middle; }
    StopDialog #stop-box { width: 62; height: auto; border: heavy $accent; padding: 0 1; }
    StopDialog #stop-text { margin-bottom: 1; }
    StopDialog #stop-buttons { height: auto; }
    StopDialog #stop-buttons Button { margin-right: 2; }
    StopDialog #stop-keys { height: 1; }
    .-ascii StopDialog #stop-box { border: ascii $accent; }
    """
    SCOPED_CSS = False  # every rule names StopDialog; unscoped so the app's -ascii class reaches them
    BINDINGS = [Binding("escape", "keep", "Keep training"), Binding("s", "stop", "Stop and save")]

    def compose(self) -> ComposeResult:
        with Vertical(id="stop-box") as box:
            box.border_title = "Stop training?"
            yield Static(STOP_TEXT, id="stop-text")
            with Horizontal(id="stop-buttons"):
                yield MarkedButton("Keep training", id="keep", variant="primary")
                yield MarkedButton("Stop and save", id="stop")
            yield Static("   enter, esc                s", id="stop-keys")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "stop")

    def action_keep(self) -> None:
        self.dismiss(False)

    def action_stop(self) -> None:
        self.dismiss(True)
