"""What the command modules share: the project-folder argument, opening that project, paths shown relative to it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loratui.project import Project


def add_project_dir(parser: argparse.ArgumentParser, *, optional: bool = False, help: str = "the project folder",
                    default: Path | None = None) -> None:
    """The positional DIR argument (``args.dir``); ``optional`` lets it be left out (then ``default``, or None)."""
    extra = {"nargs": "?", "default": default} if optional else {}
    parser.add_argument("dir", type=Path, metavar="DIR", help=help, **extra)


def open_project(args: argparse.Namespace) -> Project:
    """The project in ``args.dir``, refused with what to do when the folder is not one."""
    return open_project_dir(args.dir)


def open_project_dir(folder: Path) -> Project:
    """The project in ``folder`` (as :func:`open_project`, for a folder not taken from ``args``)."""
    from loratui.project import Project  # here, not at the top: `loratui --help` stays quick

    return Project.open(folder)


def rel_path(path: str | Path, root: Path) -> str:
    """``path`` as shown to the user: relative to ``root`` (POSIX) when it lies inside it, also once links are
    resolved (a job may have written it absolute); otherwise as given."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        pass
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)
