"""The projects the user opened, most recent first, for the wizard's welcome screen and `loratui recent`.

Kept in ``recent-projects.json`` in the user data folder (:func:`loratui.user_dirs.data_dir`): each project's
resolved path and when it was last opened, nothing else. What a project is doing (its job's state, its name) is
read from the project itself each time the list is asked for, never stored, so it cannot go stale.

Several wizards may write at once: each change reads, changes and writes the file under a short flock on
``recent-projects.lock`` beside it, and the write is atomic, so a reader never sees half a file and a writer never
drops another's entry. A damaged or unreadable file counts as an empty list (it is a convenience, never a reason
to fail) and is rewritten whole by the next change. Plain Python: the wizard imports this at start-up.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loratui.config_io import CONFIG_FILE
from loratui.durations import format_duration
from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_text
from loratui.jobs.kinds import DONE, FAILED, LOST, NONE, RUNNING, STOPPED, STOPPING
from loratui.jobs.status import JobStatus, all_statuses
from loratui.project import Project
from loratui.user_dirs import data_dir

try:
    import fcntl
except ImportError:  # Windows: two wizards writing in the same instant may lose one entry
    fcntl = None  # type: ignore[assignment]

RECENT_FILE = "recent-projects.json"
RECENT_LOCK = "recent-projects.lock"
RECENT_VERSION = 1
KEEP = 20  # projects remembered; the oldest beyond are dropped
LOCK_WAIT_S = 2.0  # a writer holds the lock for milliseconds; past this, write without it rather than hang
NAME_READ_LIMIT = 256 * 1024  # a loratui.toml bigger than this is not read for its name

# What a running job is doing, by kind; a finished one says its state (DONE, FAILED...).
RUNNING_WORDS = {"train": "TRAINING", "prepare": "PREPARING", "tag": "TAGGING", "grid": "RENDERING"}
FINAL_WORDS = {DONE: "DONE", STOPPED: "STOPPED", FAILED: "FAILED", LOST: "LOST"}


@dataclass(frozen=True)
class RecentProject:
    """A remembered project as it is now. ``exists``: the folder still holds a loratui.toml (the wizard greys
    out the others). ``job``: its job in one short label (:func:`job_label`), None when no job has run;
    ``job_kind``/``job_state``/``percent`` are the same job's raw figures."""

    path: Path
    name: str
    opened: float  # when it was last opened, seconds since the epoch
    exists: bool
    job: str | None = None
    job_kind: str | None = None
    job_state: str | None = None
    percent: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class _Entry:
    path: str  # resolved, absolute
    opened: float


def recent_path() -> Path:
    return data_dir() / RECENT_FILE


def remember(project_root: Path) -> None:
    """Put the project at the front of the list (opened now), keeping the :data:`KEEP` most recent.

    Never fails: a list that cannot be written (a read-only home, a full disk) must not stop the project from
    opening; it only stays as it was."""
    entry = _Entry(str(_resolved(project_root)), time.time())
    with contextlib.suppress(LoratuiError):
        _change(lambda entries: [entry, *(e for e in entries if e.path != entry.path)][:KEEP])


def forget(project_root: Path) -> bool:
    """Drop the project from the list (its folder is left alone); False when it was not listed. A list that
    cannot be written raises a one-line LoratuiError."""
    path = str(_resolved(project_root))
    forgotten = False

    def change(entries: list[_Entry]) -> list[_Entry]:
        nonlocal forgotten
        kept = [e for e in entries if e.path != path]
        forgotten = len(kept) < len(entries)
        return kept

    _change(change)
    return forgotten


def prune() -> list[Path]:
    """Drop the projects whose folder no longer holds a loratui.toml; returns their paths."""
    dropped: list[Path] = []

    def change(entries: list[_Entry]) -> list[_Entry]:
        kept = [e for e in entries if _is_project(Path(e.path))]
        dropped[:] = [Path(e.path) for e in entries if e not in kept]
        return kept

    _change(change)
    return dropped


def recent_projects(limit: int | None = 10) -> list[RecentProject]:
    """The remembered projects, most recently opened first, at most ``limit`` (None: all kept). Those whose
    folder is gone are listed too, with ``exists`` False; :func:`prune` drops them."""
    entries = _load(recent_path())
    return [_describe(entry) for entry in (entries if limit is None else entries[:max(0, limit)])]


