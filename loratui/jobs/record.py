"""The job record (``.loratui/jobs/<resource>.json``): who runs or last ran on a resource, and how it ended.

Old projects have one ``.loratui/job.json`` for every kind of job, pointing into the shared ``logs/events.jsonl``
at a byte offset; :func:`read_records` still reads it (as job id ``legacy``) so `status` shows a run made by an
older loratui.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loratui.fsutil import DiskFull, atomic_write_text, overwrite_small_file
from loratui.jobs.kinds import RESOURCES, RUNNING, resource_of
from loratui.jobs.paths import LEGACY_EVENTS, LEGACY_LOCK, LEGACY_RECORD, events_file, record_path
from loratui.project import Project

LEGACY_ID = "legacy"


@dataclass
class JobRecord:
    """One job: its id, kind and resource, process, command, status and where its events and log are."""

    job_id: str
    kind: str
    resource: str
    pid: int
    started: float
    argv: list[str]
    status: str
    events: str  # the events file (absolute)
    events_offset: int = 0  # where this job's lines begin (0 but in a legacy shared file)
    log: str | None = None
    finished: float | None = None
    message: str | None = None
    lock: str | None = None  # a legacy record's lock file; None: the resource's own

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        kind = str(data.get("kind", "job"))
        return cls(
            job_id=str(data["job_id"]),
            kind=kind,
            resource=str(data.get("resource") or resource_of(kind)),
            pid=int(data.get("pid", 0)),
            started=float(data.get("started", 0.0)),
            argv=[str(a) for a in data.get("argv", [])],
            status=str(data.get("status", RUNNING)),
            events=str(data["events"]),
            events_offset=int(data.get("events_offset", 0)),
            log=data.get("log"),
            finished=data.get("finished"),
            message=data.get("message"),
            lock=data.get("lock"),
        )

    @property
    def events_path(self) -> Path:
        return Path(self.events)


def new_job_id(kind: str) -> str:
    """``train-20261202-210301-4123`` (kind, start time, process id; ``-2``, ``-3`` for a process's later jobs in
    the same second): sortable by time, unique, readable as a file name."""
    base = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    with _id_lock:
        count = _ids_made[base] = _ids_made.get(base, 0) + 1
    return base if count == 1 else f"{base}-{count}"


_id_lock = threading.Lock()
_ids_made: dict[str, int] = {}


def new_record(project: Project, kind: str, job_id: str, argv: list[str], status: str, *, pid: int | None = None,
               log: str | None = None) -> JobRecord:
    return JobRecord(job_id=job_id, kind=kind, resource=resource_of(kind), pid=os.getpid() if pid is None else pid,
                     started=time.time(), argv=list(argv), status=status,
                     events=str(events_file(project, job_id).resolve()), log=log)


def read_record(project: Project, resource: str) -> JobRecord | None:
    """The resource's last job; None when none ran (an unreadable record counts as none)."""
    try:
        return JobRecord.from_dict(json.loads(record_path(project, resource).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def write_record(project: Project, record: JobRecord) -> None:
    path = record_path(project, record.resource)
    text = json.dumps(asdict(record), indent=2) + "\n"
    try:
        atomic_write_text(path, text)
    except DiskFull:
        if not path.is_file():
            raise
        # A full disk must not leave the record saying "running" (then `status` says LOST, "killed"): the old
        # record's own blocks still take the new one, which says why the job ended.
        overwrite_small_file(path, text.encode("utf-8"))


def read_records(project: Project) -> list[JobRecord]:
    """Every resource's last job, the legacy one included, most recently started first."""
    records = [r for r in (read_record(project, resource) for resource in RESOURCES) if r is not None]
    legacy = read_legacy(project)
    if legacy is not None and not any(r.resource == legacy.resource and r.started >= legacy.started
                                      for r in records):
        records.append(legacy)
    return sorted(records, key=lambda r: r.started, reverse=True)


def read_legacy(project: Project) -> JobRecord | None:
    """``.loratui/job.json`` as loratui 0.x wrote it."""
    path = project.state_dir / LEGACY_RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        kind = str(data.get("kind", "job"))
        return JobRecord(job_id=LEGACY_ID, kind=kind, resource=resource_of(kind), pid=int(data.get("pid", 0)),
                         started=float(data.get("started", 0.0)), argv=[str(a) for a in data.get("argv", [])],
                         status=str(data.get("status", RUNNING)),
                         events=str((project.logs_dir / LEGACY_EVENTS).resolve()),
                         events_offset=int(data.get("events_offset", 0)), log=data.get("log"),
                         finished=data.get("finished"), message=data.get("message"),
                         lock=str(project.state_dir / LEGACY_LOCK))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def events_size(path: Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0
