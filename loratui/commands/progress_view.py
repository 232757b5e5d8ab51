"""How the CLI shows progress and outcomes: a bar on a terminal, plain lines in a log, then a summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from loratui.durations import format_duration
from loratui.progress import Outcome, Progress

# Items done since a stage's first report before the bar gives an ETA. A stage's first report comes after
# whatever preceded it (loading a model) and, in training, after the first step and its one-off costs: the
# pace is timed from there, so the first ETA is not minutes for a run of seconds.
MIN_TIMED_ITEMS = 3


class ProgressBar:
    """A progress callback. On a terminal it redraws one line; elsewhere it prints a line per 10%."""

    def __init__(self, stream: TextIO | None = None, width: int = 28,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.clock = clock
        self.last_draw = 0.0
        self.last_decile = -1
        self.drawn = False
        self.stage: str | None = None
        self.anchor = (0, 0.0)  # (done, time) of the current stage's first report

    def __call__(self, progress: Progress) -> None:
        now = self.clock()
        if progress.stage != self.stage:
            self.stage, self.anchor = progress.stage, (progress.done, now)
        finished = progress.done >= progress.total
        if self.tty:
            if finished or now - self.last_draw >= 0.1:  # redrawing faster than the eye only costs time
                self.last_draw = now
                self._draw(progress, now)
        else:
            decile = progress.done * 10 // max(progress.total, 1)
            if decile != self.last_decile:
                self.last_decile = decile
                print(f"{progress.stage}: {progress.done}/{progress.total}", file=self.stream, flush=True)

    def _draw(self, progress: Progress, now: float) -> None:
        total = max(progress.total, 1)
        filled = self.width * progress.done // total
        bar = "#" * filled + "." * (self.width - filled)
        eta = ""
        first_done, first_time = self.anchor
        timed = progress.done - first_done
        if timed >= MIN_TIMED_ITEMS and progress.done < progress.total and now > first_time:
            eta = f" ETA {format_duration((now - first_time) / timed * (progress.total - progress.done))}"
        item = progress.item[-30:]
        line = f"{progress.stage} [{bar}] {progress.done}/{progress.total}{eta} {item}"
        self.stream.write("\r" + line[:119].ljust(119 if self.drawn else 0))
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """End the bar's line so the summary starts on a fresh one."""
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def print_outcome(outcome: Outcome, done_label: str, stream: TextIO | None = None) -> None:
    """The closing summary: counts, then every skipped file with its reason, then every warning."""
    stream = stream or sys.stdout
    parts = [f"{outcome.done} {done_label}"]
    if outcome.unchanged:
        parts.append(f"{outcome.unchanged} unchanged")
    parts.append(f"{len(outcome.skipped)} skipped")
    parts.append(f"{len(outcome.warnings)} warning{'s' if len(outcome.warnings) != 1 else ''}")
    print(", ".join(parts), file=stream)
    for note in outcome.skipped:
        print(f"  skipped {note}", file=stream)
    for note in outcome.warnings:
        print(f"  warning {note}", file=stream)
