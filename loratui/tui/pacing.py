"""How often the wizard's views read a running job. On a CPU-only machine the wizard shares its cores with the
training it follows, and each read and redraw takes time from it (bench/wizard_attached.py measures the cost), so
the views read at their full rate only while the user is at the keys and once a second otherwise: a live view of
a run that takes minutes, and one that answers at once when someone looks.

Every view keeps its own timer at the full rate and asks :meth:`Pacing.due` on each tick: a key makes the next
tick read again without waiting for a slow one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

QUIET_AFTER_S = 3.0  # no key for this long: the user is watching, not typing
QUIET_EVERY_S = 1.0  # how often a view reads then


@dataclass
class Pacing:
    clock: Callable[[], float] = time.monotonic  # the tests pass their own
    last_key: float = field(default=float("-inf"))

    def key_pressed(self) -> None:
        self.last_key = self.clock()

    def quiet(self) -> bool:
        return self.clock() - self.last_key >= QUIET_AFTER_S

    def due(self, last_read: float, every_s: float) -> bool:
        """Whether a view that reads every ``every_s`` and last read at ``last_read`` reads on this tick."""
        since = self.clock() - last_read
        return since >= (max(every_s, QUIET_EVERY_S) if self.quiet() else every_s) - 0.01  # a tick's jitter


def reads_now(screen, last_read: float, every_s: float) -> bool:  # noqa: ANN001 - a Textual Screen
    """For a view on ``screen``: False while the screen is not on show (another step's screen stays installed,
    its timers running: it reads again when it comes back), else whether the app's pacing says it is due."""
    app = screen.app
    if screen not in app.screen_stack:
        return False
    pacing = getattr(app, "pacing", None)
    return pacing is None or pacing.due(last_read, every_s)
