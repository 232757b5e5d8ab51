"""Small upright copies of pictures for the wizard's previews, kept in .loratui/thumbs/ so moving the cursor over
hundreds of large files decodes each one once. A thumbnail is named after the file's path, byte size and
modification time, so a changed file gets a new one."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image

from loratui.dataset.image_open import load_image
from loratui.fsutil import atomic_write_bytes

THUMBS_DIR = "thumbs"
# The largest preview is the zoom screen: a 200x60 terminal draws 200x120 pixels in half-cell blocks.
SIDE = 256


def thumbnail_path(path: Path, cache_dir: Path) -> Path:
    stat = path.stat()
    key = f"{path.absolute()}|{stat.st_size}|{stat.st_mtime_ns}|{SIDE}"
    return cache_dir / f"{hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()}.png"


def load_thumbnail(path: Path, cache_dir: Path | None) -> Image.Image:
    """``path`` as upright RGB no larger than :data:`SIDE` on either side, from the cache when it is there.

    Raises :class:`~loratui.dataset.image_open.UnreadableImage` (or OSError) for a file that cannot be read;
    a cache that cannot be written only costs the time of the decode."""
    path = Path(path)
    cached = thumbnail_path(path, cache_dir) if cache_dir is not None else None
    if cached is not None:
        try:
            with Image.open(cached) as image:
                return image.convert("RGB")
        except (OSError, ValueError):
            pass  # not made yet, or damaged: make it again
    image = load_image(path, min_size=(SIDE, SIDE)).image
    image.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
    if cached is not None:
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)  # speed over size: a few tens of KB each
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(cached, buffer.getvalue())
        except OSError:
            pass
    return image


MAX_CACHE_BYTES = 256 * 1024 * 1024  # some 5 000 thumbnails: every picture of a few big projects


def prune_thumbnails(cache_dir: Path, max_bytes: int = MAX_CACHE_BYTES) -> int:
    """Delete the oldest thumbnails until the folder holds at most ``max_bytes``; returns how many went.

    A thumbnail's name says nothing of the file it came from once that file changed or went, so the cache is
    kept in bounds by size; one deleted too early is only decoded again."""
    found = []
    try:
        for entry in cache_dir.glob("*.png"):
            stat = entry.stat()
            found.append((stat.st_mtime_ns, stat.st_size, entry))
    except OSError:
        return 0
    total = sum(size for _, size, _ in found)
    removed = 0
    for _, size, entry in sorted(found, key=lambda item: item[0]):
        if total <= max_bytes:
            break
        try:
            entry.unlink()
        except OSError:
            continue
        total -= size
        removed += 1
    return removed
