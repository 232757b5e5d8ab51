"""The Train step's lines as text, from the job's figures (pure functions: the screen only places them)."""

from __future__ import annotations

from pathlib import Path

from loratui.jobs.kinds import DONE, NONE, RUNNING, STOPPING
from loratui.jobs.status import JobStatus
from loratui.training.estimate import checkpoint_epochs
from loratui.tui.widgets.loss_panel import loss_text
from loratui.tui.widgets.train_feed import CheckpointRow


def spaced(number: int | None) -> str:
    """``1 920``: thousands apart by a space (as the design writes step counts)."""
    return "?" if number is None else f"{number:,}".replace(",", " ")


def clock(seconds: float | None) -> str:
    """``0:12:23``."""
    if seconds is None or seconds < 0:
        return "?"
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def size_text(size: int | None) -> str:
    if size is None:
        return "moved"
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{max(1, round(size / 1e3))} KB"


def ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute ago"
    return f"{minutes} min ago" if minutes < 120 else f"{minutes // 60} h ago"


def running_text(status: JobStatus, now: float) -> str:
    """``RUNNING  epoch 8/20  step 768/1 920  40%  3.1 img/s  ETA 0:12:23`` (or STOPPING, or still loading)."""
    word = (STOPPING if status.state == STOPPING else RUNNING).upper()
    if status.step is None:
        since = f" ({int(now - status.started)}s)" if status.started else ""
        return f"{word}  starting: loading the base model and caching the pictures{since}"
    percent = f"{status.percent:.0f}%" if status.percent is not None else ""
    parts = [word, f"epoch {status.epoch}/{status.epochs}", f"step {spaced(status.step)}/"
             f"{spaced(status.total_steps)}", percent]
    if status.images_per_s:
        parts.append(f"{status.images_per_s:.1f} img/s")
    if status.eta_s is not None:
        parts.append(f"ETA {clock(status.eta_s)}")
    return "  ".join(part for part in parts if part)


def done_text(status: JobStatus, checkpoints: int) -> str:
    """``DONE  20 epochs in 0:21:02, 10 checkpoints, last loss 0.094. ^n compares them.``"""
    seconds = status.summary.get("seconds") if isinstance(status.summary, dict) else None
    if not isinstance(seconds, (int, float)) and status.started and status.finished:
        seconds = status.finished - status.started
    return (f"DONE  {status.epochs or '?'} epochs in {clock(seconds)}, {checkpoints} checkpoint"
            f"{'s' if checkpoints != 1 else ''}, last loss {loss_text(status.loss)}. ^n compares them.")


def progress_bar(status: JobStatus, width: int, ascii_only: bool) -> str:
    """A text bar; done and to-do differ in shape, not only in colour (heavy ━ against light ─; # against .)."""
    if status.state == NONE:
        return ""
    width = max(10, width)
    share = 1.0 if status.state == DONE else max(0.0, min(1.0, (status.percent or 0.0) / 100))
    filled = int(share * width)
    if ascii_only:
        return "#" * filled + "." * (width - filled)
    head = "╸" if 0 < filled < width else ""
    return "━" * filled + head + "─" * (width - filled - len(head))


def checkpoint_line(row: CheckpointRow, mark: str, wide: bool) -> str:
    """``▸ ep08   37 MB loss .117`` (and the file's name at 120 columns)."""
    loss = loss_text(row.loss).removeprefix("0") if row.loss is not None and row.loss < 1 else loss_text(row.loss)
    line = f"{mark} {row.label:5}{size_text(row.size):>7} loss {loss}"
    return f"{line}  {Path(row.path).name}" if wide else line


def next_checkpoint(status: JobStatus, save_every: int) -> str:
    """``next: ep10 in ~2 min``, from the time left per step; "" when no other file is due."""
    if not status.alive or not status.epochs or not status.steps_per_epoch or status.step is None:
        return ""
    epoch = next((e for e in checkpoint_epochs(status.epochs, save_every or status.epochs)
                  if e * status.steps_per_epoch > status.step), None)
    if epoch is None:
        return ""
    left = epoch * status.steps_per_epoch - status.step
    remaining = (status.total_steps or 0) - status.step
    if status.eta_s is None or remaining <= 0:
        return f"next: ep{epoch:02d}"
    minutes = status.eta_s / remaining * left / 60
    when = f"~{minutes:.0f} min" if minutes >= 1 else "< 1 min"
    return f"next: ep{epoch:02d} in {when}"
