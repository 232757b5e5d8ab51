"""Crop boxes and output sizes for the crop modes (focal, center, none = buckets), hand-placed boxes, and the resize.

Boxes are ``(left, top, right, bottom)`` in pixels of the upright source picture.

A hand-placed box (``dataset.crop_boxes``) wins over the automatic one. In the square modes (focal, center) a
box that is not square becomes the square of its longer side around its centre, shifted to stay inside the
picture (so nothing the user framed is cut); in mode none it is used as drawn and then fitted to a bucket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from loratui.config import DatasetSettings
from loratui.dataset.focal import ALL_DETECTORS, ANALYSIS_SIDE, Detectors, Focus, find_focus
from loratui.dataset.image_open import LoadedImage, UnreadableImage, load_image, probe_image

Box = tuple[int, int, int, int]

# Enlarging more than this only invents blur; such pictures are skipped with the reason instead.
MAX_UPSCALE = 4.0
# Room kept around a face when the crop has it to spare, as a fraction of the face's size.
FACE_MARGIN = 0.25
# Room kept above the detail found when no face is: the top of a head usually is the top of the detail.
HEADROOM = 0.05


@dataclass(frozen=True)
class CropPlan:
    """Which part of the source becomes the prepared picture, at what size, and why there."""

    box: Box
    size: tuple[int, int]
    method: str  # "manual", a focal method (face-anime, face-photo, saliency, centre), "center" or "bucket"

    @property
    def manual(self) -> bool:
        return self.method == "manual"

    @property
    def upscale(self) -> float:
        """Output pixels per source pixel; above 1 the picture is enlarged."""
        return max(self.size[0] / box_width(self.box), self.size[1] / box_height(self.box))

    @property
    def upscaled(self) -> bool:
        return self.upscale > 1.0 + 1e-6


@dataclass
class PlannedPicture:
    """A decoded picture and where it will be cut: what the Crop screen previews and prepare writes."""

    loaded: LoadedImage
    plan: CropPlan
    faces: list[Box]  # faces found (source pixels), the most prominent first
    notes: list[str]  # conversions made and crop boxes ignored, in words

    def render(self) -> Image.Image:
        return render(self.loaded.image, self.plan, self.loaded.scale)


def plan_picture(path: Path, dataset: DatasetSettings, manual: object = None,
                 detectors: Detectors = ALL_DETECTORS) -> PlannedPicture:
    """Open a source picture and plan its crop, decoding no more pixels than the output and face search use.

    ``manual`` is the crop box from loratui.toml as written there (checked here against the picture's size).
    Raises :class:`UnreadableImage` for a broken file or one that would need enlarging beyond ``MAX_UPSCALE``.
    """
    info = probe_image(path)
    width, height = info.width, info.height
    notes = []
    box = None
    if manual is not None:
        box = validate_box(manual, width, height)
        if box is None:
            notes.append(f"crop box {manual} is not inside the {width}x{height} picture: automatic crop used")
    plan = plan_crop(width, height, dataset, manual=box)
    if plan.upscale > MAX_UPSCALE:
        smallest = math.ceil(dataset.resolution / MAX_UPSCALE) if dataset.crop != "none" else dataset.bucket_reso_steps
        raise UnreadableImage(path, f"too small: {width}x{height} would have to be enlarged {plan.upscale:.0f}x "
                                    f"(at most {MAX_UPSCALE:.0f}x: use pictures of {smallest} px or more)")
    needs_focus = dataset.crop == "focal" and box is None
    # JPEGs decode at 1/2, 1/4 or 1/8 when the output (and the face search) need no more pixels than that.
    wanted = min(1.0, plan.upscale)
    if needs_focus:
        wanted = max(wanted, min(1.0, ANALYSIS_SIDE / max(width, height)))
    loaded = load_image(path, min_size=(math.ceil(width * wanted), math.ceil(height * wanted)))
    notes.extend(loaded.notes)
    if loaded.size != (width, height):  # an orientation found only after decoding (EXIF after a PNG's pixels)
        width, height = loaded.size
        box = validate_box(manual, width, height) if manual is not None else None
        plan = plan_crop(width, height, dataset, manual=box)
    faces: list[Box] = []
    if needs_focus:
        focus = find_focus(loaded.image, detectors).scaled(1 / loaded.scale)
        plan = plan_crop(width, height, dataset, focus=focus)
        faces = [(round(f[0]), round(f[1]), round(f[2]), round(f[3])) for f in focus.faces]
    return PlannedPicture(loaded, plan, faces, notes)


def box_width(box: Box) -> int:
    return box[2] - box[0]


def box_height(box: Box) -> int:
    return box[3] - box[1]


def plan_crop(
    width: int,
    height: int,
    dataset: DatasetSettings,
    *,
    focus: Focus | None = None,
    manual: Box | None = None,
) -> CropPlan:
    """The crop of a ``width`` x ``height`` picture for the dataset settings.

    ``focus`` (in source pixels) places a focal crop; without it a focal crop is planned at the centre, which is
    enough to know its size before decoding (the box side does not depend on where it goes).
    """
    mode = dataset.crop
    if mode == "none":
        box = manual or (0, 0, width, height)
        size = bucket_size(box_width(box), box_height(box), dataset)
        return CropPlan(cover_box(box, size), size, "manual" if manual else "bucket")
    size = (dataset.resolution, dataset.resolution)
    if manual:
        return CropPlan(square_around(manual, width, height), size, "manual")
    if mode == "focal" and focus is not None:
        return CropPlan(focal_square(width, height, focus), size, focus.method)
    return CropPlan(centre_square(width, height), size, "center" if mode == "center" else "centre")


def centre_square(width: int, height: int) -> Box:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return (left, top, left + side, top + side)


def focal_square(width: int, height: int, focus: Focus) -> Box:
    """The largest square centred on the focus, inside the picture, moved just enough to keep the face whole.

    Several faces are all kept when they fit together, else the most prominent one. Without a face, a tall
    picture keeps the top of the detail found (A1111's plain centring cuts heads off portrait shots).
    """
    side = min(width, height)
    x, y = focus.point
    left = _clamp(x - side / 2, 0, width - side)
    top = _clamp(y - side / 2, 0, height - side)
    target = _face_target(focus.faces, side)
    if target is not None:
        left = _clamp(_clamp(left, target[2] - side, target[0]), 0, width - side)
        top = _clamp(_clamp(top, target[3] - side, target[1]), 0, height - side)
    elif focus.subject_top is not None and height > width:
        top = min(top, max(0.0, focus.subject_top - HEADROOM * side))
    left, top = round(left), round(top)
    return (left, top, left + side, top + side)


def _face_target(faces: Sequence[tuple[float, float, float, float]], side: int) -> tuple[float, ...] | None:
    """The region the square must contain: all faces with a margin, else fewer, else the first face bare."""
    if not faces:
        return None
    candidates = [faces, faces[:1]] if len(faces) > 1 else [faces]
    for group in candidates:
        union = (min(f[0] for f in group), min(f[1] for f in group), max(f[2] for f in group),
                 max(f[3] for f in group))
        for margin in (FACE_MARGIN, 0.0):
            pad_x = margin * (union[2] - union[0]) / len(group)
            pad_y = margin * (union[3] - union[1]) / len(group)
            padded = (union[0] - pad_x, union[1] - pad_y, union[2] + pad_x, union[3] + pad_y)
            if padded[2] - padded[0] <= side and padded[3] - padded[1] <= side:
                return padded
    return None


def square_around(box: Box, width: int, height: int) -> Box:
    """A hand-placed box made square: its longer side (at most the picture's short side), same centre, inside."""
    side = min(max(box_width(box), box_height(box)), width, height)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    left = round(_clamp(cx - side / 2, 0, width - side))
    top = round(_clamp(cy - side / 2, 0, height - side))
    return (left, top, left + side, top + side)


def validate_box(raw: object, width: int, height: int) -> Box | None:
    """A crop box from loratui.toml, trimmed to the picture; None when it is not a box inside the picture."""
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        return None
    try:
        left, top, right, bottom = (int(round(float(v))) for v in raw)
    except (TypeError, ValueError):
        return None
    left, top = max(0, left), max(0, top)
    right, bottom = min(width, right), min(height, bottom)
    if right - left < 1 or bottom - top < 1:
        return None
    return (left, top, right, bottom)


# --- buckets (crop mode none) ----------------------------------------------------------------------


def bucket_size(width: int, height: int, dataset: DatasetSettings) -> tuple[int, int]:
    """Output size for crop mode none: the aspect ratio kept, area about resolution², sides multiples of the steps.

    With ``bucket_no_upscale`` this is kohya's own choice for such a picture (shrink to the area, round one side,
    trim both to the steps), so training uses the file as it is; a smaller picture keeps its size, trimmed to the
    steps. Without it the nearest of kohya's predefined buckets is used, enlarging small pictures (flagged).
    Sides stay within min/max_bucket_reso where the picture allows.
    """
    steps = dataset.bucket_reso_steps
    max_area = dataset.resolution * dataset.resolution
    aspect = width / height
    if not dataset.bucket_no_upscale:
        buckets = kohya_buckets(dataset)
        return min(buckets, key=lambda b: (abs(b[0] / b[1] - aspect), -b[0] * b[1]))
    if width * height > max_area:
        resized = _shrink_to_area(width, height, max_area, steps)
    else:
        resized = (width, height)
    lowest = math.ceil(dataset.min_bucket_reso / steps) * steps
    highest = max(steps, dataset.max_bucket_reso // steps * steps)
    sides = []
    for side, available in zip(resized, (width, height), strict=True):
        side = side - side % steps
        side = min(max(side, lowest), highest, available - available % steps)
        sides.append(max(side, steps))
    return sides[0], sides[1]


def _shrink_to_area(width: int, height: int, max_area: int, steps: int) -> tuple[int, int]:
    """kohya's BucketManager.select_bucket (no_upscale) for a picture larger than the area."""
    aspect = width / height

    def round_to_steps(value: float) -> int:
        value = int(value + 0.5)
        return value - value % steps

    resized_width = math.sqrt(max_area * aspect)
    resized_height = max_area / resized_width
    width_rounded = max(steps, round_to_steps(resized_width))
    height_in_wr = max(steps, round_to_steps(width_rounded / aspect))
    height_rounded = max(steps, round_to_steps(resized_height))
    width_in_hr = max(steps, round_to_steps(height_rounded * aspect))
    if abs(width_rounded / height_in_wr - aspect) < abs(width_in_hr / height_rounded - aspect):
        return width_rounded, int(width_rounded / aspect + 0.5)
    return int(height_rounded * aspect + 0.5), height_rounded


def kohya_buckets(dataset: DatasetSettings) -> list[tuple[int, int]]:
    """kohya's predefined bucket list (model_util.make_bucket_resolutions) for these settings."""
    steps = dataset.bucket_reso_steps
    max_area = dataset.resolution * dataset.resolution
    lowest = dataset.min_bucket_reso // steps * steps
    highest = dataset.max_bucket_reso // steps * steps
    square = int(math.sqrt(max_area)) // steps * steps
    buckets = {(square, square)}
    for width in range(max(lowest, steps), highest + 1, steps):
        height = min(highest, max_area // width // steps * steps)
        if height >= lowest and height > 0:
            buckets.add((width, height))
            buckets.add((height, width))
    return sorted(buckets)


def cover_box(box: Box, size: tuple[int, int]) -> Box:
    """The centred part of ``box`` with the aspect ratio of ``size`` (the rounding remainder is trimmed)."""
    width, height = box_width(box), box_height(box)
    target = size[0] / size[1]
    if width / height > target:
        new_width = max(1, min(width, round(height * target)))
        left = box[0] + (width - new_width) // 2
        return (left, box[1], left + new_width, box[3])
    new_height = max(1, min(height, round(width / target)))
    top = box[1] + (height - new_height) // 2
    return (box[0], top, box[2], top + new_height)


# --- rendering -----------------------------------------------------------------------------------


def render(image: Image.Image, plan: CropPlan, scale: float = 1.0) -> Image.Image:
    """Cut the plan's box out of ``image`` (decoded at ``scale`` of the source) and resize it in one step.

    Lanczos both ways (kohya enlarges with Lanczos too); a large reduction first shrinks by whole factors,
    which is several times faster and indistinguishable at 3x the target size.
    """
    box = tuple(value * scale for value in plan.box)
    if tuple(round(v) for v in box) == (0, 0, *plan.size) and image.size == plan.size:
        return image.copy()
    return image.resize(plan.size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high))
