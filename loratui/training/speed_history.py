"""Measured training speeds per GPU, model family, resolution and batch size, kept in the user data folder so
the estimator can give a time for the next run on the same machine."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loratui.fsutil import atomic_write_text

HISTORY_FILE = "speed_history.json"
HISTORY_VERSION = 1
CPU = "CPU"
UNKNOWN_TIME = "unknown until your first run on this GPU"


@dataclass(frozen=True)
class SpeedRecord:
    """The last measured speed for one key. A "batch" is one forward/backward pass of one process; an optimizer
    step is ``gradient_accumulation_steps`` of them, so records stay comparable across accumulation settings."""

    gpu: str
    family: str
    resolution: int
    batch_size: int
    seconds_per_batch: float
    images_per_s: float
    recorded_at: str  # local ISO time, for "from your run of <date>"

    @property
    def key(self) -> str:
        return history_key(self.gpu, self.family, self.resolution, self.batch_size)


@dataclass(frozen=True)
class SpeedEstimate:
    """A speed for the run being planned: measured exactly for its key, or scaled from a neighbour."""

    seconds_per_batch: float
    source: SpeedRecord
    exact: bool
    basis: str  # e.g. "from your last NVIDIA GeForce RTX 4090 run" or "... at 768 px, scaled by pixel count"


def history_key(gpu: str, family: str, resolution: int, batch_size: int) -> str:
    return f"{gpu}|{family}|{resolution}|{batch_size}"


def data_dir() -> Path:
    """$LORATUI_DATA_DIR, else the platform's user data folder for loratui."""
    override = os.environ.get("LORATUI_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs  # only here: the CLI's start-up does not pay for it

    return Path(platformdirs.user_data_dir("loratui"))


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
        record = SpeedRecord(str(entry["gpu"]), str(entry["family"]), int(entry["resolution"]),
                             int(entry["batch_size"]), float(entry["seconds_per_batch"]),
                             float(entry["images_per_s"]), str(entry.get("recorded_at", "")))
    except (KeyError, TypeError, ValueError):
        return None
    usable = record.resolution > 0 and record.batch_size > 0 and math.isfinite(record.seconds_per_batch)
    return record if usable and record.seconds_per_batch > 0 else None


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
    """Store the speed just measured (the training loop calls this), replacing the older one for the same key.

    ``seconds_per_step`` is per optimizer step of one process; ``images_per_s`` defaults to this process's
    pictures per second (batch / seconds per batch).
    """
    if seconds_per_step <= 0 or not math.isfinite(seconds_per_step):
        raise ValueError(f"seconds_per_step must be a positive number, not {seconds_per_step}")
    seconds_per_batch = seconds_per_step / max(1, gradient_accumulation_steps)
    speed = images_per_s if images_per_s is not None else batch_size / seconds_per_batch
    record = SpeedRecord(gpu, family, resolution, batch_size, seconds_per_batch, speed,
                         time.strftime("%Y-%m-%dT%H:%M:%S"))
    path = path or history_path()
    records = load_history(path)
    records[record.key] = record
    document = {"version": HISTORY_VERSION, "speeds": {key: asdict(r) for key, r in sorted(records.items())}}
    atomic_write_text(path, json.dumps(document, indent=2) + "\n")
    return record


def lookup_speed(
    gpu: str, family: str, resolution: int, batch_size: int, path: Path | None = None
) -> SpeedEstimate | None:
    """The speed for this key: measured, else scaled from the same GPU and family (per picture, by pixel count),
    preferring the same resolution, then the nearest one, then the same batch size; None when nothing fits."""
    records = load_history(path)
    exact = records.get(history_key(gpu, family, resolution, batch_size))
    if exact is not None:
        return SpeedEstimate(exact.seconds_per_batch, exact, True, f"from your last {gpu} run")
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
    basis = f"from your {gpu} run at {', '.join(scaled_by)}, scaled"
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
