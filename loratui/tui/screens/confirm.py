"""The base of the dialogs that confirm an action (design §2.12): the safe answer is focused, `esc` means it, and
keys typed ahead before the dialog appeared are dropped (the app drops keys in its first 300 ms)."""

from __future__ import annotations

import time
from typing import TypeVar

from textual.screen import ModalScreen

Answer = TypeVar("Answer")


class ConfirmDialog(ModalScreen[Answer]):
    def __init__(self) -> None:
        super().__init__()
        self._opened = time.monotonic()

    def on_screen_resume(self) -> None:
        self._opened = time.monotonic()  # the grace counts from when it shows, not from when it was made

    def opened_for(self) -> float:
        """Seconds since the dialog showed."""
        return time.monotonic() - self._opened
