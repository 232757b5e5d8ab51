"""Signals in a foreground training run: Ctrl-C, a lost terminal and SIGTERM ask for a clean stop with a state."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loratui.project import Project

# What each signal means to a foreground run, and how it ends the process once the state is saved.
STOP_SIGNALS = {"SIGINT": "Ctrl-C", "SIGHUP": "the terminal closed (SIGHUP)", "SIGTERM": "SIGTERM"}


@dataclass
class StopSignal:
    """Set by the first stop signal: the run finishes its step, saves a resumable state and the process exits
    with 128 + ``signum`` (130 for Ctrl-C), as a shell expects of a program a signal ended."""

    event: threading.Event = field(default_factory=threading.Event)
    signum: int | None = None

    def is_set(self) -> bool:
        return self.event.is_set()


@contextmanager
def stop_signals(project: Project | None = None) -> Iterator[StopSignal]:
    """Ctrl-C, SIGHUP (an SSH connection lost) and SIGTERM (a shutdown) ask for a stop after the current step, so
    a dropped terminal costs one step, not the epochs since the last checkpoint. A second one interrupts at once;
    so does the first SIGTERM of `loratui stop --now`, which says so in the stop file."""
    requested = StopSignal()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            drop_lost_terminal()
        if requested.is_set() or (signum == signal.SIGTERM and project is not None and now_requested(project)):
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            from loratui.jobs.runner import JobTerminated

            raise JobTerminated(128 + signum)
        requested.signum = signum
        requested.event.set()
        say("\nloratui: stopping after this step, saving a state… (Ctrl-C again stops at once)")

    previous = {}
    for name in STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, handler)
    try:
        yield requested
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def now_requested(project: Project) -> bool:
    from loratui.jobs.kinds import TRAINING
    from loratui.jobs.paths import stop_path

    return now_requested_at(stop_path(project, TRAINING))


def now_requested_at(stop_file: Path) -> bool:
    """`loratui stop --now` writes ``"now": true`` in the stop file before its SIGTERM."""
    import json

    try:
        return bool(json.loads(stop_file.read_text(encoding="utf-8")).get("now"))
    except (OSError, ValueError, AttributeError):
        return False


def drop_lost_terminal() -> None:
    """After a hangup, writes to the terminal fail (EIO) and would end the run: send them to /dev/null."""
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            if os.isatty(fd):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
                os.close(devnull)
        except (OSError, ValueError, AttributeError):
            continue


def say(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
