"""Progress, cancellation and per-file outcomes shared by every long engine action (CLI and wizard alike)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loratui.errors import LoratuiError


@dataclass(frozen=True)
class Progress:
    """One step of a long action: ``done`` of ``total`` items of ``stage``, the current item's name."""

    stage: str
    done: int
    total: int
    item: str = ""


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """The default callback: report nothing."""


class Cancelled(LoratuiError):
    """The user cancelled; everything finished before that point is kept."""


@dataclass
class CancelToken:
    """Set from another thread (the wizard's cancel key, a signal handler); long loops call ``check()``."""

    _event: threading.Event = field(default_factory=threading.Event)
    also: CancelToken | None = None  # another token that cancels this one too (the caller's, inside a job)

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self.also is not None and self.also.cancelled)

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled("cancelled: the work done so far is kept; run the command again to finish")


@dataclass(frozen=True)
class FileNote:
    """Something about one file: why it was skipped, or what to watch out for."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class Outcome:
    """What a long action did: how many items it handled, and every file it skipped or warned about."""

    done: int = 0
    unchanged: int = 0
    skipped: list[FileNote] = field(default_factory=list)
    warnings: list[FileNote] = field(default_factory=list)

    def skip(self, path: Path, message: str) -> None:
        self.skipped.append(FileNote(Path(path), message))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(FileNote(Path(path), message))
