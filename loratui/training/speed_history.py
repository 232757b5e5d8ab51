"""Measured training speeds per GPU, model family, resolution and batch size, kept in the user data folder so
the estimator can give a time for the next run on the same machine."""

from __future__ import annotations

import json
import math
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loratui.fsutil import atomic_write_text
from loratui.user_dirs import data_dir

HISTORY_FILE = "speed_history.json"
HISTORY_VERSION = 2  # 1: one measurement per key, the last run's
CPU = "CPU"
# The speed of a key is the median of its last runs: one run slowed by other work on the machine (a grid
# rendering beside it, another user's job) must not make the next estimate several times too long.
RECENT_RUNS = 5


@dataclass(frozen=True)
class RunSpeed:
    """One training run's measured speed."""

    seconds_per_batch: float
    images_per_s: float
    recorded_at: str  # local ISO time


@dataclass(frozen=True)
class SpeedRecord:
    """The recent runs of one key, oldest first. A "batch" is one forward/backward pass of one process; an
    optimizer step is ``gradient_accumulation_steps`` of them, so records stay comparable across accumulation
    settings. Its speed is the median run's (of an even count, the faster middle one: a slowed run is the
    likelier odd one out than a fast one)."""

    gpu: str
    family: str
    resolution: int
    batch_size: int
    runs: tuple[RunSpeed, ...]

    @property
    def key(self) -> str:
        return history_key(self.gpu, self.family, self.resolution, self.batch_size)

    @property
    def typical(self) -> RunSpeed:
        ordered = sorted(self.runs, key=lambda run: run.seconds_per_batch)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def seconds_per_batch(self) -> float:
        return self.typical.seconds_per_batch

    @property
    def images_per_s(self) -> float:
        return self.typical.images_per_s

    @property
    def recorded_at(self) -> str:
        """When the last run was measured."""
        return self.runs[-1].recorded_at


@dataclass(frozen=True)
class SpeedEstimate:
    """A speed for the run being planned: measured exactly for its key, or scaled from a neighbour."""

    seconds_per_batch: float
    source: SpeedRecord
    exact: bool
    basis: str  # e.g. "from your last NVIDIA GeForce RTX 4090 run" or "... at 768 px, scaled"


def history_key(gpu: str, family: str, resolution: int, batch_size: int) -> str:
    return f"{gpu}|{family}|{resolution}|{batch_size}"


def history_path() -> Path:
    return data_dir() / HISTORY_FILE


def load_history(path: Path | None = None) -> dict[str, SpeedRecord]:
    """Every stored record by key. A missing, unreadable or foreign file counts as no history: it is a cache of
    timings, and a bad one must never stop an estimate or a training run."""
    path = path or history_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    records: dict[str, SpeedRecord] = {}
    entries = raw.get("speeds", {}) if isinstance(raw, dict) else {}
    if not isinstance(entries, dict):
        return {}
    for entry in entries.values():
        record = _record_from(entry)
        if record is not None:
            records[record.key] = record
    return records


def _record_from(entry: object) -> SpeedRecord | None:
    if not isinstance(entry, dict):
        return None
    try:
        gpu, family = str(entry["gpu"]), str(entry["family"])
        resolution, batch_size = int(entry["resolution"]), int(entry["batch_size"])
    except (KeyError, TypeError, ValueError):
        return None
    # Version 1 kept one run's figures in the entry itself.
    listed = entry.get("runs", [entry])
    runs = tuple(run for run in map(_run_from, listed if isinstance(listed, list) else []) if run is not None)
    if resolution <= 0 or batch_size <= 0 or not runs:
        return None
    return SpeedRecord(gpu, family, resolution, batch_size, runs[-RECENT_RUNS:])


def _run_from(entry: object) -> RunSpeed | None:
    if not isinstance(entry, dict):
        return None
    try:
        run = RunSpeed(float(entry["seconds_per_batch"]), float(entry["images_per_s"]),
                       str(entry.get("recorded_at", "")))
    except (KeyError, TypeError, ValueError):
        return None
    return run if math.isfinite(run.seconds_per_batch) and run.seconds_per_batch > 0 else None


def _entry(record: SpeedRecord) -> dict[str, object]:
    return {"gpu": record.gpu, "family": record.family, "resolution": record.resolution,
            "batch_size": record.batch_size, "runs": [asdict(run) for run in record.runs]}


