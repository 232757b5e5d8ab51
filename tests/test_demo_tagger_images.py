"""Tests for the demo's tiny WD14-signature tagger and its synthetic picture set."""

from __future__ import annotations

import ast
import csv
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image, ImageOps

from loratui.demo import images as demo_images
from loratui.demo import tagger_model
from loratui.demo.images import CHARACTER, DemoImage, build_demo_images
from loratui.demo.tagger_model import (
    CHARACTER_COLOUR_TAGS,
    CHARACTER_TAG,
    TAGS,
    TagCategory,
    build_tiny_tagger,
    reference_probabilities,
)

GENERAL_THRESHOLD = 0.35
CHARACTER_THRESHOLD = 0.85
SIDE = 448
PROVIDERS = ["CPUExecutionProvider"]
REPO_ROOT = Path(__file__).resolve().parents[1]


# --- helpers ---------------------------------------------------------------------------------


def selected_tags(probabilities: np.ndarray) -> set[str]:
    """WD14 defaults: general above 0.35, character above 0.85, ratings never written."""
    chosen = set()
    for tag, p in zip(TAGS, probabilities, strict=True):
        if tag.category == TagCategory.GENERAL and p > GENERAL_THRESHOLD:
            chosen.add(tag.name)
        elif tag.category == TagCategory.CHARACTER and p > CHARACTER_THRESHOLD:
            chosen.add(tag.name)
    return chosen


