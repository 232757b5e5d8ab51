"""The user's own loratui folder, shared by every project: the speed history, the recent projects."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "LORATUI_DATA_DIR"


def data_dir() -> Path:
    """$LORATUI_DATA_DIR, else the platform's user data folder for loratui."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    import platformdirs  # only here: the CLI's start-up does not pay for it

    return Path(platformdirs.user_data_dir("loratui"))
