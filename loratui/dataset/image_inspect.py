"""Inspecting a set of source pictures: sizes against the training size, duplicate groups, broken files, advice."""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from loratui.dataset.image_open import ImageInfo, UnreadableImage, load_image, probe_image
from loratui.dataset.image_scan import SourceEntry, scan_source, unsupported_pictures
from loratui.dataset.near_duplicates import HASH_SIDE, duplicate_groups, perceptual_hash
from loratui.progress import CancelToken, FileNote, Progress, ProgressCallback, no_progress

# The article asks for pictures at least twice the training size; below 1x they have to be enlarged.
GOOD_SCALE = 2.0
MIN_IMAGES, IDEAL_IMAGES, MANY_IMAGES = 15, (20, 50), 200

SizeStatus = Literal["ok", "small", "too-small"]
AdviceLevel = Literal["ok", "warn", "info"]


@dataclass
class ImageReport:
    """One readable picture as the Images screen shows it."""

    entry: SourceEntry
    width: int
    height: int
    format: str
    mode: str
    animated: bool
    scale: float  # the usable side (short side; for crop "none" the square root of the area) over the resolution
    hash: int | None = None
    duplicate_group: int | None = None  # index into InspectReport.duplicate_groups
    best_of_group: bool = False

    @property
    def size_status(self) -> SizeStatus:
        return size_status(self.scale)

    @property
    def size_note(self) -> str:
        """``small: 1.8x`` style note, empty when the size is fine."""
        if self.scale >= GOOD_SCALE:
            return ""
        return f"small: {self.scale:.1f}x" + (" !" if self.scale < 1 else "")


@dataclass(frozen=True)
class Advice:
    level: AdviceLevel
    message: str


@dataclass
class InspectReport:
    """Everything the Images step shows about a source folder, computed without writing anything."""

    resolution: int
    crop: str
    images: list[ImageReport]
    broken: list[FileNote]
    excluded: list[SourceEntry]
    duplicate_groups: list[list[ImageReport]]  # each group best first
    advice: list[Advice]

    @property
    def too_small(self) -> list[ImageReport]:
        return [image for image in self.images if image.scale < 1]

    @property
    def small(self) -> list[ImageReport]:
        return [image for image in self.images if 1 <= image.scale < GOOD_SCALE]


def size_status(scale: float) -> SizeStatus:
    if scale < 1:
        return "too-small"
    return "small" if scale < GOOD_SCALE else "ok"


def usable_side(width: int, height: int, crop: str) -> float:
    """The side that will be trained on: a square crop keeps the short side; crop "none" keeps the area."""
    return math.sqrt(width * height) if crop == "none" else float(min(width, height))


