"""Heavy jobs: one per project (``.loratui/job.lock`` + ``job.json``), detached starts, the stop file, job status.

The lock is an exclusive ``fcntl.flock`` on ``.loratui/job.lock``: the OS drops it when the holder dies, however
it dies, so a lock is never stale. ``job.json`` says who holds (or last held) it: kind, pid, start time, argv,
status (``starting`` while a detached child boots, ``running``, then ``done`` / ``failed`` / ``stopped``) and where
the job's events begin in ``logs/events.jsonl``. Windows has no fcntl: there the lock degrades to "job.json says
running and its pid is alive" — good enough for one user, not proof against two jobs starting in the same instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_text
from loratui.progress import Cancelled, CancelToken, Progress, ProgressCallback, no_progress
from loratui.project import Project
from loratui.training.events import EventReader, EventWriter, events_path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

JOB_FILE = "job.json"
LOCK_FILE = "job.lock"
STOP_FILE = "stop"
# A status or logs probe holds the lock for microseconds; a job starting in that instant retries this long.
LOCK_RETRY_S = 0.5
# How long start_detached watches the child for an immediate failure (bad settings, missing files).
STARTUP_CHECK_S = 1.0
# Progress events at most this often (the last one of a stage always goes out).
PROGRESS_EVENT_INTERVAL_S = 0.25
# Set by start_detached for the child: its log file (so job.json can name it).
LOG_ENV = "LORATUI_JOB_LOG"
HEADER = "==="  # starts the line start_detached writes to the log before each start

# Job states (job.json holds STARTING, RUNNING and the three final ones; STOPPING, LOST and NONE are derived).
STARTING, RUNNING, STOPPING = "starting", "running", "stopping"
DONE, STOPPED, FAILED, LOST, NONE = "done", "stopped", "failed", "lost", "none"


def job_file(project: Project) -> Path:
    return project.state_dir / JOB_FILE


def lock_file(project: Project) -> Path:
    return project.state_dir / LOCK_FILE


def stop_file(project: Project) -> Path:
    """The stop request: its presence asks the running job to finish its step, save and exit."""
    return project.state_dir / STOP_FILE


def log_file(project: Project, kind: str) -> Path:
    """Where a detached job's stdout and stderr go (appended, one header line per start)."""
    return project.logs_dir / f"{kind}.log"


# --- job.json ------------------------------------------------------------------------------------


@dataclass
class JobRecord:
    """The contents of ``.loratui/job.json``."""

    kind: str
    pid: int
    started: float
    argv: list[str]
    status: str
    events_offset: int = 0
    log: str | None = None
    finished: float | None = None
    message: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        return cls(
            kind=str(data.get("kind", "job")),
            pid=int(data.get("pid", 0)),
            started=float(data.get("started", 0.0)),
            argv=[str(a) for a in data.get("argv", [])],
            status=str(data.get("status", RUNNING)),
            events_offset=int(data.get("events_offset", 0)),
            log=data.get("log"),
            finished=data.get("finished"),
            message=data.get("message"),
        )


