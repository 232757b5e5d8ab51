"""How to type `loratui` in this shell: the command lines loratui prints for the user must work when pasted.

After `scripts/setup` without activating the venv, `loratui` is not on PATH; the user ran `.venv/bin/loratui`,
so a printed `loratui status DIR` would fail. The printed program is the one that is running, written the
shortest way that works from here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def program(argv0: str | None = None, *, path: str | None = None, cwd: Path | None = None) -> str:
    """``loratui`` when that name on PATH is this program; else the path the user ran (relative to ``cwd`` when
    shorter), or ``python -m loratui`` when started that way."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    name = Path(argv0).name
    if not argv0 or Path(name).stem != "loratui":  # python -m loratui, or loratui run inside another program
        on_path = shutil.which("loratui", path=path)
        if on_path and _same_environment(Path(on_path)):
            return "loratui"
        return f"{shlex.quote(sys.executable)} -m loratui"
    running = Path(argv0)
    if os.sep not in argv0:  # started by name: found on PATH, so the name works
        return argv0
    on_path = shutil.which(name, path=path)
    if on_path and _resolve(Path(on_path)) == _resolve(running):
        return name
    here = (cwd or Path.cwd()).resolve()
    try:
        shown = os.path.relpath(running.resolve(), here) if running.is_absolute() else argv0
    except ValueError:  # another drive (Windows)
        shown = argv0
    if not shown.startswith((".", os.sep)):
        shown = f".{os.sep}{shown}" if not os.path.isabs(shown) else shown
    if len(str(running)) < len(shown):
        shown = str(running)
    return shlex.quote(shown)


def _same_environment(script: Path) -> bool:
    """The `loratui` script on PATH belongs to the interpreter that runs us (same venv)."""
    return _resolve(script.parent) == _resolve(Path(sys.executable).parent)


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()
