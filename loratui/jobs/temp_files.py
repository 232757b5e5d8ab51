"""Temp files that killed writers left behind: an atomic write (fsutil) is a ``.NAME.<pid>.<random>.tmp`` beside its
target until the rename; a kill -9 in between leaves it forever. Each job's start removes the ones whose writer is
gone, in the folders loratui writes to."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from loratui.jobs.liveness import pid_alive
from loratui.project import Project

# .NAME.<pid>.<random>.tmp; loratui 0.1 wrote .NAME.<random>.tmp, with no owner to ask: removed once it is old.
_TEMP_NAME = re.compile(r"^\..+?\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]{8}\.tmp$")
UNOWNED_TEMP_AGE_S = 3600.0


def project_write_folders(project: Project) -> list[Path]:
    """Where loratui writes atomically: the project (loratui.toml), output/, .loratui/ and its state, the
    dataset's concept folders (captions), the previews."""
    folders = [project.root, project.output_dir, project.state_dir, project.preview_dir]
    for parent in (project.state_dir, project.dataset_dir, project.preview_dir):
        try:
            folders += [Path(entry.path) for entry in os.scandir(parent) if entry.is_dir(follow_symlinks=False)]
        except OSError:
            continue
    return folders


def sweep_temp_files(folders: list[Path]) -> list[Path]:
    """Remove the temp files in ``folders`` whose writer is no longer running; return what was removed."""
    removed = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = _TEMP_NAME.match(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False) or not _orphaned(entry, match["pid"]):
                continue
            try:
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(Path(entry.path))
    return removed


def _orphaned(entry: os.DirEntry, pid: str | None) -> bool:
    if pid is None:
        try:
            return time.time() - entry.stat(follow_symlinks=False).st_mtime > UNOWNED_TEMP_AGE_S
        except OSError:
            return False
    return int(pid) != os.getpid() and not pid_alive(int(pid))
