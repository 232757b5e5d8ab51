"""The Images step's facts per picture file (size, format, near-duplicate hash, or why it cannot be read), kept in
.loratui/scan-cache.json so reopening a project of hundreds of pictures does not decode each one again. An entry
counts only while the file has the same byte size and modification time."""

from __future__ import annotations

import json
from pathlib import Path

from loratui.dataset.image_open import ImageInfo, UnreadableImage
from loratui.dataset.image_scan import SourceEntry
from loratui.fsutil import atomic_write_text

CACHE_NAME = "scan-cache.json"
VERSION = 1

# What a decode gives: the header facts, the perceptual hash, the upright width and height; or why it failed.
Decoded = tuple[ImageInfo, int | None, int, int] | UnreadableImage


class ScanCache:
    """Loaded once per scan; :meth:`save` writes it back (atomically) when something new was decoded."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        self.changed = False
        if path is None:
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no cache yet, or a damaged one: the scan decodes everything and writes a new one
        if isinstance(data, dict) and data.get("version") == VERSION and isinstance(data.get("files"), dict):
            self.entries = data["files"]

    def get(self, entry: SourceEntry) -> Decoded | None:
        value = self.entries.get(str(entry.path))
        if not isinstance(value, list) or len(value) < 3 or value[:2] != [entry.file_size, entry.mtime_ns]:
            return None
        try:
            if value[2] == "broken":
                return UnreadableImage(entry.path, str(value[3]))
            width, height, fmt, mode, animated, hashed = value[2:8]
            return ImageInfo(int(width), int(height), str(fmt), str(mode), bool(animated)), hashed, width, height
        except (ValueError, TypeError):
            return None

    def put(self, entry: SourceEntry, decoded: Decoded) -> None:
        key = [entry.file_size, entry.mtime_ns]
        if isinstance(decoded, UnreadableImage):
            value = [*key, "broken", decoded.reason]
        else:
            info, hashed, width, height = decoded
            value = [*key, width, height, info.format, info.mode, info.animated, hashed]
        if self.entries.get(str(entry.path)) != value:
            self.entries[str(entry.path)] = value
            self.changed = True

    def save(self) -> None:
        """Write the cache, without the files that are gone. A failure (read-only project, full disk) is silent:
        the cache only saves time."""
        if self.path is None or not self.changed:
            return
        files = {name: value for name, value in self.entries.items() if Path(name).exists()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps({"version": VERSION, "files": files}, separators=(",", ":")))
        except OSError:
            return
        self.changed = False
