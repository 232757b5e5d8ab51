"""Source pictures: scanning, opening every kind of hostile file safely, perceptual hashes and the inspect report."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from picture_fixtures import BLUE, RED, build_hostile_corpus, close, tree_digest
from PIL import Image

from loratui.dataset.image_inspect import group_label, inspect
from loratui.dataset.image_open import UnreadableImage, load_image, open_image, probe_image
from loratui.dataset.image_scan import scan_source, unsupported_pictures
from loratui.dataset.near_duplicates import duplicate_groups, hash_distance, perceptual_hash
from loratui.demo.images import build_demo_images
from loratui.errors import LoratuiError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("hostile") / "src"
    return folder, build_hostile_corpus(folder)


@pytest.fixture(scope="module")
def demo_pictures(tmp_path_factory):
    return build_demo_images(tmp_path_factory.mktemp("demo") / "pictures")


def touch_picture(path: Path, colour=RED, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_scan_lists_pictures_in_natural_order_any_case_skipping_hidden_and_other_files(tmp_path):
    for name in ("img10.png", "img2.JPG", "Img1.jpeg", "b.WebP", "c.bmp", ".hidden.png", "notes.txt", "x.gif"):
        touch_picture(tmp_path / name) if not name.endswith(".txt") else (tmp_path / name).write_text("x")
    touch_picture(tmp_path / "sub" / "deep.png")
    (tmp_path / "phone.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    names = [entry.relpath for entry in scan_source(tmp_path)]
    assert names == ["b.WebP", "c.bmp", "Img1.jpeg", "img2.JPG", "img10.png", "x.gif"]  # GIF: a source, not kohya's
    assert "sub/deep.png" in [e.relpath for e in scan_source(tmp_path, recursive=True)]
    [heic] = unsupported_pictures(tmp_path)
    assert heic.path.name == "phone.HEIC" and "HEIC files are not supported" in heic.message


def test_scan_exclusions_by_path_and_glob_and_listing_them_on_request(tmp_path):
    for name in ("a.png", "b.png", "rejects/c.png", "rejects/d.png"):
        touch_picture(tmp_path / name)
    entries = scan_source(tmp_path, recursive=True, exclude=["b.png", "rejects/*"])
    assert [e.relpath for e in entries] == ["a.png"]
    every = scan_source(tmp_path, recursive=True, exclude=["b.png", "rejects/*"], include_excluded=True)
    assert [(e.relpath, e.excluded) for e in every] == [("a.png", False), ("b.png", True), ("rejects/c.png", True),
                                                        ("rejects/d.png", True)]


def test_scan_passes_over_a_loratui_project_inside_the_source(tmp_path):
    touch_picture(tmp_path / "mine.png")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "loratui.toml").write_text("")
    touch_picture(tmp_path / "proj" / "dataset" / "5_x" / "prepared.png")
    (tmp_path / "loratui.toml").write_text("")  # the source itself is a project root: skip its own folders
    touch_picture(tmp_path / "dataset" / "5_x" / "prepared.png")
    touch_picture(tmp_path / "more" / "other.png")
    assert [e.relpath for e in scan_source(tmp_path, recursive=True)] == ["mine.png", "more/other.png"]


def test_scan_of_a_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(LoratuiError, match="no such folder"):
        scan_source(tmp_path / "nope")


@pytest.mark.parametrize("name", ["truncated.jpg", "zero bytes.png", "notes.png", "bomb.png"])
def test_broken_files_raise_unreadable_with_the_reason(corpus, name):
    folder, expected = corpus
    with pytest.raises(UnreadableImage) as caught:
        open_image(folder / name)
    assert expected[name].reason in caught.value.reason
    assert caught.value.path == folder / name
    assert str(folder / name) in str(caught.value)


@pytest.mark.parametrize("name", ["cmyk.jpg", "grey16.png", "rgb16.png", "palette.png", "transparent.png",
                                  "animated.gif", "SHOUTING.JPG", "写真 アカリ é.png", "really a jpeg.png",
                                  "bom caption.webp", "empty caption.bmp"])
def test_every_readable_kind_opens_as_rgb_with_the_right_colour(corpus, name):
    folder, expected = corpus
    image = open_image(folder / name)
    assert image.mode == "RGB"
    centre = image.getpixel((image.width // 2, image.height // 2))
    assert close(centre, expected[name].colour), (name, centre)


def test_exif_orientation_is_applied(corpus):
    folder, _ = corpus
    loaded = load_image(folder / "rotated.jpg")
    width, height = loaded.image.size
    assert (width, height) == loaded.size and height == 2 * width  # stored wide, shown tall
    assert close(loaded.image.getpixel((width // 2, height // 4)), RED)  # the stored left half is now on top
    assert close(loaded.image.getpixel((width // 2, height * 3 // 4)), BLUE)
    assert probe_image(folder / "rotated.jpg").height == height


def test_sixteen_bit_grey_keeps_its_range_instead_of_turning_white(corpus):
    folder, _ = corpus
    image = open_image(folder / "grey16.png")
    left, right = image.getpixel((0, 5)), image.getpixel((image.width - 1, 5))
    assert left[0] < 10 and right[0] > 245


def test_animated_picture_gives_its_first_frame_and_says_so(corpus):
    folder, _ = corpus
    loaded = load_image(folder / "animated.gif")
    assert close(loaded.image.getpixel((3, 3)), RED)
    assert any("animated" in note for note in loaded.notes)


def test_jpeg_draft_decodes_fewer_pixels_but_reports_the_full_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (1600, 1200), RED).save(path, quality=90)
    loaded = load_image(path, min_size=(300, 200))
    assert loaded.size == (1600, 1200)
    assert loaded.image.size == (400, 300) and loaded.scale == 0.25
    assert close(loaded.image.getpixel((10, 10)), RED)


def test_opening_never_changes_the_source_folder(corpus):
    folder, expected = corpus
    before = tree_digest(folder)
    for name in expected:
        try:
            load_image(folder / name, min_size=(16, 16))
        except UnreadableImage:
            pass
    assert tree_digest(folder) == before


def test_resized_and_recompressed_copies_hash_close_and_distinct_shots_do_not(demo_pictures):
    hashes = [perceptual_hash(open_image(picture.path)) for picture in demo_pictures]
    assert duplicate_groups(hashes) == []  # 24 different shots of one drawn character: no false groups
    original = open_image(demo_pictures[4].path)
    buffer = io.BytesIO()
    original.resize((original.width * 2 // 3, original.height * 2 // 3)).save(buffer, "JPEG", quality=60)
    copy = Image.open(buffer).convert("RGB")
    assert hash_distance(perceptual_hash(original), perceptual_hash(copy)) <= 4
    assert duplicate_groups([hashes[0], perceptual_hash(copy), hashes[4], hashes[9]]) == [[1, 2]]


def test_duplicate_groups_are_transitive():
    a, b, c, far = 0, 0b1111, 0b11111111, (1 << 64) - 1
    assert duplicate_groups([a, far, b, c], max_distance=4) == [[0, 2, 3]]
    assert [group_label(i) for i in (0, 1, 25, 26, 27)] == ["A", "B", "Z", "AA", "AB"]


def test_inspect_reports_sizes_duplicates_broken_files_and_advice(tmp_path, demo_pictures):
    source = tmp_path / "src"
    source.mkdir()
    for picture in demo_pictures[:6]:
        (source / picture.path.name).write_bytes(picture.path.read_bytes())
    first = open_image(demo_pictures[0].path)
    first.resize((first.width // 2, first.height // 2)).save(source / "copy of first.jpg", quality=80)
    Image.new("RGB", (300, 200), BLUE).save(source / "small.png")  # 200 px short side at 512: 0.4x
    Image.new("RGB", (800, 900), RED).save(source / "medium.png")  # 800 at 512: 1.6x
    (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (source / "skip me.png").write_bytes(first.tobytes()[:10])
    entries = scan_source(source, exclude=["skip me.png"], include_excluded=True)
    seen = []
    report = inspect(entries, resolution=512, progress=lambda p: seen.append(p.done))
    assert seen[-1] == len(entries) - 1
    names = {image.entry.relpath: image for image in report.images}
    assert [note.path.name for note in report.broken] == ["broken.png"]
    assert [entry.relpath for entry in report.excluded] == ["skip me.png"]
    assert [im.entry.relpath for im in report.too_small] == ["copy of first.jpg", "small.png"]
    assert names["small.png"].size_status == "too-small" and names["small.png"].size_note == "small: 0.4x !"
    assert names["medium.png"].size_status == "small" and names["medium.png"].size_note == "small: 1.6x"
    assert names["demo_003.jpg"].size_status == "ok"
    groups = [[im.entry.relpath for im in group] for group in report.duplicate_groups]
    assert groups == [[demo_pictures[0].path.name, "copy of first.jpg"]]  # the bigger one first: the best
    assert names[demo_pictures[0].path.name].best_of_group
    assert not names["copy of first.jpg"].best_of_group
    levels = {advice.message.split(":")[0]: advice.level for advice in report.advice}
    assert levels["only 9 pictures"] == "warn"
    assert any("unreadable" in advice.message for advice in report.advice)
    assert any("near-duplicate" in advice.message for advice in report.advice)


def test_inspect_uses_the_area_in_bucket_mode(tmp_path):
    touch_picture(tmp_path / "wide.png", size=(1024, 256))
    [image] = inspect(scan_source(tmp_path), resolution=512, crop="none").images
    assert image.scale == pytest.approx(1.0)  # sqrt(1024 * 256) = 512
    [image] = inspect(scan_source(tmp_path), resolution=512, crop="focal").images
    assert image.scale == pytest.approx(0.5)

