"""The frame every step shares (design §2): step bar, purpose line, body, status line, footer."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from loratui.tui.steps import STEPS, Step
from loratui.tui.widgets.status_line import StatusLine
from loratui.tui.widgets.step_bar import StepBar

if TYPE_CHECKING:
    from textual import events

    from loratui.tui.app import WizardApp

WIDE = (120, 40)  # from this size on, the screens of design §4 show their larger layouts


class StepScreen(Screen):
    """One wizard step. Subclasses fill :meth:`compose_body` and describe their keys in :attr:`HELP_KEYS`."""

    HELP_TEXT = ""
    HELP_KEYS: tuple[tuple[str, str], ...] = ()

    def __init__(self, step: Step) -> None:
        super().__init__(name=f"step{step.number}")
        self.step = step
        self.wide = False  # the 120x40 layout: class -wide on the screen, extra columns in the lists

    def _check_wide(self) -> None:
        width, height = self.app.size
        wide = width >= WIDE[0] and height >= WIDE[1]
        if wide != self.wide:
            self.wide = wide
            self.set_class(wide, "-wide")
            self.wide_changed()

    def wide_changed(self) -> None:
        """The terminal crossed 120x40: redraw what is formatted for a width (list rows)."""

    def on_mount(self) -> None:
        self._check_wide()

    def on_resize(self, event: events.Resize) -> None:
        self._check_wide()

    @property
    def wizard(self) -> WizardApp:
        return cast("WizardApp", self.app)

    def compose(self) -> ComposeResult:
        yield StepBar(id="step-bar")
        yield Static(self.purpose(), id="purpose")
        with Vertical(id="body"):
            yield from self.compose_body()
        yield StatusLine(self.wizard.glyphs)
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def purpose(self) -> str:
        banner = self.wizard.banner
        if banner:
            return f" {banner}"
        return f" Step {self.step.number} of {len(STEPS)}: {self.step.name} - {self.step.purpose}"

    def on_screen_resume(self) -> None:
        self._check_wide()
        self.refresh_frame()

    def refresh_frame(self) -> None:
        """Step bar and status line from the project's state (the app reads it on a timer)."""
        app = self.wizard
        state = app.state
        steps = state.steps if state else {}
        for bar in self.query(StepBar):  # query, not query_one: nothing to do while the screen is being built
            bar.show_steps(app.project_label, self.step.number, steps, app.glyphs)
        for line in self.query(StatusLine):
            line.set_job(state.shown_job if state else None)
            line.set_machine(app.machine_facts())

    def ready_for_next(self) -> bool:
        """Whether ^n may move on now. A step that is invalid focuses the problem and says why (False); one
        whose output is stale starts the work and calls ``self.wizard.go_to(n + 1)`` when it ends (False)."""
        return True

    def say(self, message: str, level: str = "i") -> None:
        self.query_one(StatusLine).say(message, level)