def job_label(status: JobStatus) -> str | None:
    """A job in one short label: ``TRAINING 41%`` (running), ``STOPPING``, ``DONE``/``FAILED``/``STOPPED``/
    ``LOST`` for a finished training, ``PREPARE DONE``/``TAG FAILED``/``GRID DONE`` for the other kinds; None when
    no job has run."""
    if status.state == NONE:
        return None
    if status.state == STOPPING:
        return "STOPPING"
    if status.state == RUNNING:
        word = RUNNING_WORDS.get(status.kind or "", "RUNNING")
        percent = status.percent
        # Rounded down: 100% only when it is done.
        return word if percent is None else f"{word} {min(100, max(0, math.floor(percent)))}%"
    final = FINAL_WORDS.get(status.state, status.state.upper())
    return final if not status.kind or status.kind == "train" else f"{status.kind.upper()} {final}"


def opened_ago(opened: float, now: float | None = None) -> str:
    """``21s ago``, ``12m05s ago``, ``2h07m ago``; a day or more: ``1 day ago``, ``3 days ago``."""
    seconds = max(0.0, (time.time() if now is None else now) - opened)
    if seconds < 86400:
        return f"{format_duration(seconds)} ago"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days != 1 else ''} ago"


# --- reading a project ------------------------------------------------------------------------------------------


def _describe(entry: _Entry) -> RecentProject:
    path = Path(entry.path)
    if not _is_project(path):
        return RecentProject(path, path.name or str(path), entry.opened, exists=False)
    status = _latest_job(Project(path))
    return RecentProject(path, _project_name(path), entry.opened, exists=True,
                         job=job_label(status) if status else None,
                         job_kind=status.kind if status else None,
                         job_state=status.state if status else None,
                         percent=status.percent if status and status.alive else None)


def _latest_job(project: Project) -> JobStatus | None:
    """The job running now (the most recently started, when several are), else the most recently started one;
    None when no job has run or the records cannot be read."""
    try:
        statuses = all_statuses(project)
    except (OSError, ValueError, TypeError, KeyError, LoratuiError):
        return None
    return next((s for s in statuses if s.alive), statuses[0] if statuses else None)


def _project_name(root: Path) -> str:
    """[project].name from loratui.toml when it is readable and set, else the folder's name. Never fails: the
    list of projects must show even a project whose settings are broken."""
    try:
        config = root / CONFIG_FILE
        if config.stat().st_size <= NAME_READ_LIMIT:
            name = tomllib.loads(config.read_text(encoding="utf-8-sig")).get("project", {}).get("name")
            if isinstance(name, str) and name.strip():
                return name.strip()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        pass
    return root.name or str(root)


def _is_project(root: Path) -> bool:
    try:
        return (root / CONFIG_FILE).is_file()
    except OSError:
        return False


def _resolved(root: Path) -> Path:
    return Path(root).expanduser().resolve()


# --- the file ---------------------------------------------------------------------------------------------------


def _load(path: Path) -> list[_Entry]:
    """The stored entries, most recent first; a missing, unreadable or damaged file (or entry) counts as none."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    listed = raw.get("projects") if isinstance(raw, dict) else None
    entries: list[_Entry] = []
    seen: set[str] = set()
    for item in listed if isinstance(listed, list) else []:
        entry = _entry_from(item)
        if entry is not None and entry.path not in seen:
            seen.add(entry.path)
            entries.append(entry)
    return entries[:KEEP]


def _entry_from(item: object) -> _Entry | None:
    if not isinstance(item, dict):
        return None
    path, opened = item.get("path"), item.get("opened")
    if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
        return None
    if isinstance(opened, bool) or not isinstance(opened, (int, float)) or not math.isfinite(opened):
        return None
    return _Entry(path, float(opened))


def _change(change: Callable[[list[_Entry]], list[_Entry]]) -> None:
    """Read, change and write the list under its lock; a write that fails raises a one-line LoratuiError."""
    path = recent_path()
    with _locked(path.parent / RECENT_LOCK):
        entries = change(_load(path))
        document = {"version": RECENT_VERSION, "projects": [asdict(e) for e in entries]}
        atomic_write_text(path, json.dumps(document, indent=2) + "\n")


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """An exclusive flock on ``lock`` while the body runs, waited for up to :data:`LOCK_WAIT_S`. One that cannot
    be had (no fcntl, a folder that cannot be written, a stuck holder) is gone without: the write then says why
    it failed, or goes ahead."""
    fd = None
    if fcntl is not None:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            fd = None
    try:
        if fd is not None:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.02)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing the descriptor lets the lock go