def read_job(project: Project) -> JobRecord | None:
    """The last job's record; None when no job has run here (or the file is unreadable: treated as no job)."""
    try:
        return JobRecord.from_dict(json.loads(job_file(project).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def write_job(project: Project, record: JobRecord) -> None:
    atomic_write_text(job_file(project), json.dumps(asdict(record), indent=2) + "\n")


def _events_size(project: Project) -> int:
    try:
        return events_path(project.logs_dir).stat().st_size
    except OSError:
        return 0


# --- liveness ------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie — exited, not yet reaped — counts as dead)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_pid_alive(pid)
    with contextlib.suppress(ChildProcessError, OSError):
        # Our own child (a job started from this process) stays a zombie until reaped: reap it here.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _windows_pid_alive(pid: int) -> bool:
    """os.kill(pid, 0) would terminate the process on Windows: ask for its exit code instead."""
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def lock_held(project: Project) -> bool:
    """Whether some process holds the project's job lock right now (probed without waiting)."""
    if fcntl is None:
        record = read_job(project)
        return record is not None and record.status in (RUNNING, STARTING) and pid_alive(record.pid)
    path = lock_file(project)
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _busy_error(project: Project) -> LoratuiError:
    record = read_job(project)
    what = f"a {record.kind} job is running (pid {record.pid})" if record else "another job is running"
    where = project.root
    return LoratuiError(f"{where}: {what}; one job per project at a time: see it with `loratui status {where}`, "
                        f"stop it with `loratui stop {where}`")


def _starting_elsewhere(project: Project) -> bool:
    """A detached child that has been spawned but has not taken the lock yet."""
    record = read_job(project)
    return record is not None and record.status == STARTING and record.pid != os.getpid() \
        and pid_alive(record.pid)


# --- the lock ------------------------------------------------------------------------------------


@dataclass
class JobHandle:
    """What ``job_lock`` yields: the job's record, its final status, and optional events/stop-file helpers."""

    project: Project
    record: JobRecord
    status: str | None = None
    lock_fd: int | None = None  # the flock'd descriptor (None on Windows), for a child that must hold it too
    _events: EventWriter | None = None
    _done_sent: bool = False
    _watchers: list[threading.Event] = field(default_factory=list)

    def mark_stopped(self) -> None:
        """Record the job as stopped (by request) rather than done when it ends normally."""
        self.status = STOPPED

    def mark_failed(self, message: str) -> None:
        """Record the job as failed when it ends without an exception (a child process failed and said why)."""
        self.status = FAILED
        self.record.message = message

    @property
    def stop_requested(self) -> bool:
        return stop_file(self.project).exists()

    def events(self) -> EventWriter:
        """An events writer for jobs that report through the lock (prepare, tag); closed when the lock is left.

        Once opened, leaving the lock writes ``done`` (if :meth:`done` was not called) or ``error``.
        """
        if self._events is None:
            self._events = EventWriter(events_path(self.project.logs_dir))
        return self._events

    def done(self, **extra: Any) -> None:
        self.events().done(**extra)
        self._done_sent = True

    def progress(self, callback: ProgressCallback = no_progress) -> ProgressCallback:
        """``callback`` that also writes ``progress`` events, throttled, so `loratui status` can show "21/38"."""
        writer = self.events()
        last = {"time": 0.0, "stage": ""}

        def report(progress: Progress) -> None:
            callback(progress)
            now = time.monotonic()
            if (progress.done >= progress.total or progress.stage != last["stage"]
                    or now - last["time"] >= PROGRESS_EVENT_INTERVAL_S):
                last["time"], last["stage"] = now, progress.stage
                writer.progress(stage=progress.stage, done=progress.done, total=progress.total, item=progress.item)

        return report

    def cancel_token(self, poll_s: float = 0.5) -> CancelToken:
        """A token cancelled when `loratui stop DIR` creates the stop file (for loops that take a CancelToken)."""
        token = CancelToken()
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
        if self._events is not None:
            self._events.close()


class JobTerminated(SystemExit):
    """SIGTERM (``loratui stop --now``, a shutdown) turned into an exception, so the job's record is closed."""


@contextlib.contextmanager
def job_lock(project: Project, kind: str, argv: list[str] | None = None) -> Iterator[JobHandle]:
    """Hold the project's one job slot while the ``with`` body runs; raise a one-line LoratuiError if taken.

    Writes ``job.json`` (status ``running``), clears a stop request left over from an earlier job, and on exit
    records ``done``, ``failed`` (with the error), or ``stopped`` (``handle.mark_stopped()``, a ``done`` event with
    ``stopped=True`` written during the job, a stop-file cancel, Ctrl-C or SIGTERM).
    """
    fd = _acquire(project)
    try:
        stop_file(project).unlink(missing_ok=True)
        offset = _events_size(project)
        record = JobRecord(kind=kind, pid=os.getpid(), started=time.time(),
                           argv=list(sys.argv[1:] if argv is None else argv), status=RUNNING, events_offset=offset,
                           log=_previous_log(project, kind))
        write_job(project, record)
        handle = JobHandle(project, record, lock_fd=fd)
        restore = _terminate_on_sigterm()
        try:
            yield handle
        except BaseException as exc:
            _finish_failed(handle, exc)
            raise
        else:
            _finish_ok(handle)
        finally:
            restore()
            handle._close()
            record.finished = time.time()
            write_job(project, record)
            stop_file(project).unlink(missing_ok=True)
    finally:
        _release(fd)


def _acquire(project: Project) -> int | None:
    try:
        project.state_dir.mkdir(parents=True, exist_ok=True)
        return _acquire_lock(project)
    except OSError as exc:
        raise LoratuiError(f"{lock_file(project)}: cannot take the job lock ({exc.strerror or exc}): check the "
                           "folder's permissions") from exc


def _acquire_lock(project: Project) -> int | None:
    if fcntl is None:
        if lock_held(project) or _starting_elsewhere(project):
            raise _busy_error(project)
        return None
    fd = os.open(lock_file(project), os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + LOCK_RETRY_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise _busy_error(project) from None
            time.sleep(0.05)
            continue
        if _starting_elsewhere(project):  # a detached child is booting and about to take the lock: its turn
            _release(fd)
            raise _busy_error(project)
        return fd


def _release(fd: int | None) -> None:
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _previous_log(project: Project, kind: str) -> str | None:
    """The log a detached start sends this process's output to (a foreground job has none)."""
    path = os.environ.get(LOG_ENV)
    return path if path and Path(path).name == log_file(project, kind).name else None


def _terminate_on_sigterm():
    """SIGTERM -> JobTerminated in the main thread, so ``finally`` blocks run; returns the undo function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: object) -> None:
        raise JobTerminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _finish_ok(handle: JobHandle) -> None:
    if handle.status == FAILED:
        handle.record.status = FAILED
        return
    stopped = handle.status == STOPPED or _stopped_event_since(handle.project, handle.record.events_offset)
    handle.record.status = STOPPED if stopped else (handle.status or DONE)
    if handle._events is not None and not handle._done_sent:
        handle.done(**({"stopped": True} if stopped else {}))


def _finish_failed(handle: JobHandle, exc: BaseException) -> None:
    record = handle.record
    if isinstance(exc, SystemExit) and not isinstance(exc, JobTerminated) and exc.code in (0, None):
        _finish_ok(handle)
        return
    if isinstance(exc, Cancelled) or isinstance(exc, (KeyboardInterrupt, JobTerminated)):
        record.status = STOPPED
        record.message = {JobTerminated: "terminated (SIGTERM)", KeyboardInterrupt: "interrupted (Ctrl-C)"}.get(
            type(exc), "stopped by request")
        if handle._events is not None:
            handle.events().warning(record.message)
            if not handle._done_sent:
                handle.done(stopped=True)
        return
    record.status = FAILED
    record.message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if handle._events is not None:
        handle.events().error(record.message)


def last_error_since(project: Project, offset: int) -> str | None:
    """The message of the last ``error`` event written since ``offset`` (what a child process failed on)."""
    errors = [e for e in _events_from(project, offset) if e.get("type") == "error"]
    return str(errors[-1].get("message")) if errors else None


def _stopped_event_since(project: Project, offset: int) -> bool:
    return any(e.get("type") == "done" and e.get("stopped") for e in _events_from(project, offset))


def _events_from(project: Project, offset: int) -> list[dict[str, Any]]:
    return EventReader(events_path(project.logs_dir), offset=offset).read_new()


# --- detached start ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetachedJob:
    pid: int
    log_path: Path


def start_detached(project: Project, kind: str, argv: list[str]) -> DetachedJob:
    """Run ``python -m loratui *argv`` in its own session (no terminal: SSH drops do not touch it), output
    appended to ``logs/{kind}.log``; return at once unless the child fails within a second (then raise its error).

    ``argv`` is the foreground command (e.g. ``["train", DIR]``), which takes the job lock itself.
    """
    if lock_held(project) or _starting_elsewhere(project):
        raise _busy_error(project)
    log_path = log_file(project, kind)
    project.logs_dir.mkdir(parents=True, exist_ok=True)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "loratui", *argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", LOG_ENV: str(log_path.resolve())}
    events_offset = _events_size(project)
    with open(log_path, "ab") as log:
        log.write(f"{HEADER} {time.strftime('%Y-%m-%d %H:%M:%S')} loratui {' '.join(argv)}\n".encode())
        log.flush()
        log_start = log.tell()
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env=env, **_detach_options())
        except OSError as exc:
            raise LoratuiError(f"cannot start the {kind} job ({command[0]}): {exc.strerror or exc}") from exc
    record = JobRecord(kind=kind, pid=child.pid, started=time.time(), argv=list(argv), status=STARTING,
                       events_offset=events_offset, log=str(log_path.resolve()))
    if not lock_held(project):  # the child may already hold the lock and have written its own record
        write_job(project, record)
    try:
        code = child.wait(timeout=STARTUP_CHECK_S)
    except subprocess.TimeoutExpired:
        return DetachedJob(child.pid, log_path)
    if code != 0:
        line = _last_line(log_path, log_start) or f"exit status {code}"
        _mark_failed_at_start(project, child.pid, line)
        raise LoratuiError(f"the {kind} job stopped at once: {line} (log: {log_path})")
    return DetachedJob(child.pid, log_path)


def _detach_options() -> dict[str, Any]:
    if os.name == "nt":
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        return {"creationflags": flags}
    return {"start_new_session": True}


def _last_line(path: Path, start: int, since_header: bool = False) -> str:
    """The last non-empty line written from ``start`` (or after the last start header), without "loratui: "."""
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if since_header:
        headers = [i for i, line in enumerate(lines) if line.startswith(HEADER)]
        lines = lines[headers[-1] + 1:] if headers else lines
    if not lines:
        return ""
    return lines[-1].removeprefix("loratui: ")


def _mark_failed_at_start(project: Project, pid: int, message: str) -> None:
    record = read_job(project)
    if record is not None and record.pid == pid and record.status in (STARTING, RUNNING):
        record.status, record.message, record.finished = FAILED, message, time.time()
        write_job(project, record)


# --- status --------------------------------------------------------------------------------------


@dataclass
class JobStatus:
    """What the project's current (or last) job is doing, from job.json, the lock and the events file."""

    state: str
    kind: str | None = None
    pid: int | None = None
    started: float | None = None
    finished: float | None = None
    argv: list[str] = field(default_factory=list)
    log_path: str | None = None
    events_path: str | None = None
    starting: bool = False
    step: int | None = None
    total_steps: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    lr: float | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    stage: str | None = None
    done: int | None = None
    total: int | None = None
    item: str | None = None
    last_checkpoint: str | None = None
    last_checkpoint_epoch: int | None = None
    final_path: str | None = None
    warnings: int = 0
    message: str | None = None

    @property
    def alive(self) -> bool:
        return self.state in (RUNNING, STOPPING)

    @property
    def percent(self) -> float | None:
        if self.step is not None and self.total_steps:
            return 100.0 * self.step / self.total_steps
        if self.done is not None and self.total:
            return 100.0 * self.done / self.total
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "alive": self.alive, "percent": self.percent}


def run_events(project: Project, record: JobRecord | None = None) -> tuple[list[dict[str, Any]], int]:
    """The current run's events, and the byte offset just after them (where a follower reads on).

    The run starts where job.json says its job began writing; without a usable record (no job.json, or the
    events file was cut shorter since), at the last ``start`` event.
    """
    record = read_job(project) if record is None else record
    usable = record is not None and record.events_offset <= _events_size(project)
    reader = EventReader(events_path(project.logs_dir), offset=record.events_offset if usable else 0)
    events = reader.read_new()
    return (events if usable else last_run(events)), reader.offset


def last_run(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events from the last ``start`` event on (all of them when there is none)."""
    starts = [i for i, event in enumerate(events) if event.get("type") == "start"]
    return events[starts[-1]:] if starts else events


def job_status(project: Project) -> JobStatus:
    """RUNNING / STOPPING / DONE / STOPPED / FAILED / LOST (job.json says running, the process is gone without a
    ``done`` or ``error`` event: it was killed) / NONE (no job has run here), with the run's latest figures."""
    record = read_job(project)
    if record is None:
        return JobStatus(state=NONE, events_path=str(events_path(project.logs_dir).resolve()))
    events, _ = run_events(project, record)
    status = JobStatus(state=NONE, kind=record.kind, pid=record.pid, started=record.started,
                       finished=record.finished, argv=record.argv, log_path=record.log,
                       events_path=str(events_path(project.logs_dir).resolve()), message=record.message)
    _apply_events(status, events)
    status.state = _state(project, record, events, status)
    return status


def _state(project: Project, record: JobRecord, events: list[dict[str, Any]], status: JobStatus) -> str:
    held = lock_held(project)
    if held or (record.status == STARTING and pid_alive(record.pid)):
        status.starting = not held
        return STOPPING if stop_file(project).exists() else RUNNING
    last = next((e for e in reversed(events) if e.get("type") in ("done", "error")), None)
    if record.status == STOPPED or (last is not None and last.get("type") == "done" and last.get("stopped")):
        return STOPPED
    if record.status == FAILED:
        return FAILED
    if last is not None and last.get("type") == "error":
        status.message = status.message or last.get("message")
        return FAILED
    if record.status == DONE:
        return DONE
    # job.json still says starting/running but nobody holds the lock.
    if last is not None:
        return DONE
    if record.status == STARTING and record.log:
        line = _last_line(Path(record.log), 0, since_header=True)
        if line:
            status.message = line
            return FAILED
    status.message = status.message or "the process is gone without finishing (killed, or the machine restarted)"
    return LOST


def _apply_events(status: JobStatus, events: list[dict[str, Any]]) -> None:
    for event in events:
        kind = event.get("type")
        if kind == "start":
            status.total_steps = event.get("total_steps")
            status.epochs = event.get("epochs")
        elif kind == "step":
            for name in ("step", "epoch", "loss", "lr", "images_per_s", "eta_s"):
                setattr(status, name, event.get(name))
        elif kind == "progress":
            status.stage, status.done, status.total = event.get("stage"), event.get("done"), event.get("total")
            status.item = event.get("item")
        elif kind == "checkpoint":
            status.last_checkpoint, status.last_checkpoint_epoch = event.get("path"), event.get("epoch")
        elif kind == "warning":
            status.warnings += 1
        elif kind == "error":
            status.message = event.get("message")
        elif kind == "done":
            # train: the final LoRA file; grid: the composed PNG.
            status.final_path = event.get("path") or event.get("final") or event.get("png") or status.final_path


# --- stop ----------------------------------------------------------------------------------------


def request_stop(project: Project) -> JobStatus:
    """Create the stop file for the running job; a one-line error when no job runs."""
    status = job_status(project)
    if not status.alive:
        last = f" (the last one, {status.kind}, is {status.state})" if status.kind else ""
        raise LoratuiError(f"{project.root}: no job is running, nothing to stop{last}: "
                           f"`loratui status {project.root}` shows it")
    atomic_write_text(stop_file(project), json.dumps({"requested": time.time(), "by": os.getpid()}) + "\n")
    return job_status(project)


def terminate(project: Project) -> JobStatus:
    """SIGTERM to the running job's process group (its own session when detached): the last resort."""
    status = job_status(project)
    if not status.alive or not status.pid:
        raise LoratuiError(f"{project.root}: no job is running, nothing to stop: "
                           f"`loratui status {project.root}` shows the last one")
    pid = status.pid
    try:
        group = os.getpgid(pid) if os.name != "nt" else None
        if group is not None and group == pid and group != os.getpgid(0):
            os.killpg(group, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)  # a foreground job shares its terminal's group: signal it alone
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise LoratuiError(f"cannot signal the {status.kind} job (pid {pid}): {exc.strerror}; "
                           "it belongs to another user") from exc
    return status
