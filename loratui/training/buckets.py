"""kohya sd-scripts' aspect-ratio buckets: the bucket list for a resolution and where each picture goes.

Mirrors ``model_util.make_bucket_resolutions`` and ``train_util.BucketManager.select_bucket`` so that loratui's
loop batches exactly as sd-scripts would, and the estimator counts the same batches the loop runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loratui.config import DatasetSettings
from loratui.errors import LoratuiError

Size = tuple[int, int]  # (width, height) in pixels
Box = tuple[int, int, int, int]  # (left, top, right, bottom)


@dataclass(frozen=True)
class BucketSettings:
    """The dataset settings that decide buckets (kohya's resolution, min/max_bucket_reso, steps, no_upscale)."""

    resolution: int
    enable_bucket: bool = True
    min_reso: int = 256
    max_reso: int = 1024
    steps: int = 64
    no_upscale: bool = False

    @classmethod
    def from_dataset(cls, dataset: DatasetSettings) -> BucketSettings:
        return cls(dataset.resolution, dataset.enable_bucket, dataset.min_bucket_reso, dataset.max_bucket_reso,
                   dataset.bucket_reso_steps, dataset.bucket_no_upscale)

    @property
    def max_area(self) -> int:
        return self.resolution * self.resolution


@dataclass(frozen=True)
class Placement:
    """Where one picture is trained: its bucket, the size it is scaled to so it covers the bucket, and the
    centred crop (in the scaled picture's pixels) that cuts the bucket out of it."""

    bucket: Size
    resized: Size
    crop: Box
    ar_error: float  # bucket aspect ratio minus picture aspect ratio, as kohya logs it


def adjusted_bounds(settings: BucketSettings) -> tuple[int, int]:
    """kohya's min/max bucket sides: min rounded down and max rounded up to the steps, then checked against the
    resolution (sd-scripts asserts the same; here it is a message naming the setting)."""
    steps = settings.steps
    low = settings.min_reso - settings.min_reso % steps
    high = -(-settings.max_reso // steps) * steps
    if settings.resolution < low:
        raise LoratuiError(f"dataset.min_bucket_reso {settings.min_reso} is above dataset.resolution "
                           f"{settings.resolution}: lower it to {settings.resolution} or less")
    if settings.resolution > high:
        raise LoratuiError(f"dataset.max_bucket_reso {settings.max_reso} is below dataset.resolution "
                           f"{settings.resolution}: raise it to {settings.resolution} or more")
    return low, high


def make_bucket_resolutions(resolution: int, min_reso: int, max_reso: int, steps: int) -> list[Size]:
    """The predefined buckets, sorted: the largest square within resolution², then for each width from min to
    max in steps, the tallest height (a multiple of steps, at most max) keeping the area within resolution²,
    with its transpose."""
    max_area = resolution * resolution
    square = int(math.sqrt(max_area) // steps) * steps
    buckets = {(square, square)}
    width = min_reso
    while width <= max_reso:
        height = min(max_reso, int((max_area // width) // steps) * steps)
        if height >= min_reso:
            buckets.add((width, height))
            buckets.add((height, width))
        width += steps
    return sorted(buckets)


class BucketAssigner:
    """Assigns pictures to buckets for one set of settings; build it once per dataset."""

    def __init__(self, settings: BucketSettings):
        self.settings = settings
        self.buckets: list[Size] = []
        if settings.enable_bucket:
            low, high = adjusted_bounds(settings)
            if not settings.no_upscale:
                self.buckets = make_bucket_resolutions(settings.resolution, low, high, settings.steps)
        self._bucket_set = set(self.buckets)
        self._ratios = [w / h for w, h in self.buckets]

    def place(self, width: int, height: int) -> Placement:
        """The bucket of a ``width`` x ``height`` picture and how it is scaled and cropped into it."""
        if width <= 0 or height <= 0:
            raise ValueError(f"picture size must be positive, not {width}x{height}")
        if not self.settings.enable_bucket:
            side = self.settings.resolution
            return _placement((side, side), _cover((width, height), (side, side)), width / height)
        if self.settings.no_upscale:
            resized = self._shrink_only(width, height)
            steps = self.settings.steps
            bucket = (resized[0] - resized[0] % steps, resized[1] - resized[1] % steps)
            if bucket[0] == 0 or bucket[1] == 0:
                raise LoratuiError(f"a {width}x{height} picture is narrower than dataset.bucket_reso_steps "
                                   f"({steps} px): leave it out or prepare the dataset again")
            return _placement(bucket, resized, width / height)
        return self._predefined(width, height)

    def _predefined(self, width: int, height: int) -> Placement:
        aspect = width / height
        bucket = (width, height)
        if bucket not in self._bucket_set:
            # Nearest aspect ratio; ties go to the first (smallest) bucket, as numpy's argmin does in kohya.
            errors = [abs(ratio - aspect) for ratio in self._ratios]
            bucket = self.buckets[errors.index(min(errors))]
        return _placement(bucket, _cover((width, height), bucket), aspect)

    def _shrink_only(self, width: int, height: int) -> Size:
        """kohya's no_upscale size: a picture above the area shrinks (aspect kept, one side on the steps)."""
        max_area = self.settings.max_area
        if width * height <= max_area:
            return (width, height)
        aspect = width / height
        resized_width = math.sqrt(max_area * aspect)
        resized_height = max_area / resized_width
        width_rounded = self._round(resized_width)
        height_in_wr = self._round(width_rounded / aspect)
        height_rounded = self._round(resized_height)
        width_in_hr = self._round(height_rounded * aspect)
        # kohya divides by these; a sliver picture can round a side to 0, and then the other rounding wins.
        error_w = abs(width_rounded / height_in_wr - aspect) if height_in_wr else math.inf
        error_h = abs(width_in_hr / height_rounded - aspect) if height_rounded else math.inf
        if error_w < error_h:
            return (width_rounded, int(width_rounded / aspect + 0.5))
        return (int(height_rounded * aspect + 0.5), height_rounded)

    def _round(self, value: float) -> int:
        rounded = int(value + 0.5)
        return rounded - rounded % self.settings.steps


def _cover(size: Size, bucket: Size) -> Size:
    """The picture scaled so it covers the bucket (kohya: fit the side whose ratio is tighter)."""
    width, height = size
    if width / height > bucket[0] / bucket[1]:  # wider than the bucket: match heights
        scale = bucket[1] / height
    else:
        scale = bucket[0] / width
    return (int(width * scale + 0.5), int(height * scale + 0.5))


def _placement(bucket: Size, resized: Size, aspect: float) -> Placement:
    return Placement(bucket, resized, centre_crop(resized, bucket), bucket[0] / bucket[1] - aspect)


def centre_crop(resized: Size, bucket: Size) -> Box:
    """The centred ``bucket``-sized box of a picture scaled to ``resized`` (kohya's trim without random_crop)."""
    left = max(0, (resized[0] - bucket[0]) // 2)
    top = max(0, (resized[1] - bucket[1]) // 2)
    return (left, top, left + bucket[0], top + bucket[1])