def record_speed(
    gpu: str,
    family: str,
    resolution: int,
    batch_size: int,
    seconds_per_step: float,
    *,
    gradient_accumulation_steps: int = 1,
    images_per_s: float | None = None,
    path: Path | None = None,
) -> SpeedRecord:
    """Add the speed just measured (the training loop calls this) to its key's recent runs, the oldest of more
    than :data:`RECENT_RUNS` dropped; returns the key's record.

    ``seconds_per_step`` is per optimizer step of one process; ``images_per_s`` defaults to this process's
    pictures per second (batch / seconds per batch).
    """
    if seconds_per_step <= 0 or not math.isfinite(seconds_per_step):
        raise ValueError(f"seconds_per_step must be a positive number, not {seconds_per_step}")
    seconds_per_batch = seconds_per_step / max(1, gradient_accumulation_steps)
    speed = images_per_s if images_per_s is not None else batch_size / seconds_per_batch
    run = RunSpeed(seconds_per_batch, speed, time.strftime("%Y-%m-%dT%H:%M:%S"))
    path = path or history_path()
    records = load_history(path)
    key = history_key(gpu, family, resolution, batch_size)
    earlier = records[key].runs if key in records else ()
    record = SpeedRecord(gpu, family, resolution, batch_size, (*earlier, run)[-RECENT_RUNS:])
    records[key] = record
    document = {"version": HISTORY_VERSION, "speeds": {key: _entry(r) for key, r in sorted(records.items())}}
    atomic_write_text(path, json.dumps(document, indent=2) + "\n")
    return record


def typical_step_seconds(step_times: list[float]) -> float | None:
    """A run's seconds per step for :func:`record_speed`: the median step, the first left out (it carries
    one-off costs: allocations, kernel choice) when there are others, so a stretch of steps slowed by other
    work (a grid rendering meanwhile) does not count; None without steps."""
    times = sorted(step_times[1:] or step_times)
    if not times:
        return None
    middle = len(times) // 2
    return times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2


def unknown_time(gpu: str) -> str:
    """What the estimate says before any run was measured on ``gpu``."""
    return "unknown until your first training run on the CPU" if gpu == CPU else \
        f"unknown until your first training run on the {gpu}"


def _runs_basis(record: SpeedRecord) -> str:
    """ "your last RTX 4090 run", or "the median of your last 3 RTX 4090 runs"."""
    count = len(record.runs)
    return f"your last {record.gpu} run" if count == 1 else f"the median of your last {count} {record.gpu} runs"


def lookup_speed(
    gpu: str, family: str, resolution: int, batch_size: int, path: Path | None = None
) -> SpeedEstimate | None:
    """The speed for this key: measured, else scaled from the same GPU and family (per picture, by pixel count),
    preferring the same resolution, then the nearest one, then the same batch size; None when nothing fits."""
    records = load_history(path)
    exact = records.get(history_key(gpu, family, resolution, batch_size))
    if exact is not None:
        return SpeedEstimate(exact.seconds_per_batch, exact, True, f"from {_runs_basis(exact)}")
    relatives = [r for r in records.values() if r.gpu == gpu and r.family == family]
    if not relatives:
        return None
    nearest = min(relatives, key=lambda r: (abs(math.log(r.resolution / resolution)), r.batch_size != batch_size,
                                            abs(r.batch_size - batch_size), r.resolution, r.batch_size))
    # Time grows with the pixels pushed through the UNet: per picture, times the pixel ratio.
    per_picture = nearest.seconds_per_batch / nearest.batch_size
    pixels = (resolution / nearest.resolution) ** 2
    seconds = per_picture * pixels * batch_size
    scaled_by = []
    if nearest.resolution != resolution:
        scaled_by.append(f"{nearest.resolution} px")
    if nearest.batch_size != batch_size:
        scaled_by.append(f"batch {nearest.batch_size}")
    runs = "run" if len(nearest.runs) == 1 else f"runs (median of {len(nearest.runs)})"
    basis = f"from your {gpu} {runs} at {', '.join(scaled_by)}, scaled"
    return SpeedEstimate(seconds, nearest, False, basis)


def detect_gpu_name() -> str:
    """The first GPU's name from nvidia-smi, or "CPU" when there is none. No torch: this must stay light."""
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return CPU
    names = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return names[0] if result.returncode == 0 and names else CPU
