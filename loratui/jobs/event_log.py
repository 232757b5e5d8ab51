"""Events files on disk: the appending writer, the incremental reader, and a look at a file's last lines."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loratui.fsutil import as_user_error
from loratui.jobs.events import TERMINAL_TYPES, Event, parse_event, to_record

Listener = Callable[[Event], None]
TAIL_BYTES = 65536  # enough for the last events of a job (a `plan` with the whole config is ~3 KB)


class EventWriter:
    """Appends a job's events, one whole line per write, flushed at once so a reader (or a crash) never sees
    half a line. Listeners (the CLI's bar, a test) see every event this process writes.

    ``enabled=False`` writes nothing but still tells listeners: in a multi-GPU run only rank 0 writes.
    """

    def __init__(self, path: Path, job_id: str, *, enabled: bool = True):
        self.path = Path(path)
        self.job_id = job_id
        self.enabled = enabled
        self.listeners: list[Listener] = []
        self._handle = None
        self._lock = threading.Lock()
        self.last_type: str | None = None
        if enabled:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the job)
            except OSError as exc:
                raise as_user_error(exc, self.path) from exc

    def emit(self, event: Event) -> Event:
        if not event.time:
            event.time = time.time()
        event.job = event.job or self.job_id
        line = json.dumps(to_record(event), ensure_ascii=False, allow_nan=False) + "\n"
        with self._lock:
            if self._handle is not None:
                try:
                    self._handle.write(line)
                    self._handle.flush()
                except OSError as exc:
                    self._broken()
                    # Named for the real file; the job's end then goes to its record (events cannot be written).
                    raise as_user_error(exc, self.path) from exc
            self.last_type = event.TYPE
        for listener in list(self.listeners):
            listener(event)
        return event

    def _broken(self) -> None:
        """After a failed write (a full disk) the file takes no more lines: a half-flushed buffer stays unwritten
        rather than failing every later event, the job's end included."""
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.flush()
                try:
                    os.fsync(self._handle.fileno())
                except OSError:  # a full disk: the lines are written as far as they go
                    pass
                self._handle.close()
                self._handle = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class EventReader:
    """Reads the whole lines written since the last call (a line still being written waits for the next call)."""

    path: Path
    offset: int = 0

    def read_new(self) -> list[Event]:
        return parse_lines(self.read_new_bytes())

    def read_new_bytes(self) -> bytes:
        """The whole lines written since the last call, as written."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return b""
        end = data.rfind(b"\n") + 1
        self.offset += end
        return data[:end]


def parse_lines(data: bytes) -> list[Event]:
    events = []
    for line in data.splitlines():
        try:
            event = parse_event(json.loads(line))
        except ValueError:
            continue  # a damaged line (disk full mid-write) must not hide the rest
        if event is not None:
            events.append(event)
    return events


def read_events(path: Path, offset: int = 0) -> list[Event]:
    """Every event in the file from ``offset``, oldest first."""
    return EventReader(Path(path), offset).read_new()


def read_raw(path: Path, offset: int = 0) -> list[dict]:
    """The file's lines as written (for `logs --raw` and the schema check)."""
    try:
        data = Path(path).read_bytes()[offset:]
    except FileNotFoundError:
        return []
    records = []
    for line in data.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def last_events(path: Path, start: int = 0) -> list[Event]:
    """The events in the last :data:`TAIL_BYTES` of the file (from ``start`` at the earliest): cheap on a long run."""
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as handle:
            begin = max(start, size - TAIL_BYTES)
            handle.seek(begin)
            data = handle.read()
    except OSError:
        return []
    if begin > start:
        data = data[data.find(b"\n") + 1:]  # the first line was cut in half
    return parse_lines(data[:data.rfind(b"\n") + 1])


def terminal_event(path: Path, start: int = 0) -> Event | None:
    """The job's ``done`` or ``error`` if it wrote one (the last one wins)."""
    return next((e for e in reversed(last_events(path, start)) if e.TYPE in TERMINAL_TYPES), None)