def wd14_preprocess(path: Path, side: int = SIDE) -> np.ndarray:
    """What the SmilingWolf space does: alpha on white, pad to a centred white square, BICUBIC, RGB -> BGR."""
    with Image.open(path) as opened:
        rgba = ImageOps.exif_transpose(opened).convert("RGBA")
    flattened = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flattened.alpha_composite(rgba)
    rgb = flattened.convert("RGB")
    size = max(rgb.size)
    square = Image.new("RGB", (size, size), (255, 255, 255))
    square.paste(rgb, ((size - rgb.width) // 2, (size - rgb.height) // 2))
    if size != side:
        square = square.resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(square, dtype=np.float32)[:, :, ::-1].copy()


def solid_bgr(rgb: tuple[int, int, int], side: int = SIDE) -> np.ndarray:
    image = np.empty((1, side, side, 3), dtype=np.float32)
    image[...] = rgb[::-1]
    return image


def character_swatch(side: int = SIDE) -> np.ndarray:
    """White square with the character's colours in the middle: hair band, face with blue eyes, shirt band."""
    image = Image.new("RGB", (side, side), (255, 255, 255))
    q = side // 4
    image.paste(CHARACTER.hair, (q, q, 3 * q, q + q // 2))
    image.paste(CHARACTER.skin, (q, q + q // 2, 3 * q, 2 * q))
    image.paste(CHARACTER.iris, (q + q // 4, q + q // 2 + 8, q + q // 2, q + q // 2 + 24))
    image.paste(CHARACTER.iris, (3 * q - q // 2, q + q // 2 + 8, 3 * q - q // 4, q + q // 2 + 24))
    image.paste(CHARACTER.shirt, (q, 2 * q, 3 * q, 3 * q))
    return np.asarray(image, dtype=np.float32)[None, :, :, ::-1].copy()


def run_model(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def open_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as opened:
        return np.asarray(opened.convert("RGB"), dtype=np.int16)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tagger")
    return {layout: build_tiny_tagger(root / layout, layout=layout) for layout in ("v3", "v2")}


@pytest.fixture(scope="module")
def sessions(model_dirs: dict[str, Path]) -> dict[str, ort.InferenceSession]:
    return {
        layout: ort.InferenceSession(str(folder / "model.onnx"), providers=PROVIDERS)
        for layout, folder in model_dirs.items()
    }


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory: pytest.TempPathFactory) -> list[DemoImage]:
    return build_demo_images(tmp_path_factory.mktemp("demo_a"))


@pytest.fixture(scope="module")
def demo_batch(demo_set: list[DemoImage]) -> np.ndarray:
    return np.stack([wd14_preprocess(image.path) for image in demo_set])


@pytest.fixture(scope="module")
def demo_tags(sessions: dict[str, ort.InferenceSession], demo_batch: np.ndarray) -> list[set[str]]:
    return [selected_tags(p) for p in run_model(sessions["v3"], demo_batch)]


# --- the model file --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["v3", "v2"])
def test_model_passes_the_onnx_checker(model_dirs: dict[str, Path], layout: str) -> None:
    model = onnx.load(model_dirs[layout] / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]


@pytest.mark.parametrize("layout", ["v3", "v2"])
def test_model_bytes_are_what_protobuf_itself_would_write(model_dirs: dict[str, Path], layout: str) -> None:
    raw = (model_dirs[layout] / "model.onnx").read_bytes()
    assert onnx.load_from_string(raw).SerializeToString() == raw


def _declared_dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    assert value_info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_v3_signature_has_dynamic_batch(model_dirs: dict[str, Path], sessions: dict[str, ort.InferenceSession]) -> None:
    graph = onnx.load(model_dirs["v3"] / "model.onnx").graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["output"]
    assert _declared_dims(graph.input[0]) == ["batch_size", SIDE, SIDE, 3]
    assert _declared_dims(graph.output[0]) == ["batch_size", len(TAGS)]

    session = sessions["v3"]
    (model_input,), (model_output,) = session.get_inputs(), session.get_outputs()
    assert (model_input.name, model_input.shape, model_input.type) == ("input", ["batch_size", SIDE, SIDE, 3],
                                                                        "tensor(float)")
    assert (model_output.name, model_output.shape, model_output.type) == ("output", ["batch_size", len(TAGS)],
                                                                           "tensor(float)")


def test_v2_signature_has_fixed_batch_of_one(model_dirs: dict[str, Path],
                                             sessions: dict[str, ort.InferenceSession]) -> None:
    graph = onnx.load(model_dirs["v2"] / "model.onnx").graph
    assert _declared_dims(graph.input[0]) == [1, SIDE, SIDE, 3]
    assert not graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_param")

    session = sessions["v2"]
    (model_input,), (model_output,) = session.get_inputs(), session.get_outputs()
    assert (model_input.name, model_input.shape, model_input.type) == ("input_1:0", [1, SIDE, SIDE, 3],
                                                                        "tensor(float)")
    assert (model_output.name, model_output.shape, model_output.type) == ("predictions_sigmoid", [1, len(TAGS)],
                                                                           "tensor(float)")
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        run_model(session, np.zeros((2, SIDE, SIDE, 3), dtype=np.float32))


def test_side_sets_the_square_input(tmp_path: Path) -> None:
    folder = build_tiny_tagger(tmp_path / "small", side=64)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=PROVIDERS)
    assert session.get_inputs()[0].shape == ["batch_size", 64, 64, 3]
    batch = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(run_model(session, batch), reference_probabilities(batch), atol=1e-5)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_tiny_tagger(tmp_path, layout="v4")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        build_tiny_tagger(tmp_path, side=0)


def test_selected_tags_csv_matches_the_wd14_layout(model_dirs: dict[str, Path],
                                                   sessions: dict[str, ort.InferenceSession]) -> None:
    with open(model_dirs["v3"] / "selected_tags.csv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["tag_id", "name", "category", "count"]
        rows = list(reader)

    assert len(rows) == len(TAGS) == sessions["v3"].get_outputs()[0].shape[1]
    assert [r["name"] for r in rows[:4]] == ["general", "sensitive", "questionable", "explicit"]
    categories = [int(r["category"]) for r in rows]
    assert categories[:4] == [9, 9, 9, 9]
    general_end = categories.index(4)
    assert set(categories[4:general_end]) == {0} and set(categories[general_end:]) == {4}
    assert [(int(r["tag_id"]), r["name"], int(r["category"]), int(r["count"])) for r in rows] == [
        (t.tag_id, t.name, int(t.category), t.count) for t in TAGS
    ]
    names = [r["name"] for r in rows]
    assert len(set(names)) == len(names)
    assert "^_^" in names and "star_(symbol)" in names
    v2_csv = (model_dirs["v2"] / "selected_tags.csv").read_bytes()
    assert v2_csv == (model_dirs["v3"] / "selected_tags.csv").read_bytes()


# --- the model's function --------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "batch_size"), [("v3", 1), ("v3", 4), ("v2", 1)])
def test_onnxruntime_matches_the_numpy_reference(sessions: dict[str, ort.InferenceSession], layout: str,
                                                 batch_size: int) -> None:
    rng = np.random.default_rng(batch_size)
    batch = rng.uniform(0.0, 255.0, (batch_size, SIDE, SIDE, 3)).astype(np.float32)
    # Smooth colour fields as well as noise, so every detector sees pixels on its ramp and off it.
    ys, xs = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    batch[0, :, :, 0] = 255.0 * xs
    batch[0, :, :, 2] = 255.0 * ys
    output = run_model(sessions[layout], batch)
    assert output.shape == (batch_size, len(TAGS)) and output.dtype == np.float32
    np.testing.assert_allclose(output, reference_probabilities(batch), atol=1e-5, rtol=0)


def test_onnxruntime_matches_the_reference_on_demo_pictures(sessions: dict[str, ort.InferenceSession],
                                                            demo_batch: np.ndarray) -> None:
    np.testing.assert_allclose(run_model(sessions["v3"], demo_batch), reference_probabilities(demo_batch),
                               atol=1e-5, rtol=0)
    for picture in demo_batch[:3]:
        np.testing.assert_allclose(run_model(sessions["v2"], picture[None]), run_model(sessions["v3"], picture[None]),
                                   atol=1e-6, rtol=0)


def test_solid_white_is_a_white_background(sessions: dict[str, ort.InferenceSession]) -> None:
    tags = selected_tags(run_model(sessions["v3"], solid_bgr((255, 255, 255)))[0])
    assert {"white_background", "simple_background", "1girl", "solo", "^_^"} <= tags
    assert not tags & {"red_hair", "night", "outdoors", CHARACTER_TAG}


def test_solid_black_is_night(sessions: dict[str, ort.InferenceSession]) -> None:
    tags = selected_tags(run_model(sessions["v3"], solid_bgr((0, 0, 0)))[0])
    assert {"night", "star_(symbol)"} <= tags
    assert not tags & {"white_background", "simple_background", "red_hair"}


def test_character_colours_give_the_character_tags(sessions: dict[str, ort.InferenceSession]) -> None:
    probabilities = run_model(sessions["v3"], character_swatch())[0]
    tags = selected_tags(probabilities)
    assert set(CHARACTER_COLOUR_TAGS) | {CHARACTER_TAG} <= tags
    assert not tags & {"aoi_(loratui)", "blue_theme", "red_theme"}
    assert probabilities[[t.name for t in TAGS].index(CHARACTER_TAG)] > CHARACTER_THRESHOLD


def test_lookalike_sits_between_the_two_thresholds(sessions: dict[str, ort.InferenceSession]) -> None:
    index = [t.name for t in TAGS].index("lookalike_(loratui)")
    assert TAGS[index].category == TagCategory.CHARACTER
    batch = np.concatenate([solid_bgr((255, 255, 255)), solid_bgr((0, 0, 0)), character_swatch()])
    for probabilities in run_model(sessions["v3"], batch):
        assert GENERAL_THRESHOLD < probabilities[index] < CHARACTER_THRESHOLD
        assert "lookalike_(loratui)" not in selected_tags(probabilities)


def test_ratings_come_first_and_general_wins(sessions: dict[str, ort.InferenceSession]) -> None:
    batch = np.concatenate([solid_bgr((255, 255, 255)), character_swatch()])
    for probabilities in run_model(sessions["v3"], batch):
        assert int(np.argmax(probabilities[:4])) == 0


@pytest.mark.parametrize("rgb", [(255, 0, 0), (0, 0, 255)])
def test_feeding_rgb_instead_of_bgr_changes_the_tags_of_a_pure_colour(sessions: dict[str, ort.InferenceSession],
                                                                      rgb: tuple[int, int, int]) -> None:
    right = solid_bgr(rgb)
    wrong = right[..., ::-1].copy()
    right_tags = selected_tags(run_model(sessions["v3"], right)[0])
    wrong_tags = selected_tags(run_model(sessions["v3"], wrong)[0])
    assert right_tags != wrong_tags
    if rgb == (255, 0, 0):
        assert {"red_theme", "red_hair"} <= right_tags and "red_theme" not in wrong_tags
        assert {"blue_theme", "aoi_(loratui)"} <= wrong_tags
    else:
        assert {"blue_theme", "aoi_(loratui)"} <= right_tags and "blue_theme" not in wrong_tags
        assert "red_theme" in wrong_tags


def test_feeding_rgb_instead_of_bgr_loses_the_character(sessions: dict[str, ort.InferenceSession],
                                                        demo_batch: np.ndarray, demo_tags: list[set[str]]) -> None:
    swapped = [selected_tags(p) for p in run_model(sessions["v3"], demo_batch[..., ::-1].copy())]
    assert all("red_hair" not in tags and CHARACTER_TAG not in tags for tags in swapped)
    assert sum(right != wrong for right, wrong in zip(demo_tags, swapped, strict=True)) == len(demo_tags)


# --- the picture set -------------------------------------------------------------------------


def test_picture_files_match_their_records(demo_set: list[DemoImage]) -> None:
    assert len(demo_set) == 24
    extensions = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
    for number, image in enumerate(demo_set, start=1):
        assert image.path.name == f"demo_{number:03d}{extensions[image.format]}"
        with Image.open(image.path) as opened:
            opened.load()
            assert opened.format == image.format
            assert opened.size == (image.width, image.height)
            assert opened.mode == "RGB"


def test_picture_set_is_varied(demo_set: list[DemoImage]) -> None:
    ratios = {Fraction(i.width, i.height) for i in demo_set}
    assert len(ratios) >= 3
    assert {Fraction(2, 3), Fraction(9, 16), Fraction(3, 2), Fraction(16, 9), Fraction(1)} <= ratios
    assert any(i.width > i.height for i in demo_set) and any(i.height > i.width for i in demo_set)
    long_sides = [max(i.width, i.height) for i in demo_set]
    assert min(long_sides) <= 512 and max(long_sides) == 1536
    assert sum(side <= 576 for side in long_sides) >= 2

    formats = [i.format for i in demo_set]
    assert set(formats) == {"PNG", "JPEG", "WEBP"}
    assert formats.count("PNG") > len(formats) / 2 and 1 <= formats.count("WEBP") <= 2
    assert {i.background for i in demo_set} == {"white", "gradient", "outdoor", "night", "noise"}
    assert {i.framing for i in demo_set} == {"bust", "cowboy", "full"}
    assert len({i.arm_pose for i in demo_set}) == 2 and len({i.mirrored for i in demo_set}) == 2


def test_face_boxes_lie_inside_their_pictures(demo_set: list[DemoImage]) -> None:
    for image in demo_set:
        left, top, right, bottom = image.face_box
        assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height
        assert right - left >= 24
        c_left, c_top, c_right, c_bottom = image.character_box
        assert c_left <= left and c_top <= top and right <= c_right and bottom <= c_bottom


def _naive_centre_crop(width: int, height: int) -> tuple[int, int, int, int]:
    side = min(width, height)
    return ((width - side) // 2, (height - side) // 2, (width - side) // 2 + side, (height - side) // 2 + side)


def test_face_off_centre_flags_agree_with_the_geometry(demo_set: list[DemoImage]) -> None:
    for image in demo_set:
        crop = _naive_centre_crop(image.width, image.height)
        left, top, right, bottom = image.face_box
        inside = left >= crop[0] and top >= crop[1] and right <= crop[2] and bottom <= crop[3]
        assert image.face_off_centre == (not inside), image.path.name
    flagged = [i for i in demo_set if i.face_off_centre]
    assert len(flagged) >= 3
    # Both ways a centre crop loses a face: near the top of a tall picture and near the side of a wide one.
    assert any(i.height > i.width for i in flagged) and any(i.width > i.height for i in flagged)


def test_face_box_holds_the_skin_colour(demo_set: list[DemoImage]) -> None:
    skin = np.array(CHARACTER.skin, dtype=np.int16)
    for image in demo_set:
        pixels = open_rgb(image.path)
        left, top, right, bottom = image.face_box
        centre_x, centre_y = (left + right) // 2, (top + bottom) // 2
        # JPEG and WEBP shift flat colours by a few levels.
        assert np.abs(pixels[centre_y, centre_x] - skin).max() <= 8, image.path.name
        half_w, half_h = max(1, (right - left) // 20), max(1, (bottom - top) // 20)
        patch = pixels[centre_y - half_h:centre_y + half_h + 1, centre_x - half_w:centre_x + half_w + 1]
        assert (np.abs(patch - skin).max(axis=-1) <= 16).mean() >= 0.95, image.path.name
        box = pixels[top:bottom, left:right]
        assert (np.abs(box - skin).max(axis=-1) <= 16).mean() >= 0.35, image.path.name


def test_same_seed_gives_identical_files(demo_set: list[DemoImage], tmp_path: Path) -> None:
    again = build_demo_images(tmp_path / "again")
    assert [i.path.name for i in again] == [i.path.name for i in demo_set]
    for first, second in zip(demo_set, again, strict=True):
        assert first.path.read_bytes() == second.path.read_bytes(), first.path.name
        assert (first.face_box, first.face_off_centre) == (second.face_box, second.face_off_centre)


def test_count_and_seed(demo_set: list[DemoImage], tmp_path: Path) -> None:
    few = build_demo_images(tmp_path / "few", count=3)
    assert [i.path.read_bytes() for i in few] == [i.path.read_bytes() for i in demo_set[:3]]
    other = build_demo_images(tmp_path / "other", count=3, seed=7)
    assert all(a.path.read_bytes() != b.path.read_bytes() for a, b in zip(few, other, strict=True))
    with pytest.raises(ValueError):
        build_demo_images(tmp_path / "none", count=0)


# --- the tagger on the pictures --------------------------------------------------------------


def test_tagger_finds_the_character_on_most_pictures(demo_tags: list[set[str]]) -> None:
    total = len(demo_tags)
    for tag in ("red_hair", "yellow_shirt", "long_hair"):
        assert sum(tag in tags for tags in demo_tags) >= total - 2, tag
    assert sum(set(CHARACTER_COLOUR_TAGS) <= tags for tags in demo_tags) >= 0.8 * total
    assert sum(CHARACTER_TAG in tags for tags in demo_tags) >= 0.75 * total
    assert all({"1girl", "solo"} <= tags for tags in demo_tags)


BACKGROUND_TAGS = {
    "white": ({"white_background", "simple_background"}, {"outdoors", "night"}),
    "gradient": ({"simple_background"}, {"white_background", "outdoors", "night"}),
    "noise": ({"simple_background"}, {"white_background", "outdoors", "night"}),
    "outdoor": ({"outdoors", "blue_sky", "grass"}, {"simple_background", "white_background", "night"}),
    "night": ({"night", "star_(symbol)"}, {"simple_background", "white_background", "outdoors"}),
}


def test_tagger_reads_each_background(demo_set: list[DemoImage], demo_tags: list[set[str]]) -> None:
    for image, tags in zip(demo_set, demo_tags, strict=True):
        wanted, unwanted = BACKGROUND_TAGS[image.background]
        assert wanted <= tags, (image.path.name, sorted(tags))
        assert not tags & unwanted, (image.path.name, sorted(tags))


# --- dependencies ----------------------------------------------------------------------------


def _imported_roots(module_path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(module_path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_builders_import_neither_torch_nor_onnx() -> None:
    for module in (tagger_model, demo_images):
        roots = _imported_roots(Path(module.__file__))
        assert not roots & {"torch", "onnx"}, module.__name__


def test_model_builds_without_the_onnx_package(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['onnx'] = None\n"  # any `import onnx` now raises ImportError
        "from pathlib import Path\n"
        "from loratui.demo.tagger_model import build_tiny_tagger\n"
        f"build_tiny_tagger(Path({str(tmp_path)!r}))\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, check=True)
    assert (tmp_path / "model.onnx").stat().st_size > 0 and (tmp_path / "selected_tags.csv").exists()
