"""Which wizard may edit a project's settings (design §6): the first one opened holds an exclusive ``flock`` on
``.loratui/wizard.lock``; a second one (another SSH session) watches and may stop jobs, but its settings are
read-only and it names the holder. The OS drops the lock when its holder dies, so it is never stale.

The descriptor is not inherited by the jobs the wizard starts (Python opens files non-inheritable), so a training
run left behind never keeps the settings locked."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; every wizard may edit (one user, one window, in practice)
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "wizard.lock"


@dataclass(frozen=True)
class WizardHolder:
    pid: int
    since: float  # epoch seconds

    def describe(self) -> str:
        since = time.strftime("%H:%M", time.localtime(self.since))
        return f"read-only: open in another loratui (pid {self.pid}) since {since}"


class SettingsClaim:
    """Held for the wizard's lifetime: ``holder`` is None when this wizard edits, else the other wizard."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self.fd: int | None = None
        self.holder: WizardHolder | None = None

    def acquire(self) -> WizardHolder | None:
        if fcntl is None:
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None  # a read-only project folder: nothing to protect by refusing
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.holder = _read_holder(fd)
            os.close(fd)
            return self.holder
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": time.time()}).encode(), 0)
        self.fd = fd
        return None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def _read_holder(fd: int) -> WizardHolder:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return WizardHolder(int(data["pid"]), float(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return WizardHolder(0, time.time())  # being written this instant: still held by someone
