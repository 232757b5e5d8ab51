"""What a job is doing, folded from its record, its lock and its events — read incrementally.

:class:`JobTracker` keeps the byte offset it has read to and the figures folded so far, so polling it (the
wizard does, 4 times a second) reads only the lines written since. `loratui status` is a new process each time:
it starts from the fold the previous call saved (``.loratui/jobs/<job>.status.json``) when that still matches
the file.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loratui.fsutil import atomic_write_text
from loratui.jobs import events as ev
from loratui.jobs.detached import last_line
from loratui.jobs.event_log import EventReader, parse_lines
from loratui.jobs.kinds import DONE, FAILED, LOST, NONE, RUNNING, STARTING, STOPPED, STOPPING
from loratui.jobs.liveness import pid_alive
from loratui.jobs.locks import holder, is_locked
from loratui.jobs.paths import status_cache_path, stop_path
from loratui.jobs.record import LEGACY_ID, JobRecord, events_size, read_record, read_records
from loratui.project import Project
from loratui.training.eta import eta_from_events

LOSS_HISTORY = 2000  # recent losses kept for a sparkline
READ_CHUNK = 1 << 20  # bytes of events parsed at a time
CACHE_MIN_BYTES = 256 * 1024  # a fold is saved for the next `status` only when it saved reading this much
CACHE_VERSION = 3  # 1: stop reasons counted as warnings, the ETA as the loop wrote it; 2: no VRAM, device, speeds
# How a stop the user asked for (Ctrl-C, `loratui stop`, SIGTERM) is written as a warning before the job's
# `done`: it is the reason the job ended, not a warning.
STOP_REASONS = ("stopped by request", "interrupted (Ctrl-C)", "terminated (SIGTERM)")


def is_stop_reason(message: str) -> bool:
    return message.startswith(STOP_REASONS)


@dataclass
class JobStatus:
    """A job's state and latest figures. ``state``: RUNNING, STOPPING, DONE, STOPPED, FAILED, LOST (the record
    says running but the process is gone without a last event: killed) or NONE (no job has run)."""

    state: str
    job_id: str | None = None
    kind: str | None = None
    resource: str | None = None
    pid: int | None = None
    started: float | None = None
    finished: float | None = None
    argv: list[str] = field(default_factory=list)
    log_path: str | None = None
    events_path: str | None = None
    events_offset: int = 0  # where the job's lines begin (0 but in a legacy shared file)
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
    rate: float | None = None
    stage_eta_s: float | None = None  # time left in the current stage (progress events)
    last_checkpoint: str | None = None
    last_checkpoint_epoch: int | None = None
    checkpoints: int = 0
    cells: int = 0
    final_path: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: int = 0
    last_warning: str | None = None
    stop_reason: str | None = None  # why a stopped job stopped: "Ctrl-C", "interrupted (Ctrl-C)" ...
    message: str | None = None
    losses: list[float] = field(default_factory=list)  # the recent losses, oldest first (for a sparkline)
    speeds: list[float] = field(default_factory=list)  # the pictures/s of the same steps (for the health rules)
    vram_gb: float | None = None  # GPU memory the training process holds (CUDA runs only), and the card's total
    vram_total_gb: float | None = None
    device: str | None = None  # where training runs ("cuda:0", "cpu"), from its plan
    steps_per_epoch: int | None = None

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
        data = asdict(self)
        data.pop("losses")
        data.pop("speeds")
        return {**data, "alive": self.alive, "percent": self.percent}


# Fields the events fold into (the rest come from the record and the lock on every poll).
FOLDED = ("step", "total_steps", "epoch", "epochs", "loss", "lr", "images_per_s", "eta_s", "stage", "done", "total",
          "item", "rate", "stage_eta_s", "last_checkpoint", "last_checkpoint_epoch", "checkpoints", "cells",
          "final_path", "summary", "warnings", "last_warning", "stop_reason", "message", "vram_gb", "vram_total_gb",
          "device", "steps_per_epoch")


@dataclass
class _Fold:
    """The events read so far, folded; what a poll adds to and the cache keeps."""

    figures: dict[str, Any] = field(default_factory=dict)
    losses: deque = field(default_factory=lambda: deque(maxlen=LOSS_HISTORY))
    speeds: deque = field(default_factory=lambda: deque(maxlen=LOSS_HISTORY))
    terminal: str | None = None  # "done", "stopped" or "error"

    def apply(self, event: ev.Event) -> None:
        f = self.figures
        if isinstance(event, ev.Plan):
            f["total_steps"], f["epochs"] = event.total_steps, event.epochs
            f["device"], f["steps_per_epoch"] = event.device or None, event.steps_per_epoch or None
        elif isinstance(event, ev.Step):
            # The job's first step is its run's first (or the first after a resume): the ETA's pace starts there.
            first = f.setdefault("first_step", [event.step, event.elapsed_s])
            f["total_steps"] = event.total_steps or f.get("total_steps")
            eta = eta_from_events((first[0], first[1]), event.step, f["total_steps"], event.elapsed_s, event.eta_s)
            f.update(step=event.step, epoch=event.epoch, loss=event.loss, lr=event.lr,
                     images_per_s=event.images_per_s, eta_s=eta)
            f["epochs"] = event.epochs or f.get("epochs")
            if event.loss is not None:
                self.losses.append(event.loss)
            if event.images_per_s is not None:
                self.speeds.append(event.images_per_s)
            if event.vram_gb is not None:  # a CPU run writes none: the last figure stays (or none at all)
                f["vram_gb"], f["vram_total_gb"] = event.vram_gb, event.vram_total_gb
        elif isinstance(event, ev.Progress):
            f.update(stage=event.stage, done=event.done, total=event.total, item=event.item, rate=event.rate,
                     stage_eta_s=event.eta_s)
        elif isinstance(event, ev.Checkpoint):
            f.update(last_checkpoint=event.path, last_checkpoint_epoch=event.epoch,
                     checkpoints=f.get("checkpoints", 0) + 1)
        elif isinstance(event, ev.Cell):
            f["cells"] = f.get("cells", 0) + 1
        elif isinstance(event, ev.JobWarning):
            if is_stop_reason(event.message):
                f["stop_reason"] = event.message
            else:
                f.update(warnings=f.get("warnings", 0) + 1, last_warning=event.message)
        elif isinstance(event, ev.JobError):
            f["message"] = event.message
            self.terminal = "error"
        elif isinstance(event, ev.Done):
            f["final_path"] = event.result or f.get("final_path")
            f["summary"] = event.summary
            if event.stopped and event.summary.get("stopped_by"):
                f["stop_reason"] = str(event.summary["stopped_by"])
            self.terminal = "stopped" if event.stopped else "done"


class JobTracker:
    """Follows one resource's current job (or a legacy record); :meth:`poll` reads only what is new."""

    def __init__(self, project: Project, resource: str | None = None, *, use_cache: bool = False):
        self.project, self.resource, self.use_cache = project, resource, use_cache
        self._job_id: str | None = None
        self._reader: EventReader | None = None
        self._fold = _Fold()

    def poll(self) -> JobStatus:
        record = self._record()
        if record is None:
            return JobStatus(state=NONE)
        if record.job_id != self._job_id or self._reader is None or self._shrunk(record):
            self._start(record)
        assert self._reader is not None
        before = self._reader.offset
        for events in _read_in_chunks(self._reader):
            for event in events:
                self._fold.apply(event)
        if self.use_cache and self._reader.offset - before >= CACHE_MIN_BYTES:
            self._save_cache(record)
        return self._status(record)

    def _record(self) -> JobRecord | None:
        if self.resource is not None:
            record = read_record(self.project, self.resource)
            if record is None:
                legacy = [r for r in read_records(self.project) if r.job_id == LEGACY_ID]
                record = legacy[0] if legacy and legacy[0].resource == self.resource else None
            return record
        records = read_records(self.project)
        return records[0] if records else None

    def _shrunk(self, record: JobRecord) -> bool:
        return self._reader is not None and events_size(record.events_path) < self._reader.offset

    def _start(self, record: JobRecord) -> None:
        self._job_id = record.job_id
        offset = record.events_offset if record.events_offset <= events_size(record.events_path) else 0
        self._reader = EventReader(record.events_path, offset)
        self._fold = _Fold()
        if self.use_cache:
            self._load_cache(record)

    # --- the fold saved between `status` calls -------------------------------------------------------------

    def _cache_path(self, record: JobRecord) -> Path:
        return status_cache_path(self.project, f"{record.resource}-{record.job_id}" if record.job_id == LEGACY_ID
                                 else record.job_id)

    def _load_cache(self, record: JobRecord) -> None:
        try:
            data = json.loads(self._cache_path(record).read_text(encoding="utf-8"))
            if data.get("version") != CACHE_VERSION or data.get("events") != record.events:
                return
            offset = int(data["offset"])
            if not record.events_offset <= offset <= events_size(record.events_path):
                return
        except (OSError, ValueError, KeyError, TypeError):
            return
        assert self._reader is not None
        self._reader.offset = offset
        self._fold.figures = dict(data.get("figures", {}))
        self._fold.losses.extend(data.get("losses", []))
        self._fold.speeds.extend(data.get("speeds", []))
        self._fold.terminal = data.get("terminal")

    def _save_cache(self, record: JobRecord) -> None:
        assert self._reader is not None
        data = {"version": CACHE_VERSION, "events": record.events, "offset": self._reader.offset,
                "figures": self._fold.figures, "losses": list(self._fold.losses), "speeds": list(self._fold.speeds),
                "terminal": self._fold.terminal}
        with contextlib.suppress(OSError):
            atomic_write_text(self._cache_path(record), json.dumps(data) + "\n")

    # --- the state -----------------------------------------------------------------------------------------

    def _status(self, record: JobRecord) -> JobStatus:
        status = JobStatus(state=NONE, job_id=record.job_id, kind=record.kind, resource=record.resource,
                           pid=record.pid, started=record.started, finished=record.finished, argv=record.argv,
                           log_path=record.log, events_path=record.events, events_offset=record.events_offset,
                           losses=list(self._fold.losses), speeds=list(self._fold.speeds))
        for name in FOLDED:
            if name in self._fold.figures:
                setattr(status, name, self._fold.figures[name])
        status.message = record.message or status.message
        status.state = self._state(record, status)
        return status

    def _state(self, record: JobRecord, status: JobStatus) -> str:
        lock = Path(record.lock) if record.lock else None
        held = is_locked(self.project, record.resource, lock) if lock else _held_by_job(self.project, record)
        if held or (record.status == STARTING and pid_alive(record.pid)):
            status.starting = record.status == STARTING
            return STOPPING if stop_path(self.project, record.resource).exists() else RUNNING
        terminal = self._fold.terminal
        if record.status == STOPPED or terminal == "stopped":
            return STOPPED
        if record.status == FAILED or terminal == "error":
            return FAILED
        if record.status == DONE or terminal == "done":
            return DONE
        # The record still says starting/running but nobody holds the lock.
        if record.status == STARTING and record.log:
            line = last_line(Path(record.log), 0, since_header=True)
            if line:
                status.message = line
                return FAILED
        status.message = status.message or "the process is gone without finishing (killed, or the machine restarted)"
        return LOST


