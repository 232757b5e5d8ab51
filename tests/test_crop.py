"""Crop boxes: the focal crop keeps faces (drawn and photo-like), centre and bucket sizes, hand-placed boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from picture_fixtures import BLUE, RED, close, draw_photo_face
from PIL import Image, ImageDraw

from loratui.config import DatasetSettings
from loratui.dataset.crop import (
    CropPlan,
    bucket_size,
    centre_square,
    cover_box,
    focal_square,
    kohya_buckets,
    plan_crop,
    plan_picture,
    render,
    square_around,
    validate_box,
)
from loratui.dataset.focal import Detectors, Focus, animeface_available, find_focus
from loratui.dataset.image_open import open_image
from loratui.demo.images import box_inside, build_demo_images, centre_square_crop


@pytest.fixture(scope="module")
def off_centre(tmp_path_factory):
    """The demo pictures where a centre square crop cuts the face, decoded once."""
    pictures = build_demo_images(tmp_path_factory.mktemp("demo") / "pictures")
    chosen = [(picture, open_image(picture.path)) for picture in pictures if picture.face_off_centre]
    assert len(chosen) == 7
    return chosen


def settings(**changes) -> DatasetSettings:
    dataset = DatasetSettings()
    for key, value in changes.items():
        setattr(dataset, key, value)
    return dataset


def focal_box(image: Image.Image, detectors: Detectors = Detectors()) -> tuple[tuple[int, ...], Focus]:
    focus = find_focus(image, detectors)
    return plan_crop(image.width, image.height, settings(), focus=focus).box, focus


def test_focal_crop_keeps_the_whole_face_where_a_centre_crop_cuts_it(off_centre):
    for picture, image in off_centre:
        assert not box_inside(picture.face_box, centre_square_crop(picture.width, picture.height))
        box, focus = focal_box(image)
        assert box_inside(picture.face_box, box), (picture.path.name, picture.face_box, box, focus.method)
        assert box[2] - box[0] == box[3] - box[1] == min(image.size)
        if animeface_available():  # the drawn faces are found as anime faces, not just as detail
            assert focus.method == "face-anime", picture.path.name
            [face] = focus.faces
            assert box_inside(tuple(round(v) for v in face), box)


def test_without_face_detectors_corners_and_saliency_still_keep_the_face(off_centre):
    for picture, image in off_centre:
        box, focus = focal_box(image, Detectors(anime_faces=False, photo_faces=False))
        assert focus.method == "saliency" and not focus.faces
        assert box_inside(picture.face_box, box), (picture.path.name, picture.face_box, box, focus.points)


def test_where_animeface_is_missing_the_haar_cascades_and_saliency_keep_the_face(off_centre):
    methods = set()
    for picture, image in off_centre:
        box, focus = focal_box(image, Detectors(anime_faces=False))
        methods.add(focus.method)
        assert box_inside(picture.face_box, box), (picture.path.name, picture.face_box, box, focus.method)
    assert methods <= {"face-photo", "saliency"}


def test_a_photo_face_is_found_by_the_haar_cascades_and_kept(tmp_path):
    for size, face in (((900, 1200), (300, 180, 110)), ((1600, 900), (1300, 330, 120))):
        image = draw_photo_face(*size, face)
        cx, cy, r = face
        face_box = (round(cx - r), round(cy - 1.25 * r), round(cx + r), round(cy + 1.25 * r))
        assert not box_inside(face_box, centre_square_crop(*size))
        box, focus = focal_box(image)
        assert focus.method == "face-photo", focus
        assert box_inside(face_box, box), (face_box, box)


def test_a_flat_picture_falls_back_to_the_centre():
    image = Image.new("RGB", (300, 600), BLUE)
    box, focus = focal_box(image)
    assert focus.method == "centre"
    assert box == centre_square(300, 600) == (0, 150, 300, 450)


def test_faces_that_do_not_fit_together_keep_the_first_whole():
    focus = Focus((500, 100), "face-photo", faces=((700, 40, 800, 160), (20, 40, 120, 160)))
    box = focal_square(1000, 400, focus)
    assert box[2] - box[0] == 400
    assert box_inside((700, 40, 800, 160), box)


def test_a_face_near_the_edge_pulls_the_window_and_stays_inside_the_picture():
    focus = Focus((100, 900), "face-anime", faces=((10, 950, 90, 1000),))
    box = focal_square(600, 1000, focus)
    assert box == (0, 400, 600, 1000)


def test_without_faces_a_tall_crop_keeps_the_top_of_the_detail():
    focus = Focus((200, 700), "saliency", subject_top=150.0)
    assert focal_square(400, 1200, focus)[1] == 130  # 5 % of the 400 px side above the detail


def test_centre_and_manual_boxes():
    assert plan_crop(800, 600, settings(crop="center")).box == (100, 0, 700, 600)
    assert plan_crop(800, 600, settings(crop="center")).method == "center"
    manual = plan_crop(800, 600, settings(crop="focal"), manual=(500, 100, 700, 200))
    assert manual.method == "manual" and manual.manual
    assert manual.box == (500, 50, 700, 250)  # 200x100 -> the 200 px square around its centre
    assert square_around((700, 0, 800, 10), 800, 600) == (700, 0, 800, 100)  # pushed back inside
    assert square_around((0, 0, 800, 600), 800, 600) == (100, 0, 700, 600)  # at most the short side
    none = plan_crop(800, 600, settings(crop="none"), manual=(0, 0, 400, 600))
    assert none.method == "manual" and none.box == (0, 0, 400, 600) and none.size == (384, 576)


def test_crop_boxes_from_the_config_are_checked():
    assert validate_box([10, 20, 110, 220], 300, 300) == (10, 20, 110, 220)
    assert validate_box([-50, 20, 110, 400], 300, 300) == (0, 20, 110, 300)  # trimmed to the picture
    assert validate_box([400, 20, 500, 100], 300, 300) is None  # outside
    assert validate_box([100, 20, 50, 100], 300, 300) is None  # inverted
    assert validate_box("nope", 300, 300) is None and validate_box([1, 2, 3], 300, 300) is None


@pytest.mark.parametrize("size", [(2000, 3000), (3000, 2000), (1920, 1080), (1000, 1000), (4000, 1000),
                                  (1024, 1536), (853, 1280)])
def test_bucket_sizes_keep_the_aspect_with_multiples_of_64_and_about_the_area(size):
    width, height = bucket_size(*size, settings(crop="none"))
    assert width % 64 == 0 and height % 64 == 0
    assert 0.7 * 512 * 512 <= width * height <= 512 * 512
    assert math.isclose(width / height, size[0] / size[1], rel_tol=0.2)


def test_bucket_size_matches_kohya_for_a_big_picture_and_never_enlarges_a_small_one():
    assert bucket_size(2000, 3000, settings(crop="none")) == (384, 576)
    assert bucket_size(300, 200, settings(crop="none")) == (256, 192)  # trimmed to the steps, not enlarged
    plan = plan_crop(300, 200, settings(crop="none"))
    assert plan.size == (256, 192) and not plan.upscaled and plan.box == (16, 0, 283, 200)


def test_without_no_upscale_the_nearest_kohya_bucket_is_used_and_enlarging_is_flagged():
    dataset = settings(crop="none", bucket_no_upscale=False)
    assert len(kohya_buckets(dataset)) == 17
    assert {(448, 576), (512, 512), (256, 1024), (1024, 256)} <= set(kohya_buckets(dataset))
    plan = plan_crop(300, 200, dataset)
    assert plan.size == (640, 384) and plan.upscaled and plan.upscale > 2


def test_cover_box_trims_the_rounding_remainder_evenly():
    assert cover_box((0, 0, 1000, 600), (512, 512)) == (200, 0, 800, 600)
    assert cover_box((10, 10, 110, 310), (64, 128)) == (10, 60, 110, 260)


def test_render_resizes_the_box_and_flags_enlarging():
    image = Image.new("RGB", (400, 300), BLUE)
    ImageDraw.Draw(image).rectangle((0, 0, 199, 299), fill=RED)
    plan = plan_crop(400, 300, settings(resolution=128, crop="center"))
    out = render(image, plan)
    assert out.size == (128, 128) and not plan.upscaled
    assert close(out.getpixel((10, 64)), RED) and close(out.getpixel((117, 64)), BLUE)
    half = render(image.resize((200, 150)), plan, scale=0.5)  # a draft-decoded picture gives the same crop
    assert np.abs(np.asarray(half, dtype=int) - np.asarray(out, dtype=int)).mean() < 3
    small = CropPlan((0, 0, 100, 100), (512, 512), "center")
    assert small.upscaled and small.upscale == pytest.approx(5.12)


def test_plan_picture_decodes_a_draft_and_maps_the_face_back_to_source_pixels(tmp_path):
    path = tmp_path / "photo.jpg"
    draw_photo_face(1600, 2400, (1100, 500, 200)).save(path, quality=90)
    planned = plan_picture(path, settings(resolution=256))
    assert planned.loaded.size == (1600, 2400) and planned.loaded.scale == 0.25  # decoded at 400x600
    assert planned.plan.method == "face-photo" and planned.faces
    face = planned.faces[0]
    assert abs((face[0] + face[2]) / 2 - 1100) < 80 and abs((face[1] + face[3]) / 2 - 500) < 120
    assert box_inside((900, 250, 1300, 750), planned.plan.box)
    assert planned.render().size == (256, 256)
    manual = plan_picture(path, settings(resolution=256), manual=[0, 0, 5000, 10])
    assert manual.plan.method == "manual" and manual.plan.box == (0, 0, 1600, 1600)
    outside = plan_picture(path, settings(resolution=256, crop="center"), manual=[4000, 0, 5000, 10])
    assert outside.plan.method == "center" and "not inside" in outside.notes[0]
