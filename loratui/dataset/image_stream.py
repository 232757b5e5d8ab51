"""The Images step's scan, one picture at a time: the same facts as :func:`image_inspect.inspect`, handed over
as each file is decoded (so a screen can show rows as they are found), then the near-duplicate groups and the
article's advice for the pictures that are kept. Excluded pictures are decoded too: the screen shows their size,
and including one again needs no rescan. Nothing is written."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from loratui.dataset.image_inspect import (
    ImageReport,
    _inspect_one,
    _label_duplicates,
    advise,
    default_workers,
    usable_side,
)
from loratui.dataset.image_open import UnreadableImage
from loratui.dataset.image_scan import SourceEntry
from loratui.dataset.scan_cache import ScanCache
from loratui.progress import CancelToken, FileNote

Found = ImageReport | FileNote  # a readable picture, or an unreadable file with the reason


def inspect_each(
    entries: Sequence[SourceEntry],
    resolution: int = 512,
    crop: str = "focal",
    *,
    workers: int | None = None,
    cancel: CancelToken | None = None,
    cache: ScanCache | None = None,
) -> Iterator[tuple[SourceEntry, Found]]:
    """Each entry (excluded ones too) with its :class:`ImageReport` or, for a file that cannot be read, a
    :class:`FileNote` with the reason; in the order of ``entries``, each as soon as it is decoded. With a
    ``cache``, unchanged files are not decoded again and the new facts are put in it (the caller saves it)."""
    cached = {id(entry): cache.get(entry) for entry in entries} if cache is not None else {}
    missing = [entry for entry in entries if cached.get(id(entry)) is None]
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        # the decode ignores the excluded flag: it is the screen's to show
        decoded = pool.map(_inspect_one, [replace(entry, excluded=False) for entry in missing])
        try:
            for entry in entries:
                result = cached.get(id(entry))
                if result is None:
                    result = next(decoded)
                    if cache is not None:
                        cache.put(entry, result)
                if cancel:
                    cancel.check()
                if isinstance(result, UnreadableImage):
                    yield entry, FileNote(entry.path, result.reason)
                else:
                    info, hashed, width, height = result
                    scale = usable_side(width, height, crop) / resolution
                    yield entry, ImageReport(entry, width, height, info.format, info.mode, info.animated, scale,
                                             hashed)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def label_duplicates(images: list[ImageReport]) -> list[list[ImageReport]]:
    """Near-duplicate groups of ``images``, best first (the largest), as :func:`image_inspect.inspect` labels them:
    sets ``duplicate_group`` and ``best_of_group`` on each member."""
    for image in images:
        image.duplicate_group, image.best_of_group = None, False
    return _label_duplicates(images)


def advice_for_kept(images: list[ImageReport], broken: list[FileNote], groups: list[list[ImageReport]],
                    left_out: set[str]) -> list:
    """The article's checks counted over the kept pictures only (what prepare will use)."""
    kept = [image for image in images if image.entry.relpath not in left_out]
    kept_groups = [members for group in groups
                   if len(members := [image for image in group if image.entry.relpath not in left_out]) > 1]
    return advise(kept, broken, kept_groups)
