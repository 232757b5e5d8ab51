"""What the Train step shows of the training job, read in a thread worker: the job's state (the engine's
JobTracker), the checkpoints it wrote, its last log lines and the health warnings. Every read takes only the
bytes written since the one before; a re-attach reads the file once, in chunks, keeping the last
:data:`LOG_LINES` events (never the whole file in memory)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from loratui.commands.event_lines import format_event
from loratui.jobs import events as ev
from loratui.jobs.event_log import parse_lines
from loratui.jobs.status import LOSS_HISTORY, JobStatus, JobTracker, is_stop_reason
from loratui.project import Project
from loratui.training.health import health_warnings
from loratui.training.previous_run import PreviousRun, find_previous_run

LOG_LINES = 500
CHUNK_BYTES = 1 << 20  # a re-attach reads a long events file this much at a time
EARLIER_PARTS = 20  # how many stop-and-resume parts back a resumed run's history is looked for


@dataclass(frozen=True)
class CheckpointRow:
    """One LoRA file the run wrote: ``epoch`` completed epochs, its size, the mean loss of the epoch before it."""

    path: str
    epoch: int | None
    step: int | None
    size: int | None
    loss: float | None

    @property
    def label(self) -> str:
        if "-step" in Path(self.path).name and self.step is not None:
            return f"s{self.step}"  # the file a stop saved: named for its step
        return f"ep{self.epoch:02d}" if self.epoch is not None else "final"


@dataclass(frozen=True)
class LogLine:
    text: str
    warning: bool  # a warning or an error: kept in the warnings-only view too


@dataclass
class FeedUpdate:
    """One read: the state, what is new in the log (``reset``: a new job, start the log over), the checkpoints,
    the run's plan figures and the health warnings."""

    status: JobStatus
    losses: list[float] = field(default_factory=list)  # a resumed run's too: the parts before it first
    lines: list[LogLine] = field(default_factory=list)
    reset: bool = False
    checkpoints: list[CheckpointRow] = field(default_factory=list)
    save_every: int = 0
    scheduler: str = ""
    warnings: list[str] = field(default_factory=list)
    previous: PreviousRun | None = None  # what the last run left in output/ (read while no job runs)
    read_s: float = 0.0

    @property
    def resumable(self) -> bool:
        return self.previous is not None and self.previous.resumable

    @property
    def trained(self) -> bool:
        """The final LoRA is there: the run reached its end."""
        return self.previous is not None and self.previous.final is not None


