"""Every event a job writes, declared once: typed, versioned, stamped with the job's id.

A line of an events file is one JSON object::

    {"v": 1, "job": "train-20261202-210301-4123", "type": "step", "time": 1796000000.123, "step": 12, ...}

``v`` is :data:`SCHEMA_VERSION`; ``job`` the id of the job that wrote it; ``type`` one of :data:`EVENT_TYPES`;
the other keys are the fields of that type's dataclass below. Lines written before versions existed (no ``v``:
version 0, loratui's shared ``logs/events.jsonl``) still parse: their ``start`` is today's :class:`Plan` and their
four ``done`` shapes map onto the one :class:`Done`.

Readers must ignore fields they do not know (a newer loratui may add some); writers may only write what is
declared here (:func:`to_record` refuses anything else, and a test checks every file a job writes).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

SCHEMA_VERSION = 1
ENVELOPE = ("v", "job", "type", "time")


@dataclass(kw_only=True)
class Event:
    """Fields every event has besides its own: when it was written and by which job."""

    TYPE: ClassVar[str] = ""
    time: float = 0.0
    job: str = ""


@dataclass(kw_only=True)
class Start(Event):
    """The job took its resource and began (the first line of every job's file)."""

    TYPE: ClassVar[str] = "start"
    kind: str
    resource: str = ""
    pid: int = 0
    argv: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class Plan(Event):
    """Training only: the run's plan, once the model is loaded."""

    TYPE: ClassVar[str] = "plan"
    total_steps: int
    steps_per_epoch: int = 0
    epochs: int = 0
    resumed_from: int = 0
    family: str = ""
    mixed_precision: str = ""
    processes: int = 1
    modules: int = 0
    device: str = ""
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Step(Event):
    """Training only: one optimizer step done. ``loss`` is None when it was not a number."""

    TYPE: ClassVar[str] = "step"
    step: int
    total_steps: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    lr: float | None = None
    lr_text_encoder: float | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    # GPU memory the process holds (torch's reserved pool, what nvidia-smi shows) and the card's total, in GB;
    # written only when the run is on CUDA (a CPU run leaves them out).
    vram_gb: float | None = None
    vram_total_gb: float | None = None


@dataclass(kw_only=True)
class Progress(Event):
    """Any job: ``done`` of ``total`` items of ``stage`` (throttled), with the rate and time left when known."""

    TYPE: ClassVar[str] = "progress"
    stage: str
    done: int
    total: int
    item: str = ""
    rate: float | None = None  # items per second in this stage
    eta_s: float | None = None


@dataclass(kw_only=True)
class Checkpoint(Event):
    """Training only: a LoRA file was written (``epoch`` counts completed epochs; 0 = during the first)."""

    TYPE: ClassVar[str] = "checkpoint"
    path: str
    epoch: int | None = None
    step: int | None = None


@dataclass(kw_only=True)
class Cell(Event):
    """Grid only: one cell rendered, taken from the cache, or failed (``error``)."""

    TYPE: ClassVar[str] = "cell"
    checkpoint: str
    weight: float
    epoch: int | None = None
    row: int | None = None
    column: int | None = None
    file: str | None = None
    seconds: float | None = None
    score: float | None = None
    cached: bool = False
    error: str | None = None


@dataclass(kw_only=True)
class JobWarning(Event):
    """Something worth knowing that did not stop the job."""

    TYPE: ClassVar[str] = "warning"
    message: str


@dataclass(kw_only=True)
class JobError(Event):
    """The job failed: the one-line reason. The last line of a failed job's file."""

    TYPE: ClassVar[str] = "error"
    message: str


@dataclass(kw_only=True)
class Done(Event):
    """The job ended by itself (``stopped``: by request, resumable). The last line of a finished job's file.

    ``result`` is the main thing it made (train: the final LoRA file; grid: the PNG); ``summary`` holds its
    counts (prepared, tagged, steps, cells ...), kind by kind.
    """

    TYPE: ClassVar[str] = "done"
    stopped: bool = False
    result: str | None = None
    seconds: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Unknown(Event):
    """What a reader makes of a type it does not know (written by a newer loratui): kept, not interpreted."""

    TYPE: ClassVar[str] = "?"
    type: str
    fields: dict[str, Any] = field(default_factory=dict)


EVENT_CLASSES: tuple[type[Event], ...] = (Start, Plan, Step, Progress, Checkpoint, Cell, JobWarning, JobError,
                                               Done)
EVENT_TYPES: dict[str, type[Event]] = {cls.TYPE: cls for cls in EVENT_CLASSES}
TERMINAL_TYPES = (Done.TYPE, JobError.TYPE)


def declared_fields(cls: type[Event]) -> frozenset[str]:
    return _FIELDS[cls]


_ORDER = {cls: tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("time", "job")) for cls in EVENT_CLASSES}
_FIELDS = {cls: frozenset(names) for cls, names in _ORDER.items()}
_REQUIRED = {cls: frozenset(f.name for f in dataclasses.fields(cls)
                            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
             for cls in EVENT_CLASSES}


def required_fields(cls: type[Event]) -> frozenset[str]:
    return _REQUIRED[cls]


# --- writing -------------------------------------------------------------------------------------


def to_record(event: Event) -> dict[str, Any]:
    """The JSON object of one line. Refuses a type that is not declared in :data:`EVENT_TYPES`."""
    if EVENT_TYPES.get(event.TYPE) is not type(event):
        raise TypeError(f"{type(event).__name__} is not a declared event type (loratui.jobs.events.EVENT_TYPES)")
    # An optional field left at None is not written: a long run's lines stay short, and readers default it.
    fields = {name: _clean(value) for name in _ORDER[type(event)]
              if (value := getattr(event, name)) is not None or name in _REQUIRED[type(event)]}
    return {"v": SCHEMA_VERSION, "job": event.job, "type": event.TYPE, "time": round(event.time, 3), **fields}


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they are written as null (a loss that was not a number)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# --- reading -------------------------------------------------------------------------------------


def parse_event(record: dict[str, Any]) -> Event | None:
    """The typed event of one parsed line, of any version; None for a line that is not an event at all."""
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        return None
    kind = record["type"]
    if record.get("v", 0) == 0:
        kind, body = _from_version_0(kind, {k: v for k, v in record.items() if k not in ENVELOPE})
    else:
        body = record
    cls = EVENT_TYPES.get(kind)
    when = record.get("time")
    when = float(when) if isinstance(when, (int, float)) and not isinstance(when, bool) else 0.0
    job = str(record.get("job") or "")
    if cls is None:
        return Unknown(type=kind, fields={k: v for k, v in body.items() if k not in ENVELOPE}, time=when, job=job)
    names = _FIELDS[cls]
    try:  # the fields this version knows; a newer writer's extra fields are left out
        return cls(**{k: v for k, v in body.items() if k in names}, time=when, job=job)
    except TypeError:  # a required field is missing: a damaged or foreign line
        return None


def _from_version_0(kind: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Lines written before the schema had versions."""
    if kind == "start":  # training's plan was called "start"
        return Plan.TYPE, body
    if kind == "done":
        result = body.pop("path", None) or body.pop("final", None) or body.pop("png", None)
        stopped = bool(body.pop("stopped", False))
        seconds = body.pop("seconds", None)
        return Done.TYPE, {"stopped": stopped, "result": result, "seconds": seconds, "summary": body}
    return kind, body


def check_record(record: dict[str, Any]) -> list[str]:
    """What is wrong with one line written by this version (the schema test runs it on every job's files)."""
    problems = []
    if record.get("v") != SCHEMA_VERSION:
        problems.append(f"v is {record.get('v')!r}, not {SCHEMA_VERSION}")
    if not record.get("job"):
        problems.append("no job id")
    if not isinstance(record.get("time"), (int, float)):
        problems.append("no time")
    cls = EVENT_TYPES.get(record.get("type"))  # type: ignore[arg-type]
    if cls is None:
        return [*problems, f"undeclared type {record.get('type')!r}"]
    given = set(record) - set(ENVELOPE)
    extra = given - declared_fields(cls)
    missing = required_fields(cls) - given
    if extra:
        problems.append(f"{cls.TYPE}: undeclared fields {sorted(extra)}")
    if missing:
        problems.append(f"{cls.TYPE}: missing fields {sorted(missing)}")
    return problems
