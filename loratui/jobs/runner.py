"""Running a job: take its resource's lock, keep its record, write its events, and close both however it ends.

Every engine action that is a job (prepare, tag, train, grid) runs inside :func:`job`. It is re-entrant in a
thread: the CLI opens the job (to add its progress bar as a listener), the engine function opens it again and
joins. The ranks of a multi-GPU run *attach* to their launcher's job (``LORATUI_ATTACH_JOB``): they write its
events (rank 0 only) but neither lock nor record, which the launcher holds.

How a job ends, in its record and in its last event:
  the body returns                  ``done`` (``stopped`` when :meth:`Job.mark_stopped` or the loop said so)
  a stop request, Ctrl-C, SIGTERM   ``done`` with ``stopped`` and why (``stopped_by``)
  an error                          ``error`` with the one-line message (the record says ``failed``)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from loratui.errors import LoratuiError
from loratui.jobs import events as ev
from loratui.jobs.event_log import EventWriter, Listener, terminal_event
from loratui.jobs.kinds import DONE, FAILED, RUNNING, STOPPED, resource_of
from loratui.jobs.locks import resource_lock
from loratui.jobs.paths import events_file, log_file, stop_path
from loratui.jobs.record import JobRecord, new_job_id, new_record, write_record
from loratui.jobs.temp_files import project_write_folders, sweep_temp_files
from loratui.progress import Cancelled, CancelToken, Progress, ProgressCallback, no_progress
from loratui.project import Project

JOB_ID_ENV = "LORATUI_JOB_ID"  # set by a detached start: the id its child's job takes
ATTACH_ENV = "LORATUI_ATTACH_JOB"  # set by a multi-GPU launcher for its ranks: "job_id"
LOG_ENV = "LORATUI_JOB_LOG"  # set by a detached start: the log its child's output goes to
# Progress events at most this often (the last one of a stage always goes out).
PROGRESS_EVENT_INTERVAL_S = 0.25

_open = threading.local()  # per thread: {(root, resource): Job}


class JobTerminated(SystemExit):
    """SIGTERM (``loratui stop --now``, a shutdown) turned into an exception, so the job's record is closed."""


class Job:
    """An open job: its id, record, events, stop request and progress reporting."""

    def __init__(self, project: Project, kind: str, job_id: str, writer: EventWriter,
                 record: JobRecord | None, lock_fd: int | None = None):
        self.project, self.kind, self.job_id = project, kind, job_id
        self.resource = resource_of(kind)
        self.writer = writer
        self.record = record  # None in an attached rank: the launcher keeps the record
        self.lock_fd = lock_fd  # the flock'd descriptor, for a child that must hold it too
        self.status: str | None = None
        self._terminal: ev.Event | None = None
        self._watchers: list[threading.Event] = []

    # --- what the job says ---------------------------------------------------------------------------------

    @property
    def events_path(self) -> Path:
        return self.writer.path

    def emit(self, event: ev.Event) -> ev.Event:
        if event.TYPE in ev.TERMINAL_TYPES:
            if self._terminal is not None:
                return self._terminal  # one end per job
            self._terminal = event
        return self.writer.emit(event)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every event this process writes for the job; returns the undo function."""
        self.writer.listeners.append(listener)
        return lambda: self.writer.listeners.remove(listener)

    def warning(self, message: str) -> None:
        self.emit(ev.JobWarning(message=message))

    def done(self, *, stopped: bool = False, result: str | Path | None = None, seconds: float | None = None,
             **summary: Any) -> None:
        """The job's end, with its main result and counts (written once; later calls are ignored)."""
        if stopped:
            self.mark_stopped()
        self.emit(ev.Done(stopped=stopped, result=None if result is None else str(result), seconds=seconds,
                          summary=summary))

    def mark_stopped(self) -> None:
        """Record the job as stopped (by request) rather than done when it ends normally."""
        self.status = STOPPED

    def mark_failed(self, message: str) -> None:
        """Record the job as failed when it ends without an exception (a child process failed and said why)."""
        self.status = FAILED
        if self.record is not None:
            self.record.message = message

    def progress(self, callback: ProgressCallback = no_progress) -> ProgressCallback:
        """``callback`` that also writes ``progress`` events (throttled, with rate and time left)."""
        state = {"time": 0.0, "stage": "", "began": 0.0, "first": 0}

        def report(progress: Progress) -> None:
            callback(progress)
            now = time.monotonic()
            if progress.stage != state["stage"]:
                state.update(stage=progress.stage, began=now, first=progress.done, time=0.0)
            if progress.done < progress.total and now - state["time"] < PROGRESS_EVENT_INTERVAL_S:
                return
            state["time"] = now
            elapsed, moved = now - state["began"], progress.done - state["first"]
            rate = moved / elapsed if elapsed > 0 and moved > 0 else None
            eta = (progress.total - progress.done) / rate if rate else None
            self.emit(ev.Progress(stage=progress.stage, done=progress.done, total=progress.total,
                                  item=progress.item, rate=rate, eta_s=eta))

        return report

    # --- stopping ------------------------------------------------------------------------------------------

    @property
    def stop_path(self) -> Path:
        return stop_path(self.project, self.resource)

    @property
    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def cancel_token(self, poll_s: float = 0.5, linked: CancelToken | None = None) -> CancelToken:
        """A token cancelled when `loratui stop DIR` asks this job to stop, or when ``linked`` (the caller's own
        token) is cancelled — for loops that take a CancelToken."""
        token = CancelToken(also=linked)
        finished = threading.Event()
        self._watchers.append(finished)

        def watch() -> None:
            while not finished.wait(poll_s):
                if self.stop_requested:
                    token.cancel()
                    return

        threading.Thread(target=watch, name="loratui-stop-watch", daemon=True).start()
        return token

    def _close(self) -> None:
        for finished in self._watchers:
            finished.set()
        self.writer.close()


