"""What the wizard's Crop step shows, read without writing anything: every source picture with its hand-placed
box and whether ``dataset/`` holds it up to date (prepare's own bookkeeping), the box a prepare would cut, a box
moved or resized by the user, a resolution checked by loratui.toml's own rules, and the bucket table of mode none.
"""

from __future__ import annotations

import math
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from loratui.config import Config, DatasetSettings
from loratui.config_io import config_to_dict, parse_config
from loratui.dataset.crop import MAX_UPSCALE, Box, CropPlan, PlannedPicture, plan_picture
from loratui.dataset.image_scan import scan_source
from loratui.dataset.prepare import (
    MANIFEST_NAME,
    _Manifest,
    _up_to_date,
    assign_names,
    settings_key,
)
from loratui.progress import Outcome
from loratui.project import Project

MOVE_STEP = 0.02  # arrows move the box by 2% of the picture
SIZE_STEP = 0.05  # + and - resize it by 5%


@dataclass
class CropPicture:
    """One kept source picture of a concept, as the Crop step lists it."""

    key: str  # "concept/relpath": the key of dataset.crop_boxes
    concept: str
    path: Path
    relpath: str
    manual: list[int] | None
    output: Path  # where prepare writes (or wrote) it
    up_to_date: bool
    record: dict[str, Any] | None  # prepare's record of it, when up to date

    @property
    def prepared_plan(self) -> CropPlan | None:
        """The crop prepare made, from its record (no decoding): only when the output is up to date."""
        if not self.up_to_date or not self.record:
            return None
        try:
            return CropPlan(tuple(self.record["box"]), tuple(self.record["size"]), str(self.record["method"]))
        except (KeyError, TypeError, ValueError):
            return None


def crop_pictures(project: Project, config: Config) -> list[CropPicture]:
    """Every kept picture of every concept, in prepare's order, with its state; missing source folders give none."""
    manifest = _Manifest.load(project.state_dir / MANIFEST_NAME, Outcome())
    key = settings_key(config.dataset)
    pictures = []
    for concept in config.concepts:
        source = project.source_dir(concept)
        if not source.is_dir():
            continue
        entries = scan_source(source, concept.recursive, concept.exclude)
        state = manifest.concepts.get(concept.name)
        records = state.outputs if state else {}
        names = assign_names(entries, records)
        folder = project.concept_dir(concept)
        for entry in entries:
            name = f"{concept.name}/{entry.relpath}"
            manual = config.dataset.crop_boxes.get(name)
            output = folder / names[entry.relpath]
            record = records.get(entry.relpath)
            fresh = _up_to_date(record, entry, key, manual, output)
            pictures.append(CropPicture(name, concept.name, entry.path, entry.relpath,
                                        list(manual) if manual else None, output, fresh, record if fresh else None))
    return pictures


def pending_prepare(project: Project, config: Config) -> list[str]:
    """The pictures a prepare would (re)do now: none means ``dataset/`` is up to date."""
    return [picture.key for picture in crop_pictures(project, config) if not picture.up_to_date]


def plan_for(picture: CropPicture, dataset: DatasetSettings, manual: object = None) -> PlannedPicture:
    """The crop prepare would cut (the focal search included: slow, run it off the UI thread). Raises
    :class:`~loratui.dataset.image_open.UnreadableImage` with the reason."""
    return plan_picture(picture.path, dataset, manual)


def resolution_problem(config: Config, text: str) -> str | None:
    """Why ``text`` cannot be dataset.resolution, in loratui.toml's own words; None when it can."""
    raw: Any = text.strip()
    try:
        raw = int(raw)
    except ValueError:
        pass
    data = config_to_dict(config)
    data["dataset"]["resolution"] = raw
    _, problems = parse_config(tomli_w.dumps(data), "loratui.toml")
    for problem in problems:
        if problem.key.startswith("dataset"):
            return problem.message if problem.key == "dataset.resolution" else f"{problem.key}: {problem.message}"
    return None


def parse_resolution(text: str) -> int:
    return tomllib.loads(f"v = {text.strip()}")["v"]


def smallest_side(dataset: DatasetSettings) -> int:
    """The smallest box prepare accepts (it refuses to enlarge more than MAX_UPSCALE)."""
    return max(8, math.ceil(dataset.resolution / MAX_UPSCALE))


def moved_box(box: Box, size: tuple[int, int], dx: int = 0, dy: int = 0) -> Box:
    """``box`` moved by dx, dy steps of MOVE_STEP of the picture, kept inside it."""
    width, height = size
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    left = min(max(0, left + round(dx * MOVE_STEP * width)), width - w)
    top = min(max(0, top + round(dy * MOVE_STEP * height)), height - h)
    return (left, top, left + w, top + h)


def resized_box(box: Box, size: tuple[int, int], steps: int, dataset: DatasetSettings) -> Box:
    """``box`` grown (steps > 0) or shrunk by SIZE_STEP per step around its centre, inside the picture, no smaller
    than prepare accepts, its shape kept."""
    width, height = size
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    factor = (1 + SIZE_STEP) ** steps
    fit = min(width / w, height / h)  # the largest factor that still fits
    least = smallest_side(dataset) / min(w, h)
    factor = min(max(factor, min(least, fit)), fit)
    new_w, new_h = max(1, min(width, round(w * factor))), max(1, min(height, round(h * factor)))
    cx, cy = (left + right) / 2, (top + bottom) / 2
    new_left = round(min(max(0.0, cx - new_w / 2), width - new_w))
    new_top = round(min(max(0.0, cy - new_h / 2), height - new_h))
    return (new_left, new_top, new_left + new_w, new_top + new_h)


def bucket_table(sizes: list[tuple[int, int]]) -> list[tuple[tuple[int, int], int]]:
    """How many pictures go to each output size (mode none: the buckets), the fullest first."""
    return sorted(Counter(sizes).items(), key=lambda item: (-item[1], item[0]))
