"""The WD14 tagger engine and `loratui tag`, on the tiny offline tagger (v3 and v2 layouts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loratui.config import TaggingSettings
from loratui.dataset import caption_backup
from loratui.dataset.tagger import Labels, Tagger, choose_tags, format_tag, mcut_threshold, tag_dataset, tag_images
from loratui.dataset.tagger_input import draft_size, open_upright, preprocess_exact, preprocess_file
from loratui.dataset.tagger_models import KNOWN_MODELS, resolve_model
from loratui.demo.images import CHARACTER
from loratui.demo.tagger_model import TAGS, build_tiny_tagger, reference_probabilities
from loratui.errors import LoratuiError
from loratui.progress import Cancelled, CancelToken
from loratui.project import create_project

SIDE = 448
BLUE, WHITE, BLACK = (0, 0, 255), (255, 255, 255), (0, 0, 0)


# --- fixtures and helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("taggers")
    return {layout: build_tiny_tagger(root / layout, layout=layout) for layout in ("v3", "v2")}


@pytest.fixture(scope="module")
def tagger(model_dirs: dict[str, Path]) -> Tagger:
    return Tagger.load(resolve_model(str(model_dirs["v3"])))


@pytest.fixture(scope="module")
def tagger_v2(model_dirs: dict[str, Path]) -> Tagger:
    return Tagger.load(resolve_model(str(model_dirs["v2"])))


def save(image: Image.Image, path: Path, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **params)
    return path


def solid(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> Path:
    return save(Image.new("RGB", size, colour), path)


def swatch() -> Image.Image:
    """The demo character's colours on white: red hair band, face with blue eyes, yellow shirt band."""
    image = Image.new("RGB", (256, 256), WHITE)
    image.paste(CHARACTER.hair, (64, 64, 192, 96))
    image.paste(CHARACTER.skin, (64, 96, 192, 128))
    image.paste(CHARACTER.iris, (88, 104, 104, 120))
    image.paste(CHARACTER.shirt, (64, 128, 192, 192))
    return image


def bgr_batch(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)[None, :, :, ::-1].copy()


