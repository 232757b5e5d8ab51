"""Row 1: the project and the six steps, each with its state written out (✓, [current], !, 40%, ✗)."""

from __future__ import annotations

from textual.widgets import Static

from loratui.tui.glyphs import Glyphs
from loratui.tui.steps import ATTENTION, DONE, FAILED, STEPS, StepState

MAX_WIDTH = 79


def step_bar_text(project: str, current: int, states: dict[int, StepState], glyphs: Glyphs,
                  width: int = MAX_WIDTH) -> str:
    """The bar as text; finished steps far from the current one shrink to `1✓` first, then the project name is
    cut (to 12 characters) so it fits ``width``."""
    def label(number: int, short: bool) -> str:
        step = STEPS[number - 1]
        state = states.get(number, StepState())
        mark = {DONE: glyphs.done, ATTENTION: "!", FAILED: glyphs.failed}.get(state.mark, "")
        if state.percent is not None:
            mark = f"{state.percent:.0f}%"
        if number == current:
            return f"[{number} {step.name}{' ' + mark if mark else ''}]"
        if short and state.mark == DONE:
            return f"{number}{mark}"
        return f"{number} {step.name}{' ' + mark if mark else ''}"

    shrinkable = sorted((n for n in states if states[n].mark == DONE and n != current),
                        key=lambda n: -abs(n - current))
    short: set[int] = set()
    name = project
    while True:
        steps = f" {glyphs.sep} ".join(label(s.number, s.number in short) for s in STEPS)
        text = f" {name} {glyphs.bar} {steps}"
        if len(text) <= width:
            return text
        if shrinkable:
            short.add(shrinkable.pop(0))
        elif len(name) > 12:
            name = name[:11] + "~"
        else:
            return text[:width]


class StepBar(Static):
    """The step bar; the screen sets what it shows."""

    DEFAULT_CSS = "StepBar { height: 1; }"

    _shown: object = None

    def show_steps(self, project: str, current: int, states: dict[int, StepState], glyphs: Glyphs) -> None:
        text = step_bar_text(project, current, states, glyphs, width=min(MAX_WIDTH, self.size.width or 80))
        if text != self._shown:  # the app asks every poll: an unchanged bar is not laid out and drawn again
            self._shown = text
            self.update(text)
