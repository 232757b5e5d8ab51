"""`prepare` end to end: the hostile corpus, incremental re-runs, captions, crop boxes, names, cancel, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from picture_fixtures import BLUE, GREEN, RED, Expected, build_hostile_corpus, centre_colour, close, tree_digest
from PIL import Image

from loratui.dataset.crop import square_around
from loratui.dataset.prepare import MANIFEST_NAME, prepare_project
from loratui.errors import LoratuiError
from loratui.progress import Cancelled, CancelToken
from loratui.project import Project, create_project


def make_project(root: Path, source: Path, resolution: int = 128, concept: str = "hero", **dataset) -> Project:
    project, config = create_project(root / "proj", source, concept, repeats=3)
    config.dataset.resolution = resolution
    config.dataset.min_bucket_reso = 64
    for key, value in dataset.items():
        setattr(config.dataset, key, value)
    project.save(config)
    return project


def edit(project: Project, change) -> None:
    config = project.load()
    change(config)
    project.save(config)


def noise_picture(path: Path, size=(240, 200), seed=0, fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, fmt)
    return path


def folder_of(project: Project) -> Path:
    config = project.load()
    return project.concept_dir(config.concepts[0])


# --- the hostile corpus --------------------------------------------------------------------------


def test_hostile_corpus_prepares_what_it_can_reports_every_bad_file_and_touches_no_source_byte(tmp_path):
    source = tmp_path / "src"
    expected = build_hostile_corpus(source)
    (source / "holiday.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    expected["holiday.HEIC"] = Expected(reason="not supported")
    project = make_project(tmp_path, source)
    before = tree_digest(source)

    result = prepare_project(project, workers=2)  # two worker processes

    assert tree_digest(source) == before
    outcome = result.outcome
    skipped = {note.path.name: note.message for note in outcome.skipped}
    assert set(skipped) == {name for name, want in expected.items() if want.reason}
    for name, message in skipped.items():
        assert expected[name].reason in message, (name, message)
    folder = folder_of(project)
    prepared = {image.relpath: image for image in result.images}
    assert set(prepared) == {name for name, want in expected.items() if not want.reason}
    assert outcome.done == len(prepared) and outcome.unchanged == 0
    for name, image in prepared.items():
        assert image.output.parent == folder and image.output.suffix == ".png"
        with Image.open(image.output) as picture:
            assert picture.format == "PNG" and picture.size == (128, 128) and picture.mode == "RGB"
        if expected[name].colour and name != "rotated.jpg":
            assert close(centre_colour(image.output), expected[name].colour), name
    assert prepared["rotated.jpg"].source_size == (160, 320)  # upright
    assert prepared["写真 アカリ é.png"].output.name == "写真 アカリ é.png"
    assert prepared["SHOUTING.JPG"].output.name == "SHOUTING.png"
    warnings = [(note.path.name, note.message) for note in outcome.warnings]
    assert any(name == "animated.gif" and "animated" in message for name, message in warnings)
    assert any(name == "empty caption.txt" and "empty caption" in message for name, message in warnings)
    assert any(name == "gbk caption.txt" and "could not be told for sure" in message for name, message in warnings)
    assert any(name == "bom caption.caption" and "BOM" in message for name, message in warnings)
    assert any(name == "bom caption.caption" and "lines" in message for name, message in warnings)
    # GBK is only a guess: the copy keeps the bytes, not a UTF-8 rewrite of the guess.
    assert (folder / "gbk caption.txt").read_bytes() == "红发, 蓝眼睛, smile".encode("gbk")
    assert (folder / "bom caption.txt").read_bytes() == b"blue background, solo, second line\n"
    assert not (folder / "empty caption.txt").exists()
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".txt") == ["bom caption.txt", "gbk caption.txt"]
    assert not result.duplicate_groups  # flat test pictures carry too little structure to be called copies

    again = prepare_project(project)
    assert (again.outcome.done, again.outcome.unchanged) == (0, len(prepared))
    assert {note.path.name for note in again.outcome.skipped} == set(skipped)  # still reported by name
    assert tree_digest(source) == before


# --- incremental re-runs -------------------------------------------------------------------------


@pytest.fixture
def small_project(tmp_path) -> Project:
    source = tmp_path / "src"
    for index in range(4):
        noise_picture(source / f"pic{index + 1}.png", seed=index)
    return make_project(tmp_path, source, crop="center")  # bookkeeping does not depend on the mode: the fast one


def test_rerun_redoes_only_what_changed(small_project):
    project = small_project
    source = project.source_dir(project.load().concepts[0])
    first = prepare_project(project, workers=1)
    assert (first.outcome.done, first.outcome.unchanged) == (4, 0)
    assert all(image.redone for image in first.images)
    assert (project.state_dir / MANIFEST_NAME).is_file()

    second = prepare_project(project, workers=1)
    assert (second.outcome.done, second.outcome.unchanged) == (0, 4)
    assert not any(image.redone for image in second.images)

    stat = (source / "pic2.png").stat()
    os.utime(source / "pic2.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    third = prepare_project(project, workers=1)
    assert (third.outcome.done, third.outcome.unchanged) == (1, 3)
    assert [image.relpath for image in third.images if image.redone] == ["pic2.png"]

    edit(project, lambda config: setattr(config.dataset, "resolution", 64))
    fourth = prepare_project(project, workers=1)
    assert (fourth.outcome.done, fourth.outcome.unchanged) == (4, 0)
    assert all(image.size == (64, 64) for image in fourth.images)

    (folder_of(project) / "pic3.png").unlink()  # an output deleted by hand comes back
    assert prepare_project(project, workers=1).outcome.done == 1
    assert prepare_project(project, workers=1, force=True).outcome.done == 4


def test_a_vanished_or_excluded_source_takes_its_output_and_keeps_its_caption_aside(small_project):
    project = small_project
    source = project.source_dir(project.load().concepts[0])
    prepare_project(project, workers=1)
    folder = folder_of(project)
    (folder / "pic1.txt").write_text("hero, red scarf\n", encoding="utf-8")
    (folder / "pic2.txt").write_text("hero, sitting\n", encoding="utf-8")
    moved = source.parent / "elsewhere.png"
    shutil.move(source / "pic1.png", moved)

    result = prepare_project(project, workers=1)
    assert not (folder / "pic1.png").exists() and not (folder / "pic1.txt").exists()
    assert result.removed == [folder / "pic1.png"]
    [kept] = result.moved_captions
    assert kept.is_relative_to(project.state_dir / "removed") and kept.read_text() == "hero, red scarf\n"

    shutil.move(moved, source / "pic1.png")  # it comes back: so does its caption
    back = prepare_project(project, workers=1)
    assert back.outcome.done == 1
    assert (folder / "pic1.txt").read_text() == "hero, red scarf\n" and not kept.exists()

    edit(project, lambda config: config.concepts[0].exclude.append("pic2.png"))
    excluded = prepare_project(project, workers=1)
    assert [path.name for path in excluded.removed] == ["pic2.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["pic1.png", "pic1.txt", "pic3.png", "pic4.png"]
    edit(project, lambda config: config.concepts[0].exclude.clear())
    prepare_project(project, workers=1)
    assert (folder / "pic2.txt").read_text() == "hero, sitting\n"


def test_changing_repeats_renames_the_folder_and_keeps_captions(small_project):
    project = small_project
    prepare_project(project, workers=1)
    old = folder_of(project)
    (old / "pic1.txt").write_text("hero\n", encoding="utf-8")
    edit(project, lambda config: setattr(config.concepts[0], "repeats", 8))
    result = prepare_project(project, workers=1)
    new = folder_of(project)
    assert new.name == "8_hero" and old.name == "3_hero" and not old.exists()
    assert result.renamed == [(old, new)]
    assert (result.outcome.done, result.outcome.unchanged) == (0, 4)
    assert (new / "pic1.txt").read_text() == "hero\n"


def test_a_concept_taken_out_of_the_project_leaves_the_dataset(small_project, tmp_path):
    project = small_project
    prepare_project(project, workers=1)
    folder = folder_of(project)
    (folder / "pic1.txt").write_text("hero\n", encoding="utf-8")
    other = tmp_path / "other"
    noise_picture(other / "x.png")

    def swap(config):
        config.concepts[0].name = "villain"
        config.concepts[0].source = str(other)

    edit(project, swap)
    result = prepare_project(project, workers=1)
    assert not folder.exists()
    assert len(result.removed) == 4 and len(result.moved_captions) == 1
    assert sorted(p.name for p in project.dataset_dir.iterdir()) == ["3_villain"]


def test_captions_already_in_the_dataset_are_never_overwritten(small_project):
    project = small_project
    source = project.source_dir(project.load().concepts[0])
    (source / "pic1.txt").write_text("theirs, from the source\n", encoding="utf-8")
    (source / "pic2.caption").write_text("brought along\n", encoding="utf-8")
    folder = folder_of(project)
    folder.mkdir(parents=True)
    (folder / "pic1.txt").write_text("mine, by the tagger\n", encoding="utf-8")
    prepare_project(project, workers=1)
    assert (folder / "pic1.txt").read_text() == "mine, by the tagger\n"
    assert (folder / "pic2.txt").read_text() == "brought along\n"
    (folder / "pic2.txt").write_text("edited in the dataset\n", encoding="utf-8")
    prepare_project(project, workers=1, force=True)
    assert (folder / "pic1.txt").read_text() == "mine, by the tagger\n"
    assert (folder / "pic2.txt").read_text() == "edited in the dataset\n"


@pytest.mark.parametrize("workers", [1, 2])
def test_cancel_keeps_what_was_finished_and_the_next_run_does_the_rest(small_project, workers):
    project = small_project
    token = CancelToken()

    def progress(step):
        if step.done == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        prepare_project(project, workers=workers, progress=progress, cancel=token)
    finished = sorted(p.name for p in folder_of(project).glob("*.png"))
    recorded = json.loads((project.state_dir / MANIFEST_NAME).read_text())["concepts"]["hero"]["outputs"]
    assert sorted(record["output"] for record in recorded.values()) == finished
    if workers == 1:  # with processes, pictures already under way in the other worker finish too
        assert finished == ["pic1.png"]
    rest = prepare_project(project, workers=workers)
    assert (rest.outcome.done, rest.outcome.unchanged) == (4 - len(finished), len(finished))


# --- crop boxes, sizes, names --------------------------------------------------------------------


def test_a_crop_box_from_the_config_overrides_the_automatic_crop(small_project):
    project = small_project
    prepare_project(project, workers=1)
    edit(project, lambda config: config.dataset.crop_boxes.update({"hero/pic3.png": [10, 20, 110, 180],
                                                                   "hero/pic4.png": [900, 900, 950, 950]}))
    result = prepare_project(project, workers=1)
    assert result.outcome.done == 2  # only the two pictures whose box changed
    images = {image.relpath: image for image in result.images}
    assert images["pic3.png"].method == "manual" and images["pic3.png"].manual
    assert images["pic3.png"].box == square_around((10, 20, 110, 180), 240, 200) == (0, 20, 160, 180)
    assert images["pic4.png"].method != "manual"
    assert any(note.path.name == "pic4.png" and "crop box" in note.message for note in result.outcome.warnings)


def test_enlarged_pictures_are_flagged(tmp_path):
    source = tmp_path / "src"
    noise_picture(source / "small.png", size=(100, 90))
    noise_picture(source / "big.png", size=(600, 400), seed=1)
    project = make_project(tmp_path, source, resolution=128)
    result = prepare_project(project, workers=1)
    images = {image.relpath: image for image in result.images}
    assert images["small.png"].upscaled and images["small.png"].upscale == pytest.approx(128 / 90)
    assert not images["big.png"].upscaled
    assert [note.path.name for note in result.outcome.warnings if "upscaled" in note.message] == ["small.png"]


def test_bucket_mode_keeps_the_shape_with_sides_in_steps(tmp_path):
    source = tmp_path / "src"
    noise_picture(source / "tall.jpg", size=(600, 900), fmt="JPEG")
    noise_picture(source / "wide.png", size=(1000, 500), seed=1)
    project = make_project(tmp_path, source, resolution=256, crop="none")
    result = prepare_project(project, workers=1)
    for image in result.images:
        with Image.open(image.output) as picture:
            width, height = picture.size
        assert width % 64 == 0 and height % 64 == 0 and width * height <= 256 * 256
        assert image.method == "bucket"
    # kohya's own choice for these pictures (bucket_no_upscale): the aspect ratio first, then the area
    assert {image.relpath: image.size for image in result.images} == {"tall.jpg": (192, 256), "wide.png": (256, 128)}


def test_output_names_never_collide_and_stay_stable(tmp_path):
    source = tmp_path / "src"
    for index, name in enumerate(("a.png", "a.jpg", "x/a.png", "y/a.png", "A.bmp")):
        noise_picture(source / name, seed=index)
    project = make_project(tmp_path, source)
    edit(project, lambda config: setattr(config.concepts[0], "recursive", True))
    result = prepare_project(project, workers=1)
    names = {image.relpath: image.output.name for image in result.images}
    # natural order ignores case, so A.bmp comes first and gets the plain name; names compare without case
    assert names == {"A.bmp": "A.png", "a.jpg": "a_jpg.png", "a.png": "a_png.png", "x/a.png": "x_a.png",
                     "y/a.png": "y_a.png"}
    (source / "A.bmp").unlink()
    noise_picture(source / "0.webp", seed=9, fmt="WEBP")
    again = {image.relpath: image.output.name for image in prepare_project(project, workers=1).images}
    assert again == {"0.webp": "0.png", "a.jpg": "a_jpg.png", "a.png": "a_png.png", "x/a.png": "x_a.png",
                     "y/a.png": "y_a.png"}


def test_a_missing_source_folder_is_one_line_and_nothing_is_written(tmp_path):
    source = tmp_path / "src"
    noise_picture(source / "a.png")
    project = make_project(tmp_path, source)
    shutil.rmtree(source)
    with pytest.raises(LoratuiError, match=r"concepts\[1\]\.source: .*src: no such folder") as caught:
        prepare_project(project)
    assert "\n" not in str(caught.value)
    assert not (project.state_dir / MANIFEST_NAME).exists() and not any(project.dataset_dir.iterdir())


# --- the CLI on the demo project -----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    from loratui.demo.build import build_demo_project

    return build_demo_project(tmp_path_factory.mktemp("demo") / "project").project.root


def loratui(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loratui", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_cli_prepare_and_scan_on_the_demo_project(demo_dir):
    pictures = tree_digest(demo_dir / "pictures")
    scan = loratui("scan", demo_dir)
    assert scan.returncode == 0, scan.stderr
    assert "akari: pictures  24 pictures" in scan.stdout
    assert "near-dups    none" in scan.stdout and "unreadable   none" in scan.stdout
    assert "[ok] 24 pictures (15+ needed, 20-50 ideal)" in scan.stdout

    first = loratui("prepare", demo_dir)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "24 prepared, 0 skipped, 0 warnings"
    assert any(line.startswith("Crop: ") for line in lines)
    assert "Dataset dataset/2_akari: 24 pictures, 0 with captions" in lines
    assert "Traceback" not in first.stderr
    assert len(list((demo_dir / "dataset" / "2_akari").glob("*.png"))) == 24

    second = loratui("prepare", demo_dir, "--json")
    assert second.returncode == 0, second.stderr
    data = json.loads(second.stdout)
    assert (data["done"], data["unchanged"], data["skipped"]) == (0, 24, [])
    assert {image["size"][0] for image in data["images"]} == {128}
    assert tree_digest(demo_dir / "pictures") == pictures

    scan_json = json.loads(loratui("scan", demo_dir, "--json").stdout)
    assert scan_json[0]["concept"] == "akari" and len(scan_json[0]["images"]) == 24


def test_cli_refuses_a_folder_that_is_no_project_and_a_missing_source_in_one_line(tmp_path, demo_dir):
    for command in ("prepare", "scan"):
        result = loratui(command, tmp_path)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "is not a loratui project" in result.stderr
    project = tmp_path / "copy"
    project.mkdir()
    text = (demo_dir / "loratui.toml").read_text(encoding="utf-8")
    (project / "loratui.toml").write_text(text.replace('source = "pictures"', 'source = "gone"'), encoding="utf-8")
    result = loratui("prepare", project)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "concepts[1].source" in result.stderr and "gone: no such folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_big_colour_photo_decodes_as_a_draft_and_keeps_its_colour(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    picture = Image.new("RGB", (2400, 1600), GREEN)
    picture.paste(Image.new("RGB", (800, 800), RED), (800, 400))
    picture.save(source / "photo.jpg", quality=92)
    Image.new("RGB", (300, 300), BLUE).save(source / "plain.png")
    result = prepare_project(make_project(tmp_path, source, resolution=256, crop="center"), workers=1)
    images = {image.relpath: image for image in result.images}
    assert images["photo.jpg"].box == (400, 0, 2000, 1600)
    assert close(centre_colour(images["photo.jpg"].output), RED)
    assert close(centre_colour(images["plain.png"].output), BLUE)


def test_near_duplicates_are_grouped_and_the_extra_copy_named(tmp_path):
    source = tmp_path / "src"
    original = noise_picture(source / "shot.png", size=(300, 260))
    with Image.open(original) as picture:
        picture.resize((240, 208)).save(source / "shot copy.jpg", quality=70)
    noise_picture(source / "other.png", size=(300, 260), seed=5)
    result = prepare_project(make_project(tmp_path, source, crop="center"), workers=1)
    assert [[image.relpath for image in group] for group in result.duplicate_groups] == [["shot.png",
                                                                                          "shot copy.jpg"]]
    notes = [(note.path.name, note.message) for note in result.outcome.warnings if "duplicate" in note.message]
    assert notes == [("shot copy.jpg", notes[0][1])] and "near-duplicate of shot.png" in notes[0][1]


def test_an_empty_source_says_what_to_do(tmp_path):
    source = tmp_path / "src"
    noise_picture(source / "inside" / "a.png")
    project = make_project(tmp_path, source)
    [note] = prepare_project(project, workers=1).outcome.warnings
    assert note.path == source and "set recursive = true" in note.message
    edit(project, lambda config: setattr(config.concepts[0], "recursive", True))
    assert prepare_project(project, workers=1).outcome.done == 1
