"""Row 23: the project's job on every screen (`⟳ tag 212/380`, `✗ train FAILED 14:52`) and the last message."""

from __future__ import annotations

import time

from textual.widgets import Static

from loratui.jobs.status import JobStatus
from loratui.tui.glyphs import Glyphs

INFO, WARNING, ERROR = "i", "!", "✗"


def job_text(job: JobStatus | None, glyphs: Glyphs) -> str:
    if job is None or not job.kind:
        return "no job running"
    if job.alive:
        if job.total_steps:
            eta = f" ETA {_duration(job.eta_s)}" if job.eta_s is not None else ""
            return f"{glyphs.running} {job.kind} {job.percent or 0:.0f}%{eta}"
        if job.total:
            return f"{glyphs.running} {job.kind} {job.done or 0}/{job.total}"
        return f"{glyphs.running} {job.kind} {job.state.upper()}"
    when = time.strftime("%H:%M", time.localtime(job.finished)) if job.finished else ""
    mark = {"failed": glyphs.failed, "lost": glyphs.failed, "stopped": glyphs.stopped}.get(job.state, glyphs.done)
    return f"{mark} {job.kind} {job.state.upper()} {when}".rstrip()


def _duration(seconds: float) -> str:
    from loratui.durations import format_duration

    return format_duration(seconds)


class StatusLine(Static):
    """The job on the left, the last message (prefixed i, ! or ✗) on the right of the bar."""

    DEFAULT_CSS = "StatusLine { height: 1; }"

    def __init__(self, glyphs: Glyphs) -> None:
        super().__init__("")
        self.glyphs = glyphs
        self.job: JobStatus | None = None
        self.message = ""
        self._shown: str | None = None
        self.level = INFO
        self.machine = ""  # at 120 columns and more: the GPU and the free disk, on the right

    def set_job(self, job: JobStatus | None) -> None:
        self.job = job
        self._update_text()

    def say(self, message: str, level: str = INFO) -> None:
        self.message, self.level = message, level
        self._update_text()

    def set_machine(self, text: str) -> None:
        if text != self.machine:
            self.machine = text
            self._update_text()

    def _update_text(self) -> None:
        level = self.glyphs.failed if self.level == ERROR else self.level
        said = f" {level} {self.message}" if self.message else ""
        left = f" {job_text(self.job, self.glyphs)} {self.glyphs.bar}{said}"
        width = self.size.width or 80
        if self.machine and width >= 120 and len(left) + len(self.machine) + 3 <= width:
            left = f"{left:<{width - len(self.machine) - 2}} {self.machine} "
        elif len(left) > width:
            left = left[: width - 1] + "…"  # one row: cut, never wrapped out of sight (^p shows it in full)
        if left != self._shown:  # set on every poll: an unchanged line is not laid out and drawn again
            self._shown = left
            self.update(left)
