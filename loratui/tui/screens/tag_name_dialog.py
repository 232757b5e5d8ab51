"""The palette's "Rename a tag everywhere..." and "Add a tag to every picture..." on Tags (design §2.6, §4.3):
one or two one-line fields; the Tags screen then writes it through the engine's tag edit (backup first)."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


@dataclass
class TagNames:
    """What the dialog gives back: ``old`` is empty when adding."""

    old: str
    new: str


class TagNameDialog(ModalScreen[TagNames | None]):
    """``rename``: the tag (pre-filled with the highlighted one) and its new name; ``add``: the tag to add.
    ``enter`` in the last field writes, ``esc`` cancels."""

    DEFAULT_CSS = """
    TagNameDialog { align: center middle; }
    TagNameDialog #names-box { width: 72; height: auto; border: heavy $accent; padding: 0 1; background: $surface; }
    TagNameDialog .row { height: 1; }
    TagNameDialog .row Static { width: 10; }
    TagNameDialog Input, TagNameDialog Input:focus { border: none; height: 1; padding: 0; width: 1fr; }
    TagNameDialog #names-error { height: auto; }
    .-ascii TagNameDialog #names-box { border: ascii $accent; }
    """
    SCOPED_CSS = False  # every rule names TagNameDialog; unscoped so the app's -ascii class reaches them
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, mode: str, tag: str = "", tags: list[str] | None = None) -> None:
        super().__init__()
        self.mode, self.tag = mode, tag
        self.tags = tags or []

    def compose(self) -> ComposeResult:
        from textual.suggester import SuggestFromList

        renaming = self.mode == "rename"
        with Vertical(id="names-box") as box:
            box.border_title = "Rename a tag everywhere" if renaming else "Add a tag to every picture"
            box.border_subtitle = "enter writes · esc cancels"
            if renaming:
                yield Static("Every caption that has the tag gets the new name in its place. The old name is "
                             "recorded as DEL, so the tagger leaves it out from now on.")
                with Horizontal(classes="row"):
                    yield Static("Tag")
                    yield Input(self.tag, id="old", suggester=SuggestFromList(self.tags, case_sensitive=False))
                with Horizontal(classes="row"):
                    yield Static("New name")
                    yield Input("", id="new", placeholder="the name to use instead")
            else:
                yield Static("The tag goes into every caption, right after the trigger word (a style or a "
                             "setting every picture shares). Pictures without a caption get one.")
                with Horizontal(classes="row"):
                    yield Static("Tag")
                    yield Input("", id="new", placeholder="e.g. anime style")
            yield Static("Written at once, with a backup: ^z on Tags puts the captions back.", id="names-error")

    def on_mount(self) -> None:
        first = "#new" if self.mode != "rename" or self.tag else "#old"
        self.query_one(first, Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "old":
            self.query_one("#new", Input).focus()
            return
        old = self.query_one("#old", Input).value.strip() if self.mode == "rename" else ""
        new = self.query_one("#new", Input).value.strip()
        problem = ""
        if self.mode == "rename" and not old:
            problem, field = "Tag: empty - type the tag to rename (tab completes one the captions have).", "#old"
        elif not new:
            problem, field = ("New name: empty - type the name to use instead." if self.mode == "rename"
                              else "Tag: empty - type the tag to add."), "#new"
        elif "," in new or "," in old:
            problem, field = "One tag only: no commas.", "#new"
        if problem:
            self.query_one("#names-error", Static).update(f"✗ {problem}")
            self.query_one(field, Input).focus()
            return
        self.dismiss(TagNames(old, new))

    def action_cancel(self) -> None:
        self.dismiss(None)
