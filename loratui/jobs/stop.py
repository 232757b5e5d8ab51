"""Stopping a job: the stop request its loop polls (finish the step, save, exit), or SIGTERM as a last resort."""

from __future__ import annotations

import json
import os
import signal
import time

from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_text
from loratui.jobs.paths import stop_path
from loratui.jobs.status import JobStatus, all_statuses, job_status
from loratui.project import Project


def running_job(project: Project, resource: str | None) -> JobStatus:
    """The job to stop: the resource's, or the only one running; a one-line error when none (or several) runs."""
    root = project.root
    if resource is not None:
        status = job_status(project, resource)
        if not status.alive:
            last = f" (the last one, {status.kind}, is {status.state})" if status.kind else ""
            raise LoratuiError(f"{root}: no {resource} job is running, nothing to stop{last}: "
                               f"`loratui status {root}` shows it")
        return status
    statuses = all_statuses(project)
    alive = [s for s in statuses if s.alive]
    if not alive:
        last = f" (the last one, {statuses[0].kind}, is {statuses[0].state})" if statuses else ""
        raise LoratuiError(f"{root}: no job is running, nothing to stop{last}: `loratui status {root}` shows it")
    if len(alive) > 1:
        named = ", ".join(f"{s.kind} (pid {s.pid})" for s in alive)
        choices = " or ".join(f"--job {s.kind}" for s in alive)
        raise LoratuiError(f"{root}: {len(alive)} jobs are running: {named}: say which to stop with {choices}")
    return alive[0]


def request_stop(project: Project, resource: str | None = None) -> JobStatus:
    """Create the stop file for the running job (the resource's, or the only one)."""
    status = running_job(project, resource)
    assert status.resource is not None
    atomic_write_text(stop_path(project, status.resource),
                      json.dumps({"requested": time.time(), "by": os.getpid(), "job": status.job_id}) + "\n")
    return job_status(project, status.resource)


def terminate(project: Project, resource: str | None = None) -> JobStatus:
    """SIGTERM to the running job's process group (its own session when detached): the last resort."""
    status = running_job(project, resource)
    pid = status.pid
    if not pid:
        raise LoratuiError(f"{project.root}: the {status.kind} job has no process id yet: try again in a moment")
    assert status.resource is not None
    # A training run takes its first SIGTERM (a shutdown) as "stop after this step"; this file says "now".
    atomic_write_text(stop_path(project, status.resource),
                      json.dumps({"requested": time.time(), "by": os.getpid(), "job": status.job_id, "now": True})
                      + "\n")
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
