"""The one reader of a .safetensors file's header (8-byte little-endian length, then JSON); stdlib only, no torch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from loratui.errors import LoratuiError

# A header lists a few thousand tensors (a few MB at most); a length far beyond that is not a header.
MAX_HEADER_BYTES = 100 * 1024 * 1024
_LENGTH_BYTES = 8
_INCOMPLETE = "is it complete?"


class SafetensorsHeaderError(LoratuiError):
    """A file that is not a .safetensors file; `reason` is the short cause, for callers that word it their way."""

    def __init__(self, path: str | os.PathLike[str], reason: str, hint: str = "") -> None:
        super().__init__(f"{path}: not a .safetensors file ({reason})" + (f"; {hint}" if hint else ""))
        self.path = path
        self.reason = reason


def read_safetensors_header(
    source: str | os.PathLike[str] | BinaryIO, name: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file (a path, or a seekable binary handle) and where its data starts.

    No tensor is read. `name` is the file named in errors (default: the path, or the handle's `name`). A file
    that is not safetensors raises `SafetensorsHeaderError`; a path that cannot be opened a one-line
    `LoratuiError`; a handle's read errors (`OSError`) are left to its owner.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        shown = path if name is None else name
        try:
            with path.open("rb") as handle:
                return _read(handle, shown)
        except FileNotFoundError:
            raise LoratuiError(f"{shown}: no such file") from None
        except IsADirectoryError:
            raise LoratuiError(f"{shown}: is a folder, not a .safetensors file") from None
        except OSError as exc:
            raise LoratuiError(f"{shown}: cannot be read: {exc.strerror or exc}") from None
    return _read(source, name if name is not None else getattr(source, "name", "<safetensors data>"))


def _read(handle: BinaryIO, name: str | os.PathLike[str]) -> tuple[dict[str, Any], int]:
    handle.seek(0, os.SEEK_END)
    file_size = handle.tell()
    handle.seek(0)
    prefix = handle.read(_LENGTH_BYTES)
    if len(prefix) < _LENGTH_BYTES:
        raise SafetensorsHeaderError(name, f"too short: {file_size} bytes, no header length", _INCOMPLETE)
    length = int.from_bytes(prefix, "little")
    if length > MAX_HEADER_BYTES:
        limit = MAX_HEADER_BYTES >> 20
        raise SafetensorsHeaderError(name, f"header length {length:,} bytes is over {limit} MiB, unreasonably big")
    if length > file_size - _LENGTH_BYTES:
        raise SafetensorsHeaderError(name, f"header length {length:,} bytes is larger than the file", _INCOMPLETE)
    raw = handle.read(length)
    if len(raw) < length:  # the file shrank while being read
        raise SafetensorsHeaderError(name, "header cut short", _INCOMPLETE)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SafetensorsHeaderError(name, "header is not JSON", _INCOMPLETE) from None
    if not isinstance(header, dict):
        raise SafetensorsHeaderError(name, f"header is a JSON {type(header).__name__}, not an object")
    return header, _LENGTH_BYTES + length
