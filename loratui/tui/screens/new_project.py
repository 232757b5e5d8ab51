"""New project here: the source folder and the concept's name in one dialog; the project is made on enter."""

from __future__ import annotations

import re
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


def concept_name(folder: str) -> str:
    """The default concept: the pictures folder's name, cleaned to what kohya's folder names allow."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(folder).expanduser().name).strip("_")
    return name or "concept"


class NewProjectDialog(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical(id="new-box") as box:
            box.border_title = f"New project in {self.root}"
            yield Static("Folder of your pictures (they are never changed):")
            yield Input(placeholder="~/pictures/akari", id="source")
            yield Static("Concept name (also the trigger word to start with):")
            yield Input(placeholder="from the folder's name", id="concept")
            yield Static("", id="new-error")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "source":
            self.query_one("#concept", Input).placeholder = concept_name(event.value) if event.value else \
                "from the folder's name"

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "source":
            self.query_one("#concept", Input).focus()
            return
        self.create()

    def create(self) -> None:
        from loratui.errors import LoratuiError
        from loratui.project import create_project

        source = self.query_one("#source", Input).value.strip()
        error = self.query_one("#new-error", Static)
        if not source:
            error.update("✗ source: give the folder of your pictures")
            self.query_one("#source", Input).focus()
            return
        folder = Path(source).expanduser()
        if not folder.is_dir():
            error.update(f"✗ source: {folder} is not a folder: give the folder of your pictures")
            self.query_one("#source", Input).focus()
            return
        concept = self.query_one("#concept", Input).value.strip() or concept_name(source)
        try:
            create_project(self.root, folder, concept, trigger=concept)
        except LoratuiError as exc:
            error.update(f"✗ {exc}")
            return
        self.dismiss(self.root)

    def action_cancel(self) -> None:
        self.dismiss(None)
