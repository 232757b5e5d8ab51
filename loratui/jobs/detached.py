"""Detached starts: a job's command in its own session (SSH drops never reach it), returning a handle at once.

The parent takes the resource's lock, spawns ``python -m loratui <command>`` with the locked descriptor inherited
(``LORATUI_LOCK_FD``) and the job id chosen (``LORATUI_JOB_ID``), then lets go of its copy: the lock is held
without a gap until the child ends. :meth:`DetachedJob.poll` says, without blocking, whether the child has
started its job (its first event is written), is still on its way, or failed; :meth:`DetachedJob.wait_started`
blocks on it for the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loratui.errors import LoratuiError
from loratui.fsutil import as_user_error
from loratui.jobs import events as ev
from loratui.jobs.command import JobOptions, command_line
from loratui.jobs.event_log import read_events
from loratui.jobs.kinds import DONE, FAILED, RUNNING, STARTING, resource_of
from loratui.jobs.locks import LOCK_FD_ENV, resource_lock
from loratui.jobs.paths import events_file, log_file
from loratui.jobs.record import new_job_id, new_record, read_record, write_record
from loratui.jobs.runner import JOB_ID_ENV, LOG_ENV
from loratui.project import Project

HEADER = "==="  # starts the line written to the log before each start
STARTED_WAIT_S = 30.0  # how long the CLI waits for a child to start its job before saying it is still starting


@dataclass
class DetachedJob:
    """A job started in the background: its ids and files, and a non-blocking view of how its start went."""

    project: Project
    kind: str
    job_id: str
    pid: int
    log_path: Path
    events_path: Path
    log_start: int = 0
    _child: subprocess.Popen | None = field(default=None, repr=False)
    _began: bool = field(default=False, repr=False)

    def poll(self) -> str:
        """STARTING (on its way), RUNNING (its job began), DONE (already finished) or FAILED; never blocks."""
        code = self._child.poll() if self._child is not None else None
        self._began = self._began or any(isinstance(e, ev.Start) for e in read_events(self.events_path)[:1])
        began = self._began
        if code is None:
            return RUNNING if began else STARTING
        if code == 0:
            return DONE
        if not began:
            _mark_failed_at_start(self.project, self.kind, self.job_id, self.failure())
        return FAILED

    def failure(self) -> str:
        """The child's last line of output (its one-line reason), without "loratui: "."""
        code = self._child.poll() if self._child is not None else None
        return last_line(self.log_path, self.log_start) or f"exit status {code}"

    def wait_started(self, timeout: float = STARTED_WAIT_S, poll_s: float = 0.05) -> str:
        """Block until the job began or failed (or ``timeout``); FAILED raises the child's reason in one line."""
        deadline = time.monotonic() + timeout
        state = self.poll()
        while state == STARTING and time.monotonic() < deadline:
            time.sleep(poll_s)
            state = self.poll()
        if state == FAILED:
            raise LoratuiError(f"the {self.kind} job stopped at once: {self.failure()} (log: {self.log_path})")
        return state


def start_detached(project: Project, kind: str, argv: list[str]) -> DetachedJob:
    """Run ``python -m loratui *argv`` (the foreground command, e.g. from :func:`~loratui.jobs.command.command_line`)
    detached, output appended to ``logs/{kind}.log``; refuse at once, in one line, if the resource is busy."""
    job_id = new_job_id(kind)
    log_path = log_file(project, kind)
    try:
        project.logs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise as_user_error(exc, project.logs_dir) from None
    resource = resource_of(kind)
    with resource_lock(project, resource, kind, job_id) as held:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", LOG_ENV: str(log_path.resolve()), JOB_ID_ENV: job_id}
        pass_fds: tuple[int, ...] = ()
        if held.fd is not None:
            env[LOCK_FD_ENV] = f"{resource}:{held.fd}"
            pass_fds = (held.fd,)
        # Written before the child runs, so a second start in the same instant already sees this one.
        record = new_record(project, kind, job_id, argv, STARTING, log=str(log_path.resolve()))
        write_record(project, record)
        command = [sys.executable, "-m", "loratui", *argv]
        existed = log_path.exists()
        try:
            log = open(log_path, "ab")  # noqa: SIM115 (closed below; the child keeps its own descriptor)
            log.write(f"{HEADER} {time.strftime('%Y-%m-%d %H:%M:%S')} loratui {' '.join(argv)}\n".encode())
            log.flush()
        except OSError as exc:
            # A full disk: one line, the record says why, and no empty log is left behind.
            error = as_user_error(exc, log_path)
            _mark_failed_at_start(project, kind, job_id, str(error))
            _remove_if_empty(log_path, existed)
            raise error from None
        with log:
            log_start = log.tell()
            try:
                child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, pass_fds=pass_fds, **_detach_options())
            except OSError as exc:
                _mark_failed_at_start(project, kind, job_id, str(exc.strerror or exc))
                raise LoratuiError(f"cannot start the {kind} job ({command[0]}): {exc.strerror or exc}") from exc
        held.handed_over = True
        # The record names the child, unless it has already written its own.
        current = read_record(project, resource)
        if current is not None and current.job_id == job_id and current.status == STARTING:
            current.pid = child.pid
            write_record(project, current)
    return DetachedJob(project, kind, job_id, child.pid, log_path, events_file(project, job_id), log_start, child)


def start_job(project: Project, options: JobOptions) -> DetachedJob:
    """Start the job ``options`` describe (what the wizard calls): :func:`start_detached` on its command line."""
    return start_detached(project, options.KIND, command_line(project.root, options))


def _detach_options() -> dict[str, Any]:
    if os.name == "nt":
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        return {"creationflags": flags}
    return {"start_new_session": True}


def last_line(path: Path, start: int, since_header: bool = False) -> str:
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
    return lines[-1].removeprefix("loratui: ") if lines else ""


def _remove_if_empty(path: Path, existed: bool) -> None:
    try:
        if not existed and path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def _mark_failed_at_start(project: Project, kind: str, job_id: str, message: str) -> None:
    record = read_record(project, resource_of(kind))
    if record is not None and record.job_id == job_id and record.status in (STARTING, RUNNING):
        record.status, record.message, record.finished = FAILED, message, time.time()
        write_record(project, record)
