"""A step's job, written once for every step (design §2.11): start it as a detached `loratui` subprocess through
the engine's job path, follow its events (≤ 4 updates/s, only what is new), show progress, pictures/s and ETA,
and cancel it with the engine's stop. Quitting the app never stops the job; a new panel re-attaches to it."""

from __future__ import annotations

import time

from textual.message import Message
from textual.widgets import Static

from loratui.durations import format_duration
from loratui.errors import LoratuiError
from loratui.jobs.command import JobOptions
from loratui.jobs.kinds import resource_of
from loratui.jobs.status import JobStatus, JobTracker
from loratui.project import Project
from loratui.tui.pacing import reads_now

POLL_S = 0.25
BAR_WIDTH = 24


def progress_text(status: JobStatus, *, width: int = BAR_WIDTH) -> str:
    """One line: `prepare 21/38 [#####.....] 55% 4.2 pictures/s ETA 12s  a.png`, or the job's end."""
    kind = status.kind or "job"
    if not status.alive:
        if status.state in ("none", "done"):
            return ""  # a job that went well: the status line's "✓ prepare DONE 14:02" says it, the step shows it
        reason = f": {status.message}" if status.message and status.state != "done" else ""
        return f"{kind} {status.state.upper()}{reason}"
    done, total = (status.step, status.total_steps) if status.total_steps else (status.done, status.total)
    if not total:
        return f"{kind} {status.stage or 'starting'}…"
    share = max(0.0, min(1.0, (done or 0) / total))
    filled = round(share * width)
    rate = status.images_per_s if status.total_steps else status.rate
    eta = status.eta_s if status.total_steps else status.stage_eta_s
    parts = [f"{status.stage or kind} {done or 0}/{total}", f"[{'#' * filled}{'.' * (width - filled)}]",
             f"{share * 100:.0f}%"]
    if rate:
        parts.append(f"{rate:.1f} pictures/s")
    if eta is not None:
        parts.append(f"ETA {format_duration(eta)}")
    if status.item:
        parts.append(status.item)
    return " ".join(parts)


class JobPanel(Static):
    """Follows the job on ``kind``'s resource; :meth:`start` and :meth:`cancel` drive it."""

    DEFAULT_CSS = "JobPanel { height: auto; min-height: 1; }"

    class Finished(Message):
        """The followed job ended (done, stopped, failed): the step reloads what it wrote."""

        def __init__(self, status: JobStatus) -> None:
            super().__init__()
            self.status = status

    class Failed(Message):
        """A start refused at once (busy, bad input): the one-line reason."""

        def __init__(self, message: str) -> None:
            super().__init__()
            self.message = message

    def __init__(self, project: Project, kind: str, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("", id=id)
        self.project, self.kind = project, kind
        self.tracker = JobTracker(project, resource_of(kind))
        self.status: JobStatus = JobStatus(state="none")
        self._was_alive = False
        self._shown = ""
        self._read_at = float("-inf")

    def on_mount(self) -> None:
        self.display = False  # shown from the first line it has to say
        self.refresh_status()
        self.set_interval(POLL_S, self._tick)

    @property
    def running(self) -> bool:
        return self.status.alive and self.status.kind == self.kind

    def _tick(self) -> None:
        if reads_now(self.screen, self._read_at, POLL_S):
            self.refresh_status()

    def refresh_status(self) -> None:
        self._read_at = time.monotonic()
        try:
            status = self.tracker.poll()
        except (LoratuiError, OSError):
            return  # a record being rewritten this instant: the next poll reads it
        ours = status.kind == self.kind
        self.status = status
        text = progress_text(status) if ours else ""
        if text != self._shown:  # coalesced: nothing is redrawn while nothing changed
            self._shown = text
            self.update(text)
            self.display = bool(text)  # no job yet: no blank row in the step's layout
        if self._was_alive and not (ours and status.alive):
            self.post_message(self.Finished(status))
        self._was_alive = ours and status.alive

    def start(self, options: JobOptions) -> bool:
        """Start the job detached (the engine refuses in one line if the resource is busy): True if it began."""
        from loratui.jobs.detached import start_job

        try:
            start_job(self.project, options)
        except LoratuiError as exc:
            self.post_message(self.Failed(str(exc)))
            return False
        self._was_alive = True
        self._shown = f"{self.kind} starting…"
        self.update(self._shown)
        self.display = True
        return True

    def cancel(self) -> None:
        """The engine's stop: the job finishes the picture it is on, keeps what it did, and ends."""
        from loratui.jobs.stop import request_stop

        try:
            request_stop(self.project, resource_of(self.kind))
        except LoratuiError as exc:
            self.post_message(self.Failed(str(exc)))
