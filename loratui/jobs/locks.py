"""Locks per resource (dataset, training, preview): an exclusive ``flock`` on ``.loratui/jobs/<resource>.lock``.

The OS drops a flock when its holder dies, however it dies, so a lock is never stale. While held, the file says
who holds it (pid, kind, job id, since when), so a refusal names the running job. A lock is re-entrant within one
thread: an engine function called inside the CLI's job (``run_training`` inside ``loratui train``) joins the lock
its caller holds. A detached child inherits its parent's locked descriptor (``LORATUI_LOCK_FD``), so the lock is
held without a gap from the parent's check to the child's end.

Windows has no fcntl: there a lock degrades to "the record says running and its pid is alive" — good enough for
one user, not proof against two jobs starting in the same instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loratui.errors import LoratuiError
from loratui.jobs.kinds import RUNNING, STARTING
from loratui.jobs.liveness import pid_alive
from loratui.jobs.paths import LEGACY_LOCK, jobs_dir, lock_path
from loratui.jobs.record import read_legacy, read_record
from loratui.project import Project

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

# A status probe holds a lock for microseconds; a job starting in that instant retries this long.
LOCK_RETRY_S = 0.5
LOCK_FD_ENV = "LORATUI_LOCK_FD"  # a detached child's inherited, already locked descriptor: "resource:fd"

_held = threading.local()  # per thread: {(root, resource): HeldLock}


@dataclass
class Holder:
    """Who holds a resource, as its lock file says."""

    pid: int
    kind: str
    job_id: str | None
    since: float


@dataclass
class HeldLock:
    resource: str
    fd: int | None  # None on Windows
    holder: Holder
    depth: int = 1
    handed_over: bool = False  # a detached child holds it now: let go of this copy without unlocking


def _key(project: Project, resource: str) -> tuple[str, str]:
    return str(project.root.resolve()), resource


def held_here(project: Project, resource: str) -> HeldLock | None:
    """The lock this thread holds on the resource, if any."""
    return getattr(_held, "locks", {}).get(_key(project, resource))


@contextlib.contextmanager
def resource_lock(project: Project, resource: str, kind: str, job_id: str | None = None) -> Iterator[HeldLock]:
    """Hold ``resource`` while the body runs; refuse at once, in one line naming the running job, if it is taken.

    Re-entrant in one thread: a nested call for the same resource joins the outer one.
    """
    locks = _held.__dict__.setdefault("locks", {})
    key = _key(project, resource)
    if key in locks:
        locks[key].depth += 1
        try:
            yield locks[key]
        finally:
            locks[key].depth -= 1
        return
    held = _acquire(project, resource, kind, job_id)
    locks[key] = held
    try:
        yield held
    finally:
        del locks[key]
        _release(held)


def _acquire(project: Project, resource: str, kind: str, job_id: str | None) -> HeldLock:
    holder = Holder(os.getpid(), kind, job_id, time.time())
    inherited = _inherited_fd(project, resource)
    if inherited is not None:
        _write_holder(inherited, holder)
        return HeldLock(resource, inherited, holder)
    try:
        jobs_dir(project).mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            if is_locked(project, resource):
                raise busy_error(project, resource, kind)
            return HeldLock(resource, None, holder)
        fd = os.open(lock_path(project, resource), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise LoratuiError(f"{lock_path(project, resource)}: cannot take the {resource} lock "
                           f"({exc.strerror or exc}): check the folder's permissions") from exc
    deadline = time.monotonic() + LOCK_RETRY_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise busy_error(project, resource, kind) from None
            time.sleep(0.05)
    if _legacy_held(project):
        _release(HeldLock(resource, fd, holder))  # an older loratui still runs a job here: its turn
        raise busy_error(project, resource, kind)
    _write_holder(fd, holder)
    return HeldLock(resource, fd, holder)


def _inherited_fd(project: Project, resource: str) -> int | None:
    """The locked descriptor a detached start handed to this process for ``resource`` (used once)."""
    value = os.environ.get(LOCK_FD_ENV, "")
    name, _, number = value.partition(":")
    if name != resource or not number.isdigit():
        return None
    os.environ.pop(LOCK_FD_ENV, None)  # a grandchild must not claim it again
    fd = int(number)
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(lock_path(project, resource)))
    except OSError:
        return None
    return fd if same else None


def _write_holder(fd: int, holder: Holder) -> None:
    data = json.dumps({"pid": holder.pid, "kind": holder.kind, "job": holder.job_id, "since": holder.since})
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, data.encode() + b"\n", 0)


def _release(held: HeldLock) -> None:
    fd = held.fd
    if fd is None or fcntl is None:
        return
    if held.handed_over:
        os.close(fd)  # the child's copy of the descriptor keeps the lock (flock belongs to the open file)
        return
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def is_locked(project: Project, resource: str, path: Path | None = None) -> bool:
    """Whether some process (this one included) holds the resource's lock right now, probed without waiting."""
    if held_here(project, resource) is not None and path is None:
        return True
    if fcntl is None:
        record = read_record(project, resource)
        return record is not None and record.status in (RUNNING, STARTING) and pid_alive(record.pid)
    path = path or lock_path(project, resource)
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


def holder(project: Project, resource: str) -> Holder | None:
    """Who holds the resource now (None when nobody does)."""
    if not is_locked(project, resource):
        return None
    try:
        data = json.loads(lock_path(project, resource).read_text(encoding="utf-8") or "{}")
        return Holder(int(data.get("pid", 0)), str(data.get("kind", "job")), data.get("job"),
                      float(data.get("since", 0.0)))
    except (OSError, ValueError, TypeError):
        return Holder(0, "job", None, 0.0)


def _legacy_held(project: Project) -> bool:
    """A job started by loratui 0.x (one lock for the whole project) is still running."""
    legacy = project.state_dir / LEGACY_LOCK
    return legacy.exists() and is_locked(project, "", legacy)


def busy_error(project: Project, resource: str, wanted: str) -> LoratuiError:
    """One line: what holds the resource, and how to watch or stop it."""
    who = holder(project, resource)
    record = read_record(project, resource)
    legacy = read_legacy(project) if fcntl is not None and _legacy_held(project) else None
    if who is None and legacy is not None:
        who = Holder(legacy.pid, legacy.kind, None, legacy.started)
    if who is None and record is not None:
        who = Holder(record.pid, record.kind, record.job_id, record.started)
    if who is None:
        what = "another job"
    else:
        since = f", since {time.strftime('%H:%M', time.localtime(who.since))}" if who.since else ""
        what = f"a {who.kind} {'edit' if who.kind == 'tags' else 'job'} (pid {who.pid}{since})"
    root = project.root
    return LoratuiError(f"{root}: cannot run {wanted} now: the {resource} is in use by {what}; one {resource} job at "
                        f"a time: watch it with `loratui status {root}`, stop it with `loratui stop {root} --job "
                        f"{resource}`")
