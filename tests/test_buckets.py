"""kohya's aspect-ratio buckets: the predefined list, nearest-aspect assignment, cover + centre crop, no_upscale."""

from __future__ import annotations

import random

import pytest

from loratui.config import DatasetSettings
from loratui.errors import LoratuiError
from loratui.training.buckets import BucketAssigner, BucketSettings, centre_crop, make_bucket_resolutions

# Worked out by hand from make_bucket_resolutions for 512 px, min 256, max 1024, steps 64: for each width w the
# height is min(1024, floor(512*512 / w / 64) * 64), kept when >= 256, plus its transpose, plus 512x512.
KOHYA_512 = sorted({
    (256, 1024), (1024, 256), (320, 768), (768, 320), (384, 640), (640, 384), (448, 576), (576, 448),
    (512, 512), (704, 320), (320, 704), (832, 256), (256, 832), (896, 256), (256, 896), (960, 256), (256, 960),
})


def brute_force_buckets(resolution: int, low: int, high: int, steps: int) -> set[tuple[int, int]]:
    """The same list by another route: for every side on the grid, the longest other side whose area fits."""
    area = resolution * resolution
    grid = range(low, high + 1, steps)
    found = {(resolution // steps * steps,) * 2}
    for width in grid:
        fitting = [h for h in range(steps, high + 1, steps) if width * h <= area]
        if fitting and max(fitting) >= low:
            found |= {(width, max(fitting)), (max(fitting), width)}
    return found


def assigner(resolution=512, *, no_upscale=False, enable=True, low=256, high=1024, steps=64) -> BucketAssigner:
    return BucketAssigner(BucketSettings(resolution, enable, low, high, steps, no_upscale))


def test_the_512_list_is_kohyas():
    assert make_bucket_resolutions(512, 256, 1024, 64) == KOHYA_512
    assert len(KOHYA_512) == 17
    for member in [(512, 512), (448, 576), (576, 448), (384, 640), (320, 768), (256, 1024)]:
        assert member in KOHYA_512


@pytest.mark.parametrize(("resolution", "low", "high", "steps", "count"),
                         [(1024, 256, 2048, 64, 41), (1024, 256, 1024, 64, 25), (768, 256, 1024, 64, None),
                          (1024, 512, 2048, 32, None)])
def test_lists_for_other_settings_match_an_independent_derivation(resolution, low, high, steps, count):
    buckets = make_bucket_resolutions(resolution, low, high, steps)
    assert set(buckets) == brute_force_buckets(resolution, low, high, steps)
    assert buckets == sorted(buckets)
    assert all(w * h <= resolution * resolution and w % steps == 0 == h % steps for w, h in buckets)
    if count is not None:  # the counts kohya.md records
        assert len(buckets) == count
    if (resolution, high) == (1024, 2048):
        assert {(832, 1216), (896, 1152), (960, 1088), (1024, 1024), (1152, 896), (1216, 832)} <= set(buckets)


def test_the_assigner_uses_the_settings_of_the_dataset_section():
    dataset = DatasetSettings(resolution=512, min_bucket_reso=300, max_bucket_reso=1000, bucket_no_upscale=False)
    # kohya rounds min down and max up to the steps: 300 -> 256, 1000 -> 1024
    assert BucketAssigner(BucketSettings.from_dataset(dataset)).buckets == KOHYA_512


def test_a_max_below_the_resolution_is_refused_with_the_setting_named():
    with pytest.raises(LoratuiError, match=r"dataset\.max_bucket_reso 512 is below dataset\.resolution 768"):
        assigner(768, high=512)
    with pytest.raises(LoratuiError, match=r"dataset\.min_bucket_reso 640 is above dataset\.resolution 512"):
        assigner(512, low=640)


def test_nearest_aspect_bucket_scaled_to_cover_and_centre_cropped():
    # 2:3 (0.667) is nearer 384x640 (0.6) than 448x576 (0.778); kohya.md's "lands in (448,576)" does not follow
    # from the code it quotes. The picture is taller than the bucket's ratio allows, so heights are matched.
    placed = assigner().place(512, 768)
    assert placed.bucket == (384, 640)
    assert placed.resized == (427, 640)  # 512 x 640/768 = 426.7, rounded half up
    assert placed.crop == (21, 0, 405, 640)  # (427 - 384) // 2 trimmed left
    tall = assigner().place(700, 1000)  # 0.7: 448x576 (0.778) beats 384x640 (0.6); widths matched
    assert (tall.bucket, tall.resized, tall.crop) == ((448, 576), (448, 640), (0, 32, 448, 608))
    wide = assigner().place(1000, 500)  # aspect 2.0: 704x320 (2.2) is nearer than 640x384 (1.67)
    assert (wide.bucket, wide.resized, wide.crop) == ((704, 320), (704, 352), (0, 16, 704, 336))
    assert wide.ar_error == pytest.approx(704 / 320 - 2.0)
    square = assigner().place(1000, 1000)
    assert (square.bucket, square.resized, square.crop) == ((512, 512), (512, 512), (0, 0, 512, 512))


def test_a_picture_already_of_a_bucket_size_keeps_it():
    assert assigner().place(320, 704).bucket == (320, 704)
    assert assigner().place(320, 704).resized == (320, 704)


def test_every_placement_covers_its_bucket():
    rng = random.Random(5)
    buckets = assigner()
    for _ in range(300):
        width, height = rng.randint(64, 3000), rng.randint(64, 3000)
        placed = buckets.place(width, height)
        assert placed.bucket in KOHYA_512
        assert placed.resized[0] >= placed.bucket[0] and placed.resized[1] >= placed.bucket[1]
        left, top, right, bottom = placed.crop
        assert (right - left, bottom - top) == placed.bucket
        assert right <= placed.resized[0] and bottom <= placed.resized[1]
        nearest = min(abs(w / h - width / height) for w, h in KOHYA_512)
        assert abs(placed.ar_error) == pytest.approx(nearest)


def test_no_upscale_keeps_a_small_picture_and_trims_it_to_the_steps():
    placed = assigner(no_upscale=True).place(300, 200)
    assert placed.bucket == (256, 192)
    assert placed.resized == (300, 200)  # never enlarged
    assert placed.crop == (22, 4, 278, 196)


def test_no_upscale_shrinks_a_big_picture_to_the_area():
    # 1200x900 (4:3): rounding the height side to 384 keeps 4:3 exactly (512x384); the width side would give 3:2
    placed = assigner(no_upscale=True).place(1200, 900)
    assert (placed.bucket, placed.resized) == ((512, 384), (512, 384))
    # 2000x1000: 640x320 keeps 2:1 exactly
    assert assigner(no_upscale=True).place(2000, 1000).bucket == (640, 320)


def test_no_upscale_ignores_min_and_max_bucket_reso_as_kohya_does():
    # aspect 10: sqrt(512² x 10) = 1619 wide; rounding the height to 128 gives 1280 x 128, past max 1024
    assert assigner(no_upscale=True).place(2000, 200).bucket == (1280, 128)


def test_no_upscale_buckets_never_exceed_the_area():
    rng = random.Random(7)
    buckets = assigner(no_upscale=True)
    for _ in range(300):
        width, height = rng.randint(64, 4000), rng.randint(64, 4000)
        placed = buckets.place(width, height)
        assert placed.bucket[0] * placed.bucket[1] <= 512 * 512
        assert placed.bucket[0] % 64 == 0 == placed.bucket[1] % 64
        assert placed.bucket[0] <= placed.resized[0] <= width and placed.bucket[1] <= placed.resized[1] <= height


def test_without_buckets_every_picture_is_a_square_of_the_resolution():
    placed = assigner(enable=False).place(512, 768)
    assert (placed.bucket, placed.resized, placed.crop) == ((512, 512), (512, 768), (0, 128, 512, 640))


def test_a_picture_narrower_than_one_step_is_refused_in_no_upscale():
    with pytest.raises(LoratuiError, match="narrower than dataset.bucket_reso_steps"):
        assigner(no_upscale=True).place(40, 500)


def test_centre_crop():
    assert centre_crop((700, 512), (512, 512)) == (94, 0, 606, 512)
