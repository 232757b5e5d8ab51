"""Atomic file writes (temp file in the same folder + rename) with disk errors turned into one-line messages."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from loratui.errors import LoratuiError

TEMP_SUFFIX = ".tmp"  # an atomic write's temp file: .NAME.<pid>.<random>.tmp (jobs/temp_files.py sweeps them)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one, never half."""
    atomic_write_with(path, lambda handle: handle.write(data))


def atomic_write_with(path: Path, write: Callable[[BinaryIO], object], *, hint: str = "") -> None:
    """Let ``write`` fill a temp file beside ``path``, fsync it, then rename it over ``path``. Disk errors become
    one-line messages naming ``path`` (``hint`` adds what else the user can do); the temp file never stays."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The writer's pid in the name: a temp file a killed process left is known to be nobody's (see below).
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise as_user_error(exc, path, hint) from exc
    try:
        # mkstemp makes 0600 files; give the new file the mode the old one had, or the usual umask default,
        # so checkpoints copied into a shared WebUI folder stay readable.
        os.chmod(tmp, _target_mode(path))
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise as_user_error(exc, path, hint) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_copy(source: Path, target: Path, *, hint: str = "", chunk: int = 4 * 1024 * 1024) -> None:
    """Copy ``source`` to ``target`` atomically, streamed (a LoRA can be hundreds of MB); a source that changes
    size while it is read fails with a message instead of leaving a mixed copy."""
    source = Path(source)

    def write(handle: BinaryIO) -> None:
        size = source.stat().st_size
        with source.open("rb") as src:
            shutil.copyfileobj(src, handle, chunk)
        if handle.tell() != size or source.stat().st_size != size:
            raise LoratuiError(f"{source}: changed while it was copied: run the command again")

    atomic_write_with(target, write, hint=hint)


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 (no BOM) text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def overwrite_small_file(path: Path, data: bytes) -> None:
    """The last resort for a small file on a full disk (a job's record saying how it ended): write over the file's
    existing bytes in place, which needs no new block when the new content fits in the old file's last block,
    where a temp file + rename needs a new one. Not atomic: only for a file that is rewritten whole each time
    and read with a fallback. Raises DiskFull when even that does not fit."""
    try:
        with open(path, "r+b") as handle:
            handle.write(data)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise as_user_error(exc, path) from exc


def _target_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _remove_quietly(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


class DiskFull(LoratuiError):
    """No space left writing ``path``; ``then`` says what to run once space is free (a job knows best)."""

    def __init__(self, path: Path | str, then: str = "run the command again"):
        super().__init__(f"{path}: the disk is full: free some space, then {then}")
        self.path = Path(path)


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def as_user_error(exc: OSError, path: Path, hint: str = "") -> LoratuiError:
    """A disk error as one line naming ``path``: full disk, no permission, or what the OS said."""
    if is_disk_full(exc):
        return DiskFull(path)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return LoratuiError(f"{path}: cannot write here ({exc.strerror}): check the folder's permissions"
                            f"{f', or {hint}' if hint else ''}")
    return LoratuiError(f"{path}: cannot write: {exc.strerror or exc}")
