"""`^q` while a job runs (design §6): both answers are safe, so quitting is focused; the job keeps running."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from loratui.tui.screens.confirm import ConfirmDialog
from loratui.tui.widgets.marked_button import MarkedButton


class QuitDialog(ConfirmDialog[bool]):
    BINDINGS = [Binding("escape", "stay", "Stay")]

    def __init__(self, job: str, commands: list[str]) -> None:
        super().__init__()
        self.job, self.commands = job, commands

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box") as box:
            box.border_title = "Quit loratui?"
            yield Static(f"The {self.job} job keeps running after you quit; nothing is lost.\n"
                         "Come back to it with:\n" + "\n".join(f"  {c}" for c in self.commands))
            with Horizontal(id="quit-buttons"):
                yield MarkedButton(f"Quit, keep {self.job}", id="quit", variant="primary")
                yield MarkedButton("Stay", id="stay")

    def on_mount(self) -> None:
        self.query_one("#quit", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit")

    def action_stay(self) -> None:
        self.dismiss(False)