def _read_in_chunks(reader: EventReader) -> Iterator[list[ev.Event]]:
    """The reader's new lines a chunk at a time: a long file (a wizard re-attaching to a run of 100 000 steps)
    is never held whole, nor all its events at once."""
    try:
        handle = open(reader.path, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        return
    with handle:
        while True:
            handle.seek(reader.offset)
            data = handle.read(READ_CHUNK)
            end = data.rfind(b"\n") + 1
            if not end:
                if len(data) == READ_CHUNK:  # one line longer than a chunk: read it whole
                    yield reader.read_new()
                return
            reader.offset += end
            yield parse_lines(data[:end])
            if len(data) < READ_CHUNK:
                return


def _held_by_job(project: Project, record: JobRecord) -> bool:
    """The resource is locked, and by this record's job (a quick `tags` edit holding it is not this job)."""
    if record.status not in (RUNNING, STARTING):
        return False
    who = holder(project, record.resource)
    return who is not None and who.job_id in (None, record.job_id)


def job_status(project: Project, resource: str | None = None) -> JobStatus:
    """The resource's job, or (no resource) the most recently started job of the project, read once."""
    return JobTracker(project, resource, use_cache=True).poll()


def all_statuses(project: Project) -> list[JobStatus]:
    """Every resource's last job, most recently started first."""
    return [job_status(project, record.resource) for record in read_records(project)]


def running(project: Project) -> list[JobStatus]:
    return [status for status in all_statuses(project) if status.alive]