def photo_like(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 255 / (width + height)], -1)
    base[(xx - width / 2) ** 2 + (yy - height / 3) ** 2 < (width / 5) ** 2] = CHARACTER.hair
    noisy = base + rng.normal(0, 5, size=base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def tags_of(tagger: Tagger, path: Path, **settings) -> list[str]:
    result = tag_images([path], tagger, TaggingSettings(**settings))
    assert not result.outcome.skipped, result.outcome.skipped
    return result.images[0].tags(settings.get("write_rating", False))


def make_project(tmp_path: Path, model_dir: Path, pictures: dict[str, Image.Image], **tagging):
    (tmp_path / "source").mkdir()
    project, config = create_project(tmp_path / "proj", tmp_path / "source", "akari", trigger="akari")
    config.tagging.model = str(model_dir)
    for key, value in tagging.items():
        setattr(config.tagging, key, value)
    project.save(config)
    folder = project.concept_dir(config.concepts[0])
    for name, image in pictures.items():
        save(image, folder / name)
    return project, config, folder


# --- the model: signature, files, errors ---------------------------------------------------------------------


def test_signature_is_read_from_the_session(tagger: Tagger, tagger_v2: Tagger):
    v3, v2 = tagger.signature, tagger_v2.signature
    assert (v3.input_name, v3.output_name, v3.side, v3.fixed_batch, v3.outputs) == ("input", "output", 448, None,
                                                                                      len(TAGS))
    assert (v2.input_name, v2.output_name, v2.side, v2.fixed_batch) == ("input_1:0", "predictions_sigmoid", 448, 1)
    assert tagger.batch_size_for(8) == 8 and tagger_v2.batch_size_for(8) == 1
    assert tagger.labels.names[:4] == ("general", "sensitive", "questionable", "explicit")
    assert tagger.device in ("CPU", "CUDA")


def test_side_comes_from_the_graph(tmp_path: Path):
    small = Tagger.load(resolve_model(str(build_tiny_tagger(tmp_path / "t", side=64))))
    assert small.side == 64
    assert tags_of(small, solid(tmp_path / "b.png", BLUE, (300, 300)))[:0] == []
    assert preprocess_file(tmp_path / "b.png", small.side).shape == (64, 64, 3)


def test_cuda_is_used_or_its_absence_is_reported(model_dirs: dict[str, Path]):
    forced = Tagger.load(resolve_model(str(model_dirs["v3"])), gpu=True)
    if "CUDAExecutionProvider" in forced.providers:
        assert forced.device == "CUDA" and not forced.warnings
    else:
        assert forced.device == "CPU"
        assert len(forced.warnings) == 1 and "CUDA" in forced.warnings[0] and "CPU" in forced.warnings[0]
    assert not Tagger.load(resolve_model(str(model_dirs["v3"])), gpu=False).warnings


def test_a_relative_folder_is_local_even_when_it_looks_like_a_hub_id(tmp_path: Path, model_dirs):
    build_tiny_tagger(tmp_path / "models" / "tagger")
    files = resolve_model("models/tagger", tmp_path)
    assert files.model == tmp_path / "models" / "tagger" / "model.onnx"
    assert resolve_model(str(files.model)).tags == files.tags  # model.onnx itself works too


def one_line_error(call) -> str:
    with pytest.raises(LoratuiError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_folder_csv_or_model_are_one_line_errors(tmp_path: Path):
    assert "no such folder" in one_line_error(lambda: resolve_model("./nowhere", tmp_path))
    build_tiny_tagger(tmp_path / "no-csv").joinpath("selected_tags.csv").unlink()
    assert "selected_tags.csv: not found" in one_line_error(lambda: resolve_model(str(tmp_path / "no-csv")))
    build_tiny_tagger(tmp_path / "no-model").joinpath("model.onnx").unlink()
    assert "model.onnx: not found" in one_line_error(lambda: resolve_model(str(tmp_path / "no-model")))
    assert "empty" in one_line_error(lambda: resolve_model("  "))


def test_a_csv_with_the_wrong_row_count_names_the_file(tmp_path: Path):
    folder = build_tiny_tagger(tmp_path / "short")
    csv_file = folder / "selected_tags.csv"
    csv_file.write_text("".join(csv_file.read_text().splitlines(keepends=True)[:-1]))
    message = one_line_error(lambda: Tagger.load(resolve_model(str(folder))))
    assert str(csv_file) in message and f"{len(TAGS) - 1} tags" in message and "same repo" in message


def test_a_damaged_csv_or_model_names_the_file(tmp_path: Path):
    folder = build_tiny_tagger(tmp_path / "bad-csv")
    (folder / "selected_tags.csv").write_text("id;label\n1;cat\n")
    assert "not a WD14 selected_tags.csv" in one_line_error(lambda: Tagger.load(resolve_model(str(folder))))
    (folder / "selected_tags.csv").write_text("tag_id,name,category,count\n1,cat,general,5\n")
    assert "selected_tags.csv:2: category 'general'" in one_line_error(lambda: Tagger.load(resolve_model(str(folder))))
    folder = build_tiny_tagger(tmp_path / "bad-model")
    (folder / "model.onnx").write_bytes(b"this is not a graph")
    message = one_line_error(lambda: Tagger.load(resolve_model(str(folder))))
    assert message.startswith(f"{folder / 'model.onnx'}: cannot be loaded as an ONNX model")


def test_without_onnxruntime_the_tagger_says_what_to_install(model_dirs, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` sees when it is not installed
    message = one_line_error(lambda: Tagger.load(resolve_model(str(model_dirs["v3"]))))
    assert message.startswith("the tagger needs onnxruntime, which is not installed: run scripts/setup")
    assert "loratui[cpu]" in message


def test_a_hub_id_offline_says_how_to_use_a_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = one_line_error(lambda: resolve_model("loratui-tests/no-such-tagger", tmp_path))
    assert "HF_HUB_OFFLINE" in message and "folder" in message and "--model" in message
    assert "https://huggingface.co/loratui-tests/no-such-tagger" in message


def fake_hub(monkeypatch: pytest.MonkeyPatch, serve) -> list[tuple]:
    """Replace the hub client: nothing is cached, and ``serve(repo, filename)`` answers downloads."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    calls = []

    def download(repo, filename, *, revision=None, local_files_only=False, **_):
        calls.append((repo, filename, revision, local_files_only))
        if local_files_only:
            raise LocalEntryNotFoundError("not in the cache")
        return str(serve(repo, filename))

    import loratui.dataset.tagger_models as tagger_models

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(tagger_models, "_host_resolves", lambda endpoint: True)  # the fake hub is "online"
    return calls


def test_a_hub_id_is_fetched_once_then_read_from_the_cache(tmp_path, model_dirs, monkeypatch):
    calls = fake_hub(monkeypatch, lambda repo, filename: model_dirs["v3"] / filename)
    files = resolve_model("SmilingWolf/wd-v1-4-convnextv2-tagger-v2@v2.0", tmp_path)
    assert (files.model, files.tags) == (model_dirs["v3"] / "model.onnx", model_dirs["v3"] / "selected_tags.csv")
    repo = "SmilingWolf/wd-v1-4-convnextv2-tagger-v2"
    assert calls == [(repo, "selected_tags.csv", "v2.0", True), (repo, "selected_tags.csv", "v2.0", False),
                     (repo, "model.onnx", "v2.0", True), (repo, "model.onnx", "v2.0", False)]
    assert Tagger.load(files).signature.side == SIDE


def test_a_missing_hub_repo_is_a_one_line_error(tmp_path, monkeypatch):
    from huggingface_hub.errors import RepositoryNotFoundError

    def serve(repo, filename):
        missing = RepositoryNotFoundError.__new__(RepositoryNotFoundError)
        Exception.__init__(missing, "404 Client Error")
        raise missing

    fake_hub(monkeypatch, serve)
    message = one_line_error(lambda: resolve_model("someone/not-a-tagger", tmp_path))
    assert message.startswith("someone/not-a-tagger: no such model on the hub") and "folder" in message


def test_known_models_cover_both_families_and_the_default():
    repos = [m.repo for m in KNOWN_MODELS]
    assert "SmilingWolf/wd-swinv2-tagger-v3" in repos and len(set(repos)) == len(repos)
    assert {m.family for m in KNOWN_MODELS} == {"v2", "v3"}
    assert all(m.tags == (10861 if m.family == "v3" else 9083) for m in KNOWN_MODELS)


# --- preprocessing ----------------------------------------------------------------------------------------------


def test_known_colours_give_their_tags_and_bgr_order_is_checked(tagger: Tagger, tmp_path: Path):
    blue = tags_of(tagger, solid(tmp_path / "blue.png", BLUE))
    assert blue[0] == "aoi (loratui)"  # characters first
    assert {"blue theme", "blue sky", "outdoors", "1girl"} <= set(blue)
    assert not {"red hair", "akari (loratui)"} & set(blue)  # what a missing RGB->BGR swap would give
    black = tags_of(tagger, solid(tmp_path / "black.png", BLACK))
    assert {"night", "star (symbol)"} <= set(black) and "white background" not in black

    picture = save(swatch(), tmp_path / "swatch.png")
    scores = tagger.probabilities(preprocess_file(picture, SIDE)[None])[0]
    expected = reference_probabilities(preprocess_exact(swatch(), SIDE)[None])[0]
    as_rgb = reference_probabilities(preprocess_exact(swatch(), SIDE)[None][..., ::-1].copy())[0]
    np.testing.assert_allclose(scores, expected, atol=2e-3)
    assert np.abs(scores - as_rgb).max() > 0.5
    assert {"akari (loratui)", "red hair", "yellow shirt", "blue eyes"} <= set(tags_of(tagger, picture))


def test_a_wide_picture_is_padded_with_white_to_a_centred_square(tagger: Tagger, tmp_path: Path):
    strip = Image.new("RGB", (448, 112), CHARACTER.hair)
    path = save(strip, tmp_path / "strip.png")
    expected = Image.new("RGB", (448, 448), WHITE)
    expected.paste(strip, (0, 168))
    array = preprocess_file(path, SIDE)
    np.testing.assert_array_equal(array, bgr_batch(expected)[0])
    scores = tagger.probabilities(array[None])[0]
    np.testing.assert_allclose(scores, reference_probabilities(bgr_batch(expected))[0], atol=2e-3)
    tags = tags_of(tagger, path)
    assert "white background" in tags and "red hair" in tags and "night" not in tags  # white, not black, padding
    assert "white background" not in tags_of(tagger, solid(tmp_path / "square.png", CHARACTER.hair))


def test_transparency_is_composited_on_white(tagger: Tagger, tmp_path: Path):
    clear = save(Image.new("RGBA", (80, 80), (0, 0, 0, 0)), tmp_path / "clear.png")
    assert preprocess_file(clear, SIDE).min() == 255.0
    assert preprocess_exact(Image.open(clear), SIDE).min() == 255.0
    assert tags_of(tagger, clear) == tags_of(tagger, solid(tmp_path / "white.png", WHITE))
    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([0, 0, 0, 0, 0, 255])
    palette.info["transparency"] = 0
    assert preprocess_file(save(palette, tmp_path / "p.png", transparency=0), SIDE).min() == 255.0


def test_sixteen_bit_and_cmyk_pictures_are_read_as_rgb(tmp_path: Path):
    deep = Image.fromarray(np.full((32, 32), 65535, dtype=np.uint16))
    assert preprocess_file(save(deep, tmp_path / "deep.png"), SIDE).min() == 255.0
    cmyk = save(Image.new("CMYK", (32, 32), (0, 0, 0, 0)), tmp_path / "cmyk.jpg", quality=95)
    assert preprocess_file(cmyk, SIDE).min() >= 250.0


def test_fast_path_stays_close_to_the_exact_reference_on_a_jpeg(tagger: Tagger, tmp_path: Path):
    path = save(photo_like((1200, 1800)), tmp_path / "photo.jpg", quality=90)
    with Image.open(path) as probe:
        assert probe.format == "JPEG"
    drafted = open_upright(path, SIDE)
    assert SIDE <= max(drafted.size) < 1800  # the DCT did part of the downscale, never below the side
    assert max(draft_size((1200, 1800), SIDE)) == SIDE
    fast, exact = preprocess_file(path, SIDE, fast=True), preprocess_file(path, SIDE, fast=False)
    assert np.abs(fast - exact).mean() < 2.0
    assert np.percentile(np.abs(fast - exact), 99) < 8  # only sharp edges and the border columns differ more
    both = tagger.probabilities(np.stack([fast, exact]))
    assert np.abs(both[0] - both[1]).max() < 0.02


def test_exif_orientation_is_applied(tmp_path: Path):
    upright = Image.new("RGB", (200, 300), CHARACTER.hair)
    upright.paste(BLUE, (0, 150, 200, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the file holds the picture turned the other way
    path = save(upright.transpose(Image.Transpose.ROTATE_90), tmp_path / "turned.jpg", exif=exif, quality=95)
    reference = preprocess_exact(upright, SIDE)
    assert np.abs(preprocess_file(path, SIDE, fast=True) - reference).mean() < 3
    assert np.abs(preprocess_file(path, SIDE, fast=False) - reference).mean() < 3


def test_the_exact_decode_is_the_default_and_fast_decode_switches_it(tagger: Tagger, tmp_path: Path):
    # The fast decode moved tag probabilities across the threshold in bench/tagger_decode.py: it is opt-in.
    path = save(photo_like((1000, 1500)), tmp_path / "photo.jpg", quality=90)
    exact, fast = preprocess_exact(open_upright(path), SIDE), preprocess_file(path, SIDE, fast=True)
    assert np.abs(exact - fast).max() > 0  # the two paths do differ on this picture
    np.testing.assert_array_equal(preprocess_file(path, SIDE), exact)
    every_tag = {"general_threshold": 0.0, "character_threshold": 0.0}

    def expected(array: np.ndarray) -> dict[str, float]:
        scores = tagger.probabilities(array[None])[0]
        return choose_tags(path, scores, tagger.labels, TaggingSettings(**every_tag)).confidences

    assert TaggingSettings().fast_decode is False
    by_default = tag_images([path], tagger, TaggingSettings(**every_tag)).images[0].confidences
    switched = tag_images([path], tagger, TaggingSettings(fast_decode=True, **every_tag)).images[0].confidences
    assert by_default == expected(exact) and switched == expected(fast) and switched != by_default


# --- from scores to tags ----------------------------------------------------------------------------------------


def test_kaomoji_keep_their_underscore_and_nothing_is_escaped(tagger: Tagger, tmp_path: Path):
    assert format_tag("^_^") == "^_^" and format_tag("||_||") == "||_||"
    assert format_tag("star_(symbol)") == "star (symbol)" and format_tag("looking_at_viewer") == "looking at viewer"
    tags = tags_of(tagger, solid(tmp_path / "night.png", BLACK))
    assert "^_^" in tags and "star (symbol)" in tags
    assert all("\\" not in t and (t == "^_^" or "_" not in t) for t in tags)


def test_ratings_are_reported_but_written_only_when_asked(tagger: Tagger, tmp_path: Path):
    path = solid(tmp_path / "w.png", WHITE)
    result = tag_images([path], tagger).images[0]
    assert result.rating == "general" and set(result.ratings) == {"general", "sensitive", "questionable", "explicit"}
    assert "general" not in tags_of(tagger, path)
    assert tags_of(tagger, path, write_rating=True)[-1] == "general"


def test_character_threshold_is_respected(tagger: Tagger, tmp_path: Path):
    path = solid(tmp_path / "w.png", WHITE)
    result = tag_images([path], tagger, TaggingSettings(character_threshold=0.5)).images[0]
    assert result.characters == pytest.approx({"lookalike (loratui)": 0.731}, abs=1e-3)
    assert "lookalike (loratui)" not in tags_of(tagger, path)  # 0.73 < 0.85
    assert "lookalike (loratui)" in tags_of(tagger, path, character_threshold=0.5)
    assert result.confidences["1girl"] == pytest.approx(0.953, abs=1e-3)


def test_mcut_cuts_at_the_largest_gap_with_a_floor_for_characters():
    assert mcut_threshold(np.array([0.9, 0.8, 0.3, 0.2])) == pytest.approx(0.55)
    assert mcut_threshold(np.array([0.4])) is None
    labels = Labels(("general", "a_b", "c", "d", "e", "hero", "villain"), np.array([0]), np.array([1, 2, 3, 4]),
                    np.array([5, 6]))
    scores = np.array([0.9, 0.8, 0.9, 0.3, 0.2, 0.12, 0.02])
    chosen = choose_tags(Path("x.png"), scores, labels, TaggingSettings(mcut=True))
    assert list(chosen.general) == ["c", "a b"] and chosen.characters == {}  # 0.07 floored to 0.15
    fixed = choose_tags(Path("x.png"), scores, labels, TaggingSettings(general_threshold=0.1, character_threshold=0.1))
    assert list(fixed.general) == ["c", "a b", "d", "e"] and list(fixed.characters) == ["hero"]


def test_a_fixed_batch_model_runs_one_by_one_with_the_same_results(tagger, tagger_v2, tmp_path: Path):
    paths = [solid(tmp_path / f"{i}.png", colour) for i, colour in enumerate([BLUE, WHITE, BLACK, BLUE, WHITE])]
    paths.append(save(swatch(), tmp_path / "swatch.png"))
    settings = TaggingSettings(batch_size=8)
    v3, v2 = tag_images(paths, tagger, settings), tag_images(paths, tagger_v2, settings)
    assert [r.tags() for r in v2.images] == [r.tags() for r in v3.images]
    batch = np.stack([preprocess_file(p, SIDE) for p in paths])
    np.testing.assert_allclose(tagger_v2.probabilities(batch), tagger.probabilities(batch), atol=1e-5)


def test_unreadable_files_are_skipped_with_their_reason(tagger: Tagger, tmp_path: Path):
    good = solid(tmp_path / "good.png", BLUE)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not a picture")
    data = good.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    result = tag_images([tmp_path / "empty.png", good, tmp_path / "text.png", tmp_path / "cut.png"], tagger)
    assert [r.path.name for r in result.images] == ["good.png"]
    reasons = {note.path.name: note.message for note in result.outcome.skipped}
    assert reasons["empty.png"].startswith("empty file") and reasons["text.png"].startswith("not a picture")
    assert reasons["cut.png"].startswith("damaged or truncated")


def bomb_png(path: Path, side: int = 100_000) -> Path:
    """A tiny PNG whose header claims side x side pixels (Pillow refuses it before decoding)."""
    import struct
    import zlib

    data = bytearray(save(Image.new("RGB", (1, 1)), path).read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", side, side)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    path.write_bytes(bytes(data))
    return path


def test_odd_but_valid_pictures_are_tagged_and_bombs_refused(tagger: Tagger, tmp_path: Path):
    frames = [Image.new("RGB", (32, 32), colour) for colour in (BLUE, CHARACTER.hair)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    tiny = solid(tmp_path / "one pixel.png", BLUE, (1, 1))
    named = solid(tmp_path / "ブルー 画像.JPG", BLUE, (40, 60))
    bomb = bomb_png(tmp_path / "bomb.png")
    result = tag_images([gif, tiny, named, bomb], tagger)
    assert [r.path for r in result.images] == [gif, tiny, named]
    assert all("aoi (loratui)" in r.tags() for r in result.images)  # the GIF's first frame is the blue one
    assert [(n.path, n.message.split(",")[0]) for n in result.outcome.skipped] == [
        (bomb, "too many pixels")]


# --- a project's dataset ---------------------------------------------------------------------------------------


def read(folder: Path, name: str) -> str:
    return (folder / name).read_text(encoding="utf-8")


def test_tagging_a_dataset_writes_captions_with_trigger_and_deletions(tmp_path: Path, model_dirs):
    project, config, folder = make_project(
        tmp_path, model_dirs["v3"], {"a.png": swatch(), "b.png": Image.new("RGB", (64, 64), BLUE)},
        deleted_tags=["red_hair", "Blue Sky"])
    config.concepts[0].trigger = "akari, red hair"
    seen = []
    run = tag_dataset(project, config, progress=seen.append)
    assert (run.outcome.done, run.tagged, run.outcome.skipped, run.snapshot) == (2, 2, [], None)
    assert run.ratings == {"general": 2} and run.device == "CPU" and run.images_per_s > 0
    assert seen[-1].done == seen[-1].total == 2 and seen[-1].stage == "tagging"
    a, b = read(folder, "a.txt"), read(folder, "b.txt")
    assert a.startswith("akari, red hair, akari (loratui), ") and a.count("red hair") == 1 and a.endswith("\n")
    assert b.startswith("akari, red hair, aoi (loratui), ") and "blue sky" not in b
    assert "\n" not in a[:-1] and ", " in a


def test_merge_modes_on_existing_captions(tmp_path: Path, model_dirs):
    project, config, folder = make_project(
        tmp_path, model_dirs["v3"], {"a.png": Image.new("RGB", (64, 64), BLUE),
                                     "b.png": Image.new("RGB", (64, 64), BLUE)})
    (folder / "a.txt").write_text("my own tag, blue_theme\n", encoding="utf-8")
    (folder / "b.txt").write_text("", encoding="utf-8")

    config.tagging.merge = "skip"
    run = tag_dataset(project, config)
    assert (run.outcome.done, run.outcome.unchanged, run.tagged) == (1, 1, 1)  # an empty caption is no caption
    assert read(folder, "a.txt") == "my own tag, blue_theme\n" and read(folder, "b.txt").startswith("akari, aoi")

    config.tagging.merge = "append"
    tag_dataset(project, config)
    appended = read(folder, "a.txt")
    assert appended.startswith("akari, my own tag, blue_theme, aoi (loratui), ")
    assert "blue theme" not in appended  # the same tag as blue_theme, not repeated

    config.tagging.merge = "overwrite"
    run = tag_dataset(project, config)
    assert read(folder, "a.txt").startswith("akari, aoi (loratui), ") and "my own tag" not in read(folder, "a.txt")
    assert run.outcome.unchanged == 1  # b.txt already held exactly this
    again = tag_dataset(project, config)
    assert (again.outcome.done, again.outcome.unchanged, again.snapshot) == (0, 2, None)


def test_a_snapshot_is_taken_before_rewriting_and_undo_restores_the_bytes(tmp_path: Path, model_dirs):
    project, config, folder = make_project(
        tmp_path, model_dirs["v3"], {"a.png": Image.new("RGB", (64, 64), BLUE),
                                     "b.png": Image.new("RGB", (64, 64), WHITE)})
    original = "\ufeff蓝色, 女孩\r\nsecond line".encode("utf-16-le")  # not UTF-8, yet certain: the BOM says so
    (folder / "a.txt").write_bytes(original)
    config.tagging.merge = "append"
    run = tag_dataset(project, config)
    assert run.snapshot is not None and run.snapshot.is_dir()
    assert [s.files for s in caption_backup.list_snapshots(project.state_dir)] == [[f"{folder.name}/a.txt"]]
    assert read(folder, "a.txt").startswith("akari, 蓝色, 女孩, second line, aoi (loratui)")
    assert any(note.path == folder / "a.txt" for note in run.outcome.warnings)  # encoding and lines reported
    caption_backup.undo_last(project.dataset_dir, project.state_dir)
    assert (folder / "a.txt").read_bytes() == original and not (folder / "b.txt").exists()


def test_a_caption_of_a_guessed_encoding_is_not_merged(tmp_path: Path, model_dirs):
    project, config, folder = make_project(
        tmp_path, model_dirs["v3"], {"a.png": Image.new("RGB", (64, 64), BLUE),
                                     "b.png": Image.new("RGB", (64, 64), BLUE)})
    kanji = "赤髪, 笑顔".encode("shift_jis")  # reads as other, valid GB18030 hanzi: a guess either way
    (folder / "a.txt").write_bytes(kanji)
    (folder / "b.txt").write_text("my own tag\n", encoding="utf-8")
    for merge in ("append", "skip"):
        config.tagging.merge = merge
        run = tag_dataset(project, config)
        assert (folder / "a.txt").read_bytes() == kanji, merge
    assert run.outcome.skipped == []  # merge = skip leaves it alone quietly, as it does every captioned picture
    config.tagging.merge = "append"
    run = tag_dataset(project, config)
    assert [(n.path, n.message) for n in run.outcome.skipped] == [
        (folder / "a.txt", "its encoding could not be told for sure (it reads as GB18030 (GBK), which may be wrong): "
                           "loratui will not rewrite it; open it in a text editor and save it as UTF-8")]
    assert read(folder, "b.txt").startswith("akari, my own tag, aoi (loratui)")
    config.tagging.merge = "overwrite"  # keeps nothing of the old text, and the backup holds its bytes
    run = tag_dataset(project, config)
    assert read(folder, "a.txt").startswith("akari, aoi (loratui)") and run.snapshot is not None


def test_no_snapshot_when_no_caption_is_rewritten(tmp_path: Path, model_dirs):
    project, config, folder = make_project(tmp_path, model_dirs["v3"], {"a.png": swatch()})
    assert tag_dataset(project, config).snapshot is None
    assert caption_backup.list_snapshots(project.state_dir) == []
    assert tag_dataset(project, config).snapshot is None  # same tags again: nothing rewritten, nothing to undo
    assert caption_backup.list_snapshots(project.state_dir) == []
    config.tagging.general_threshold = 0.9
    assert tag_dataset(project, config).snapshot is None  # append (the default) keeps the tags already there
    config.tagging.merge = "overwrite"
    assert tag_dataset(project, config).snapshot is not None  # fewer tags: a.txt is rewritten


def test_a_broken_picture_in_the_dataset_is_skipped_by_name(tmp_path: Path, model_dirs):
    project, config, folder = make_project(tmp_path, model_dirs["v3"], {"good.png": swatch()})
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not the rest of a png")
    run = tag_dataset(project, config)
    assert run.outcome.done == 1 and (folder / "good.txt").is_file() and not (folder / "broken.txt").exists()
    assert [(n.path, n.message.split(" (")[0]) for n in run.outcome.skipped] == [
        (folder / "broken.png", "damaged")]


def test_a_cancel_keeps_the_captions_already_written(tmp_path: Path, model_dirs):
    pictures = {f"{i}.png": Image.new("RGB", (64, 64), BLUE) for i in range(6)}
    project, config, folder = make_project(tmp_path, model_dirs["v3"], pictures, batch_size=2)
    token = CancelToken()

    def progress(step) -> None:
        if step.stage == "tagging" and step.done >= 1:
            token.cancel()

    with pytest.raises(Cancelled):
        tag_dataset(project, config, progress=progress, cancel=token)
    assert sorted(p.name for p in folder.glob("*.txt")) == ["0.txt", "1.txt"]


def test_no_prepared_pictures_says_to_run_prepare(tmp_path: Path, model_dirs):
    project, config, _ = make_project(tmp_path, model_dirs["v3"], {})
    message = one_line_error(lambda: tag_dataset(project, config))
    assert f"loratui prepare {project.root}" in message


def test_the_v2_layout_tags_a_dataset_one_picture_per_run(tmp_path: Path, model_dirs):
    pictures = {f"{i}.png": swatch() for i in range(3)}
    project, config, folder = make_project(tmp_path, model_dirs["v2"], pictures, batch_size=8)
    run = tag_dataset(project, config)
    assert (run.batch_size, run.outcome.done) == (1, 3)
    assert read(folder, "2.txt").startswith("akari, akari (loratui), ")


# --- the command ------------------------------------------------------------------------------------------------


def loratui(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loratui", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_the_tag_command(tmp_path: Path, model_dirs):
    project, config, folder = make_project(tmp_path, model_dirs["v3"], {"a.png": swatch(), "b.png": swatch()})
    (folder / "c.png").write_text("not a picture")
    result = loratui("tag", project.root, "--trigger", "akari_chan", "--write-rating", "--batch-size", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "2 captions written, 1 skipped" in out and f"skipped {folder / 'c.png'}: not a picture" in out
    assert "Tagger: " in out and "on the CPU, batch 1" in out and "pictures/s" in out
    assert "Trigger of akari: 'akari_chan'" in out
    assert read(folder, "a.txt").startswith("akari_chan, akari (loratui), ") and read(folder, "a.txt").endswith(
        ", general\n")
    assert 'trigger = "akari_chan"' in project.config_path.read_text()
    assert "batch_size = 8" in project.config_path.read_text()  # flags other than --trigger are not saved

    for args, expected in (
        (["--model", tmp_path / "nowhere"], "nowhere: no such folder"),
        (["--general-threshold", "1.5"], "--general-threshold: 1.5 is too large"),
        (["--concept", "nobody"], "--concept nobody: no such concept"),
    ):
        bad = loratui("tag", project.root, *args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        assert bad.stderr.startswith("loratui: ") and expected in bad.stderr and bad.stderr.count("\n") == 1


def test_list_models_needs_no_project():
    result = loratui("tag", "--list-models")
    assert result.returncode == 0
    assert all(model.repo in result.stdout for model in KNOWN_MODELS)
    assert "* SmilingWolf/wd-swinv2-tagger-v3" in result.stdout


def test_a_hub_id_without_network_fails_at_once_with_the_local_folder_hint(tmp_path: Path, monkeypatch):
    import socket

    from huggingface_hub import constants

    from loratui.dataset.tagger_models import resolve_model

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: the model must be fetched

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(LoratuiError, match="cannot reach the model hub .*pass that folder as --model"):
        resolve_model("SmilingWolf/wd-swinv2-tagger-v3", tmp_path)
