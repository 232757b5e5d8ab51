"""`^q` while a job runs (design §6): both answers are safe, so quitting is focused; the job keeps running, and
the commands to come back to it are shown here and printed again in the shell after the wizard exits."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from loratui.tui.screens.confirm import ConfirmDialog
from loratui.tui.widgets.marked_button import MarkedButton

LABEL_WIDTH = 17


def labelled(commands: list[tuple[str, str]]) -> list[str]:
    """``Watch it again   loratui DIR``: the lines the dialog shows and the shell gets after the exit."""
    return [f"{label:<{LABEL_WIDTH}}{command}" for label, command in commands]


class QuitDialog(ConfirmDialog[bool]):
    """``job``: the job's kind (``training`` reads "Quit, keep training"); ``commands``: plain command lines, or
    ``labelled`` (label, command) pairs under a ``summary`` (the training job's id, % done, time left)."""

    BINDINGS = [Binding("escape", "stay", "Stay")]
    DEFAULT_CSS = """
    QuitDialog #quit-text { height: auto; }
    QuitDialog #quit-keys { height: 1; }
    """

    def __init__(self, job: str, commands: list[str], *, summary: str = "",
                 labelled_commands: list[tuple[str, str]] | None = None) -> None:
        super().__init__()
        self.job, self.commands = job, commands
        self.summary = summary
        self.labelled_commands = labelled_commands

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box") as box:
            box.border_title = "Quit loratui?"
            if self.labelled_commands is not None:
                text = [f"{self.job.capitalize()} keeps running after you quit:", self.summary, "",
                        *labelled(self.labelled_commands), "",
                        f"These {len(self.labelled_commands)} lines are printed again in your shell."]
                yield Static("\n".join(text), id="quit-text", markup=False)
            else:
                yield Static(f"The {self.job} job keeps running after you quit; nothing is lost.\n"
                             "Come back to it with:\n" + "\n".join(f"  {c}" for c in self.commands))
            with Horizontal(id="quit-buttons"):
                yield MarkedButton(f"Quit, keep {self.job}", id="quit", variant="primary")
                yield MarkedButton("Stay", id="stay")
            if self.labelled_commands is not None:
                yield Static("       enter                     esc", id="quit-keys")

    def on_mount(self) -> None:
        self.query_one("#quit", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit")

    def action_stay(self) -> None:
        self.dismiss(False)