def inspect(
    entries: Sequence[SourceEntry],
    resolution: int = 512,
    crop: str = "focal",
    *,
    workers: int | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> InspectReport:
    """Sizes, too-small pictures, near-duplicate groups, broken files (with reasons) and the article's advice.

    Every picture is decoded once at a small draft (that is how truncated files are caught); nothing is written.
    Excluded entries are listed but not decoded.
    """
    kept = [entry for entry in entries if not entry.excluded]
    excluded = [entry for entry in entries if entry.excluded]
    images: list[ImageReport] = []
    broken: list[FileNote] = []
    total = len(kept)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        # Pillow releases the GIL while decoding, so two threads keep two cores busy.
        results = pool.map(_inspect_one, kept)
        try:
            for done, (entry, result) in enumerate(zip(kept, results, strict=True), start=1):
                if cancel:
                    cancel.check()
                if isinstance(result, UnreadableImage):
                    broken.append(FileNote(entry.path, result.reason))
                else:
                    info, hashed, width, height = result
                    scale = usable_side(width, height, crop) / resolution
                    images.append(ImageReport(entry, width, height, info.format, info.mode, info.animated, scale,
                                              hashed))
                progress(Progress("inspect", done, total, entry.relpath))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # a cancel should not wait for every queued picture
            raise
    groups = _label_duplicates(images)
    return InspectReport(resolution, crop, images, broken, excluded, groups, advise(images, broken, groups))


def inspect_source(
    folder: Path,
    recursive: bool = False,
    exclude: Sequence[str] = (),
    resolution: int = 512,
    crop: str = "focal",
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> InspectReport:
    """:func:`inspect` of a whole source folder: excluded pictures listed, unsupported formats among the broken."""
    entries = scan_source(folder, recursive, exclude, include_excluded=True)
    report = inspect(entries, resolution, crop, progress=progress, cancel=cancel)
    unsupported = unsupported_pictures(folder, recursive, exclude)
    if unsupported:
        report.broken = unsupported + report.broken
        report.advice = advise(report.images, report.broken, report.duplicate_groups)
    return report


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _inspect_one(entry: SourceEntry) -> tuple[ImageInfo, int | None, int, int] | UnreadableImage:
    try:
        info = probe_image(entry.path)
        loaded = load_image(entry.path, min_size=(HASH_SIDE * 2, HASH_SIDE * 2))
        return info, perceptual_hash(loaded.image), info.width, info.height
    except UnreadableImage as exc:
        return exc


def _label_duplicates(images: list[ImageReport]) -> list[list[ImageReport]]:
    groups = []
    for members in duplicate_groups([image.hash for image in images]):
        group = sorted((images[i] for i in members), key=lambda im: (-(im.width * im.height), -im.entry.file_size))
        for image in group:
            image.duplicate_group = len(groups)
        group[0].best_of_group = True
        groups.append(group)
    return groups


def group_label(index: int) -> str:
    """A, B, ... Z, AA, AB ...: how the wizard names near-duplicate groups."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def advise(images: list[ImageReport], broken: list[FileNote], groups: list[list[ImageReport]]) -> list[Advice]:
    """The article's checks as short lines: count, sizes, duplicates, unreadable files."""
    count = len(images)
    advice = []
    low, high = IDEAL_IMAGES
    if count < MIN_IMAGES:
        advice.append(Advice("warn", f"only {count} picture{'s' if count != 1 else ''}: {MIN_IMAGES}+ are needed, "
                                     f"{low}-{high} work best"))
    elif count < low:
        advice.append(Advice("info", f"{count} pictures ({MIN_IMAGES}+ needed, {low}-{high} ideal): a few more "
                                     "would help"))
    elif count <= MANY_IMAGES:
        advice.append(Advice("ok", f"{count} pictures ({MIN_IMAGES}+ needed, {low}-{high} ideal)"))
    else:
        advice.append(Advice("info", f"{count} pictures: a big set; use fewer repeats (1-3) and check the steps"))
    too_small = sum(1 for image in images if image.scale < 1)
    small = sum(1 for image in images if 1 <= image.scale < GOOD_SCALE)
    if too_small:
        advice.append(Advice("warn", f"{too_small} below the training size: they will be enlarged and look soft"))
    if small:
        advice.append(Advice("info", f"{small} under {GOOD_SCALE:.0f}x the training size: the guide asks for "
                                     f"{GOOD_SCALE:.0f}x"))
    extra = sum(len(group) - 1 for group in groups)
    if extra:
        advice.append(Advice("warn", f"{extra} near-duplicate{'s' if extra != 1 else ''} in {len(groups)} "
                                     f"group{'s' if len(groups) != 1 else ''}: keep the best of each"))
    if broken:
        advice.append(Advice("warn", f"{len(broken)} unreadable file{'s' if len(broken) != 1 else ''}: "
                                     "they are skipped"))
    if images:
        shorts = [min(image.width, image.height) for image in images]
        advice.append(Advice("info", f"short sides {min(shorts)}-{max(shorts)} px, median "
                                     f"{statistics.median(shorts):.0f} px"))
    advice.append(Advice("info", "clear subject, nothing over the face, varied poses and backgrounds, few near-copies"))
    return advice
