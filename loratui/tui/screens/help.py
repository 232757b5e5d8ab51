"""The help overlay (`?`, `f1`, design §2.5): what to do here, this screen's keys and the global ones, the same
action as a shell command; typing filters, enter runs the highlighted key, esc closes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

GLOBAL_KEYS: tuple[tuple[str, str, str], ...] = (
    ("^n", "next step (does what this one still needs)", "next_step"),
    ("esc", "back, close, clear a filter", "back"),
    ("^g", "go to step 1-6", "goto"),
    ("^p", "every command (also: the last message in full)", "command_palette"),
    ("? f1", "this help", ""),
    ("^q", "quit (jobs keep running)", "quit_wizard"),
    ("^l", "redraw the screen", "redraw"),
    ("tab", "next box", ""),
)


class HelpScreen(ModalScreen[str | None]):
    """Returns the action of the key chosen with enter (or None)."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("enter", "run", "Run the selected key")]

    def __init__(self, title: str, text: str, keys: list[tuple[str, str, str]], shell: str) -> None:
        super().__init__()
        self.title_text, self.text, self.shell = title, text, shell
        self.keys = keys + [k for k in GLOBAL_KEYS if k[0] not in {key for key, _, _ in keys}]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box") as box:
            box.border_title = f"Help: {self.title_text}"
            box.border_subtitle = "esc closes"
            if self.text:
                yield Static(self.text, id="help-text")
            yield OptionList(*self._options(""), id="help-keys")
            if self.shell:
                yield Static(f"Same from a shell: {self.shell}", id="help-shell")
            yield Input(placeholder="type to filter the keys", id="help-filter", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#help-filter", Input).focus()  # typing filters at once (design §2.5)
        self.query_one("#help-keys", OptionList).highlighted = 0

    def on_screen_resume(self) -> None:
        """The app keeps one help screen a step (see WizardApp.action_help): each opening starts unfiltered."""
        field = self.query_one("#help-filter", Input)
        if field.value:
            field.value = ""  # its Changed message lists every key again
        keys = self.query_one("#help-keys", OptionList)
        if keys.option_count:
            keys.highlighted = 0
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_run()

    def on_key(self, event) -> None:
        """Up and down choose a key while the cursor stays in the filter."""
        keys = self.query_one("#help-keys", OptionList)
        if event.key in ("up", "down") and keys.option_count:
            step = -1 if event.key == "up" else 1
            keys.highlighted = max(0, min(keys.option_count - 1, (keys.highlighted or 0) + step))
            event.stop()

    def _options(self, query: str) -> list[Option]:
        query = query.lower()
        return [Option(f"{key:<6} {what}", id=f"{index}") for index, (key, what, _) in enumerate(self.keys)
                if not query or query in f"{key} {what}".lower()]

    def on_input_changed(self, event: Input.Changed) -> None:
        keys = self.query_one("#help-keys", OptionList)
        keys.clear_options()
        keys.add_options(self._options(event.value))
        if keys.option_count:
            keys.highlighted = 0

    def action_close(self) -> None:
        field = self.query_one("#help-filter", Input)
        if field.value:
            field.value = ""  # esc clears the filter first (design §2.8)
            return
        self.dismiss(None)

    def action_run(self) -> None:
        keys = self.query_one("#help-keys", OptionList)
        if keys.highlighted is None or keys.option_count == 0:
            return
        option = keys.get_option_at_index(keys.highlighted)
        self.dismiss(self.keys[int(option.id or 0)][2] or None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.keys[int(event.option.id or 0)][2] or None)
