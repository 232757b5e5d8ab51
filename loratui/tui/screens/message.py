"""The last message in full: the status line has one row, and a job's reason (with its fix) is often longer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class MessageScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter", "close", "Close")]
    DEFAULT_CSS = """
    MessageScreen { align: center middle; }
    #message-box { width: 80; max-width: 100%; height: auto; border: heavy $accent; background: $surface;
                   padding: 0 1; }
    """

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(id="message-box") as box:
            box.border_title = "The last message in full"
            box.border_subtitle = "esc closes"
            yield Static("\n\n".join(self.lines) or "No message yet.", id="message-text")

    def action_close(self) -> None:
        self.dismiss(None)
