"""Atomic file writes (temp file in the same folder + rename) with disk errors turned into one-line messages."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from loratui.errors import LoratuiError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one, never half."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _as_user_error(exc, path) from exc
    try:
        # mkstemp makes 0600 files; give the new file the mode the old one had, or the usual umask default,
        # so checkpoints copied into a shared WebUI folder stay readable.
        os.chmod(tmp, _target_mode(path))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise _as_user_error(exc, path) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 (no BOM) text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


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


def _as_user_error(exc: OSError, path: Path) -> LoratuiError:
    if exc.errno == errno.ENOSPC:
        return LoratuiError(f"{path}: the disk is full: free some space and run the command again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return LoratuiError(f"{path}: cannot write here ({exc.strerror}): check the folder's permissions")
    return LoratuiError(f"{path}: cannot write: {exc.strerror or exc}")
