"""`^g`: a small menu of the six steps; a digit picks one (digits are safe inside the menu)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from loratui.tui.steps import STEPS


class GotoScreen(ModalScreen[int | None]):
    BINDINGS = [Binding("escape", "dismiss_none", "Close"),
                *(Binding(str(s.number), f"pick({s.number})", show=False) for s in STEPS)]

    def compose(self) -> ComposeResult:
        with Vertical(id="goto-box") as box:
            box.border_title = "Go to step"
            yield OptionList(*(Option(f"{s.number}  {s.name:<8} {s.purpose}", id=str(s.number)) for s in STEPS))

    def action_pick(self, number: int) -> None:
        self.dismiss(number)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 1))