@contextlib.contextmanager
def job(project: Project, kind: str, argv: list[str] | None = None) -> Iterator[Job]:
    """Run the ``with`` body as a job of ``kind`` on its resource; a one-line LoratuiError if the resource is busy.

    Joins the job this thread already has open on the resource; attaches to a launcher's job in a multi-GPU rank.
    """
    resource = resource_of(kind)
    opened = _open.__dict__.setdefault("jobs", {})
    key = (str(project.root.resolve()), resource)
    if key in opened:
        yield opened[key]
        return
    attach = os.environ.get(ATTACH_ENV)
    runner = _attached(project, kind, attach) if attach else _fresh(project, kind, argv)
    with runner as handle:
        opened[key] = handle
        try:
            yield handle
        finally:
            del opened[key]


@contextlib.contextmanager
def _fresh(project: Project, kind: str, argv: list[str] | None) -> Iterator[Job]:
    job_id = _job_id_from_env(kind) or new_job_id(kind)
    with resource_lock(project, resource_of(kind), kind, job_id) as held:
        stop_path(project, resource_of(kind)).unlink(missing_ok=True)
        sweep_temp_files(project_write_folders(project))  # what killed writes left: nobody will rename them
        argv = list(sys.argv[1:] if argv is None else argv)
        record = new_record(project, kind, job_id, argv, RUNNING, log=_own_log(project, kind))
        write_record(project, record)
        try:
            handle = Job(project, kind, job_id, EventWriter(events_file(project, job_id), job_id), record, held.fd)
            handle.emit(ev.Start(kind=kind, resource=handle.resource, pid=os.getpid(), argv=argv))
        except LoratuiError as exc:  # a full disk before the job began: the record says so, not "running"
            record.status, record.message, record.finished = FAILED, str(exc), time.time()
            write_record(project, record)
            raise
        restore = _terminate_on_sigterm()
        try:
            with _ended(handle):
                yield handle
        finally:
            restore()
            record.finished = time.time()
            write_record(project, record)
            stop_path(project, resource_of(kind)).unlink(missing_ok=True)


@contextlib.contextmanager
def _attached(project: Project, kind: str, job_id: str) -> Iterator[Job]:
    main_rank = os.environ.get("RANK", "0") == "0"
    writer = EventWriter(events_file(project, job_id), job_id, enabled=main_rank)
    handle = Job(project, kind, job_id, writer, None)
    with _ended(handle):
        yield handle


@contextlib.contextmanager
def _ended(handle: Job) -> Iterator[None]:
    """Write the job's end (see the module docstring) however the body leaves, then close its events."""
    try:
        yield
    except BaseException as exc:
        _finish_failed(handle, exc)
        raise
    else:
        _finish_ok(handle)
    finally:
        handle._close()


def _job_id_from_env(kind: str) -> str | None:
    """The id a detached start chose for this child (used once: a grandchild makes its own)."""
    value = os.environ.get(JOB_ID_ENV, "")
    if value.startswith(f"{kind}-"):
        os.environ.pop(JOB_ID_ENV, None)
        return value
    return None


def _own_log(project: Project, kind: str) -> str | None:
    """The log a detached start sends this process's output to (a foreground job has none)."""
    path = os.environ.get(LOG_ENV)
    return path if path and Path(path).name == log_file(project, kind).name else None


def _terminate_on_sigterm() -> Callable[[], Any]:
    """SIGTERM -> JobTerminated in the main thread, so ``finally`` blocks run; returns the undo function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: object) -> None:
        raise JobTerminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _ending(handle: Job) -> ev.Event | None:
    """The job's done/error: written by this process, or by a rank into the same file."""
    return handle._terminal or terminal_event(handle.events_path)


def _set_status(handle: Job, status: str, message: str | None = None) -> None:
    if handle.record is not None:
        handle.record.status = status
        if message is not None:
            handle.record.message = message


def _finish_ok(handle: Job) -> None:
    if handle.status == FAILED:
        message = handle.record.message if handle.record else None
        ending = _ending(handle)
        if not isinstance(ending, ev.JobError):
            handle._terminal = None
            handle.emit(ev.JobError(message=message or "failed"))
        _set_status(handle, FAILED, message or (ending.message if isinstance(ending, ev.JobError) else None))
        return
    ending = _ending(handle)
    if ending is None:
        handle.done(stopped=handle.status == STOPPED)
        ending = handle._terminal
    if isinstance(ending, ev.JobError):
        _set_status(handle, FAILED, ending.message)
    else:
        _set_status(handle, STOPPED if isinstance(ending, ev.Done) and ending.stopped else DONE)


def _finish_failed(handle: Job, exc: BaseException) -> None:
    if isinstance(exc, SystemExit) and not isinstance(exc, JobTerminated) and exc.code in (0, None):
        _finish_ok(handle)
        return
    if isinstance(exc, (Cancelled, KeyboardInterrupt, JobTerminated)):
        message = {JobTerminated: "terminated (SIGTERM)", KeyboardInterrupt: "interrupted (Ctrl-C)"}.get(
            type(exc), "stopped by request")
        if _ending(handle) is None:
            handle.done(stopped=True, stopped_by=message)  # a stop the user asked for: said, not warned
        _set_status(handle, STOPPED, message)
        return
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    ending = _ending(handle)
    if isinstance(ending, ev.JobError):
        message = ending.message  # a rank said why first
    else:
        handle._terminal = None  # an error after a `done` (saving failed at the very end) still ends it failed
        handle.emit(ev.JobError(message=message))
    _set_status(handle, FAILED, message)
