"""The events file (logs/events.jsonl): one JSON object per line with ``type`` and ``time``; the UI reads only this.

Types and their fields:
  start       config (the run's settings as a dict), total_steps, steps_per_epoch, epochs (+ anything useful)
  step        step (counted from 1), epoch, loss, lr, images_per_s, eta_s
  checkpoint  path, epoch
  warning     message
  error       message
  done        (+ final path, steps, seconds)
Prepare, tag and grid jobs use the same file with a ``progress`` type: stage, done, total, item.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"


def events_path(logs_dir: Path) -> Path:
    return Path(logs_dir) / EVENTS_FILE


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they are written as null (the step's loss was not a number)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


class EventWriter:
    """Appends events, one whole line per write, flushed at once so a reader (or a crash) never sees half a line.

    ``enabled=False`` makes every call a no-op: in a multi-GPU run only the main process writes.
    """

    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self._handle = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)

    def emit(self, type_: str, **fields: Any) -> None:
        if self._handle is None:
            return
        record = {"type": type_, "time": round(time.time(), 3), **_clean(fields)}
        self._handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        self._handle.flush()

    def start(self, *, config: dict, total_steps: int, steps_per_epoch: int, epochs: int, **extra: Any) -> None:
        self.emit("start", config=config, total_steps=total_steps, steps_per_epoch=steps_per_epoch, epochs=epochs,
                  **extra)

    def step(self, *, step: int, epoch: int, loss: float, lr: float, images_per_s: float, eta_s: float,
             **extra: Any) -> None:
        self.emit("step", step=step, epoch=epoch, loss=loss, lr=lr, images_per_s=images_per_s, eta_s=eta_s, **extra)

    def checkpoint(self, *, path: Path, epoch: int, **extra: Any) -> None:
        self.emit("checkpoint", path=path, epoch=epoch, **extra)

    def progress(self, *, stage: str, done: int, total: int, item: str = "") -> None:
        self.emit("progress", stage=stage, done=done, total=total, item=item)

    def warning(self, message: str) -> None:
        self.emit("warning", message=message)

    def error(self, message: str) -> None:
        self.emit("error", message=message)

    def done(self, **extra: Any) -> None:
        self.emit("done", **extra)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class EventReader:
    """Reads new whole lines since the last call (a line still being written is left for the next call)."""

    path: Path
    offset: int = 0

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        events = []
        for line in data[:end].splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a damaged line (disk full mid-write in an old run) must not hide the rest
        return events


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event in the file, oldest first."""
    return EventReader(Path(path)).read_new()


def follow(path: Path, poll_s: float = 0.5, stop_when_done: bool = True) -> Iterator[dict[str, Any]]:
    """Yield events as they are written; ends after ``done`` or ``error`` when ``stop_when_done``."""
    reader = EventReader(Path(path))
    while True:
        batch = reader.read_new()
        for event in batch:
            yield event
            if stop_when_done and event.get("type") in ("done", "error"):
                return
        if not batch:
            time.sleep(poll_s)