class TrainFeed:
    """Follows the project's training job; :meth:`read` is called from one worker thread at a time."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._root = f"{project.root}/"
        self.tracker = JobTracker(project, "training")
        self._job_id: str | None = None
        self._path: Path | None = None
        self._offset = 0
        self._context: dict = {}
        self._checkpoints: list[CheckpointRow] = []
        self._recent: deque[float] = deque(maxlen=1)  # the losses of the epoch going on (for a checkpoint's loss)
        self._save_every = 0
        self._scheduler = ""
        self._previous: PreviousRun | None = None
        self._previous_key: tuple | None = None
        self._earlier: list[CheckpointRow] = []
        self._earlier_losses: list[float] = []

    def forget_previous(self) -> None:
        """Read output/ again at the next read (the screen came back: a run may have been moved aside)."""
        self._previous = None

    def _find_previous(self) -> PreviousRun | None:
        from loratui.errors import LoratuiError

        try:
            return find_previous_run(self.project, self.project.output_name(self.project.load()))
        except (LoratuiError, OSError):
            return None

    def read(self) -> FeedUpdate:
        started = time.monotonic()
        status = self.tracker.poll()
        update = FeedUpdate(status)
        if status.job_id != self._job_id:
            self._begin(status)
            update.reset = True
        if self._path is not None:
            update.lines = self._read_lines(tail=update.reset)
        update.checkpoints = self._rows()
        update.losses = (self._earlier_losses + status.losses)[-LOSS_HISTORY:] if self._earlier_losses \
            else status.losses
        update.save_every, update.scheduler = self._save_every, self._scheduler
        if status.alive:
            update.warnings = health_warnings(status.losses, status.speeds, status.steps_per_epoch,
                                              status.vram_gb, status.vram_total_gb)
            self._previous_key = None
        else:
            key = (status.job_id, status.state, status.finished)
            if key != self._previous_key or self._previous is None:
                self._previous = self._find_previous()
                self._previous_key = key
            update.previous = self._previous
        update.read_s = time.monotonic() - started
        return update

    def _begin(self, status: JobStatus) -> None:
        self._job_id = status.job_id
        self._path = Path(status.events_path) if status.events_path else None
        self._offset = status.events_offset
        self._context = {"kind": "train"}
        self._checkpoints = []
        self._recent = deque(maxlen=1)
        self._save_every, self._scheduler = 0, ""
        self._earlier = self._files_before()
        self._earlier_losses = []

    def _files_before(self) -> list[CheckpointRow]:
        """The run's LoRA files already in output/ when this job began: a resumed run's list starts with the
        checkpoints of its first part (their loss is in the earlier job's events, not read here)."""
        from loratui.errors import LoratuiError
        from loratui.lora.paths import list_checkpoints

        try:
            found = list_checkpoints(self.project.output_dir, self.project.output_name(self.project.load()))
        except (LoratuiError, OSError):
            return []
        rows = []
        for epoch, path in found:
            try:
                size: int | None = path.stat().st_size
            except OSError:
                size = None
            rows.append(CheckpointRow(str(path), epoch, None, size, None))
        return rows

    def _rows(self) -> list[CheckpointRow]:
        written = {row.path for row in self._checkpoints}
        return [row for row in self._earlier if row.path not in written] + self._checkpoints

    def _read_lines(self, *, tail: bool) -> list[LogLine]:
        """The log lines written since the last read (on a new job: the last LOG_LINES of it)."""
        kept: deque[ev.Event] = deque(maxlen=LOG_LINES)
        assert self._path is not None
        try:
            with open(self._path, "rb") as handle:
                handle.seek(self._offset)
                while True:
                    data = handle.read(CHUNK_BYTES)
                    end = data.rfind(b"\n") + 1
                    if not end:
                        break  # nothing new, or a line still being written: the next read takes it
                    self._offset += end
                    handle.seek(self._offset)
                    for event in parse_lines(data[:end]):
                        self._note(event)
                        kept.append(event)
                    if len(data) < CHUNK_BYTES:
                        break
        except OSError:
            return []
        return [self._line(event) for event in kept]

    def _note(self, event: ev.Event) -> None:
        """What the checkpoints list needs from every event, the ones left out of the log too."""
        if isinstance(event, ev.Plan):
            self._context["total_steps"] = event.total_steps
            training = event.config.get("training", {}) if isinstance(event.config, dict) else {}
            self._save_every = int(training.get("save_every_n_epochs", 0) or 0)
            self._scheduler = str(training.get("lr_scheduler", "") or "")
            self._recent = deque(maxlen=max(1, event.steps_per_epoch))
            if event.resumed_from and self._path is not None:
                self._read_earlier_parts(self._path)
        elif isinstance(event, ev.Step) and event.loss is not None:
            self._recent.append(event.loss)
        elif isinstance(event, ev.Checkpoint):
            loss = sum(self._recent) / len(self._recent) if self._recent else None
            try:
                size: int | None = Path(event.path).stat().st_size
            except OSError:
                size = None  # moved away since (a fresh start archives it)
            self._checkpoints.append(CheckpointRow(event.path, event.epoch, event.step, size, loss))

    def _read_earlier_parts(self, path: Path) -> None:
        """A resumed run: the losses and checkpoint losses of the jobs it continues (each stop and resume is a
        job of its own, one events file each), newest part last, so the sparkline shows the whole run."""
        files = sorted(f for f in path.parent.glob("train-*.jsonl") if f.name < path.name)
        parts: list[list[float]] = []
        losses_at: dict[str, float] = {}
        for earlier in reversed(files[-EARLIER_PARTS:]):
            losses: deque[float] = deque(maxlen=LOSS_HISTORY)
            recent: deque[float] = deque(maxlen=1)
            resumed_from = None
            for event in _events_of(earlier):
                if isinstance(event, ev.Plan):
                    resumed_from = event.resumed_from
                    recent = deque(maxlen=max(1, event.steps_per_epoch))
                elif isinstance(event, ev.Step) and event.loss is not None:
                    losses.append(event.loss)
                    recent.append(event.loss)
                elif isinstance(event, ev.Checkpoint) and recent:
                    losses_at.setdefault(event.path, sum(recent) / len(recent))
            if resumed_from is None:
                continue  # a start that failed before its plan: not a part of the run
            parts.insert(0, list(losses))
            if not resumed_from or sum(map(len, parts)) >= LOSS_HISTORY:
                break  # the run's first part, or enough history
        self._earlier_losses = [loss for part in parts for loss in part][-LOSS_HISTORY:]
        self._earlier = [CheckpointRow(row.path, row.epoch, row.step, row.size, losses_at.get(row.path, row.loss))
                         for row in self._earlier]

    def _line(self, event: ev.Event) -> LogLine:
        if isinstance(event, ev.JobWarning) and not is_stop_reason(event.message):
            return LogLine(f"{_clock(event)} ! {event.message}", True)
        if isinstance(event, ev.JobError):
            return LogLine(f"{_clock(event)} ✗ {event.message}", True)
        # Paths inside the project read relative to it (the job writes them absolute): the log box is 76 wide.
        return LogLine(format_event(event, self._context).replace(self._root, ""), False)


def _events_of(path: Path):  # -> Iterator[ev.Event]
    """Every event of a file, parsed a chunk at a time."""
    try:
        with open(path, "rb") as handle:
            rest = b""
            while chunk := handle.read(CHUNK_BYTES):
                data = rest + chunk
                end = data.rfind(b"\n") + 1
                rest = data[end:]
                yield from parse_lines(data[:end])
    except OSError:
        return


def _clock(event: ev.Event) -> str:
    return time.strftime("%H:%M:%S", time.localtime(event.time)) if event.time else "--:--:--"

