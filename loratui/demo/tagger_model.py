"""Tiny offline WD14-signature tagger: its ONNX bytes, its selected_tags.csv and a numpy reference of its function."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Literal

import numpy as np

from loratui.protobuf_wire import bytes_field, string_field, varint_field

Layout = Literal["v3", "v2"]

MODEL_FILENAME = "model.onnx"
TAGS_FILENAME = "selected_tags.csv"
CSV_HEADER = ("tag_id", "name", "category", "count")
DEFAULT_SIDE = 448


class TagCategory(IntEnum):
    """Category codes used by WD14's selected_tags.csv."""

    GENERAL = 0
    CHARACTER = 4
    RATING = 9


@dataclass(frozen=True)
class ColourDetector:
    """A per-pixel colour test on channels scaled to [-1, 1]: test = blue*B + green*G + red*R.

    A pixel counts 0 at test <= low, 1 at test >= high, linearly in between. Averaged over the image it is the
    fraction of pixels of that colour, which, unlike a mean colour, is not washed out by the white padding the
    tagger adds around non-square pictures.
    """

    name: str
    blue: float
    green: float
    red: float
    low: float
    high: float


@dataclass(frozen=True)
class TagSpec:
    """One selected_tags.csv row and its logit: bias + sum of weight * detector fraction."""

    tag_id: int
    name: str
    category: TagCategory
    count: int
    bias: float
    weights: dict[str, float] = field(default_factory=dict)


# Margins were chosen from the demo palette (images.CHARACTER) and the demo backgrounds, in [-1, 1] units.
DETECTORS: tuple[ColourDetector, ...] = (
    # Crimson hair and its shadow: R - G is 1.05..1.36; the shirt (0.38), blush (0.54) and skin stay out.
    ColourDetector("hair_red", blue=0.0, green=-1.0, red=1.0, low=0.6, high=0.9),
    # Yellow shirt: 1.5(R + G) - 2B is 3.8; pure red or green (2.0), grass (<1.4) and the red hair (1.1) stay out.
    ColourDetector("shirt_yellow", blue=-2.0, green=1.5, red=1.5, low=2.6, high=3.4),
    # Near white (channel sum above 2.85, i.e. mean above ~249/255): white backdrops, the tagger's padding, clouds.
    ColourDetector("white", blue=1.0, green=1.0, red=1.0, low=2.65, high=2.85),
    # Near black: night skies (sums -2.5..-1.9); the character's thin outlines and shoes barely register.
    ColourDetector("dark", blue=-1.0, green=-1.0, red=-1.0, low=1.4, high=1.7),
    # Daylight sky: 2(B - R) + G is 1.7..2.6; pastel gradients, grey noise and the navy skirt stay under 1.1.
    ColourDetector("sky", blue=2.0, green=1.0, red=-2.0, low=1.2, high=1.5),
    # Grass: 3G - 2R - B is ~1.9 over the whole lawn; mint gradients (0.6) and the shirt (0.5) stay out.
    ColourDetector("grass", blue=-1.0, green=3.0, red=-2.0, low=1.1, high=1.5),
    # Saturated blue (irises, ribbon, an all-blue picture): B - (R + G) / 2; daylight sky is at most 0.9.
    ColourDetector("blue", blue=1.0, green=-0.5, red=-0.5, low=1.0, high=1.15),
)

DETECTOR_NAMES: tuple[str, ...] = tuple(d.name for d in DETECTORS)

# What the demo character (loratui.demo.images.CHARACTER) is tagged with at WD14's default thresholds.
CHARACTER_TAG = "akari_(loratui)"
CHARACTER_COLOUR_TAGS: tuple[str, ...] = ("red_hair", "long_hair", "blue_eyes", "yellow_shirt")

_G, _C, _R = TagCategory.GENERAL, TagCategory.CHARACTER, TagCategory.RATING

# Order matters and mirrors the real file: 4 ratings, then general tags by post count, then characters.
# Tag ids of non-rating rows are invented; ratings use WD14's 9999999..9999996.
TAGS: tuple[TagSpec, ...] = (
    TagSpec(9999999, "general", _R, 812_000, bias=2.0),
    TagSpec(9999998, "sensitive", _R, 3_150_000, bias=-1.5),
    TagSpec(9999997, "questionable", _R, 1_020_000, bias=-3.0),
    TagSpec(9999996, "explicit", _R, 640_000, bias=-4.5),
    TagSpec(100001, "1girl", _G, 6_120_000, bias=3.0),
    TagSpec(100002, "solo", _G, 5_180_000, bias=2.0),
    TagSpec(100003, "long_hair", _G, 4_650_000, bias=-1.0, weights={"hair_red": 40.0}),
    TagSpec(100004, "looking_at_viewer", _G, 3_870_000, bias=-1.0, weights={"hair_red": 30.0}),
    TagSpec(100005, "blue_eyes", _G, 1_640_000, bias=-2.5, weights={"hair_red": 30.0, "shirt_yellow": 60.0}),
    TagSpec(100006, "simple_background", _G, 1_590_000, bias=2.0,
            weights={"dark": -15.0, "sky": -15.0, "grass": -15.0}),
    TagSpec(100007, "white_background", _G, 1_320_000, bias=-7.5,
            weights={"white": 14.0, "dark": -12.0, "sky": -12.0, "grass": -12.0}),
    TagSpec(100008, "blush", _G, 1_210_000, bias=-2.0, weights={"hair_red": 30.0, "shirt_yellow": 30.0}),
    TagSpec(100009, "red_hair", _G, 540_000, bias=-1.5, weights={"hair_red": 60.0}),
    TagSpec(100010, "outdoors", _G, 520_000, bias=-2.5, weights={"sky": 10.0, "grass": 10.0}),
    TagSpec(100011, "monochrome", _G, 500_000, bias=-4.0),
    TagSpec(100012, "blue_sky", _G, 340_000, bias=-2.0, weights={"sky": 12.0}),
    TagSpec(100013, "night", _G, 280_000, bias=-2.0, weights={"dark": 10.0}),
    TagSpec(100014, "grass", _G, 240_000, bias=-1.5, weights={"grass": 14.0}),
    TagSpec(100015, "yellow_shirt", _G, 160_000, bias=-1.3, weights={"shirt_yellow": 80.0}),
    TagSpec(100016, "star_(symbol)", _G, 96_000, bias=-2.5, weights={"dark": 8.0}),
    TagSpec(100017, "red_theme", _G, 21_000, bias=-8.0, weights={"hair_red": 12.0}),
    TagSpec(100018, "blue_theme", _G, 19_000, bias=-8.0, weights={"blue": 12.0}),
    TagSpec(100019, "^_^", _G, 5_400, bias=0.4),
    TagSpec(100020, CHARACTER_TAG, _C, 4_100, bias=-1.0, weights={"hair_red": 40.0, "shirt_yellow": 80.0}),
    TagSpec(100021, "lookalike_(loratui)", _C, 2_300, bias=1.0),
    TagSpec(100022, "aoi_(loratui)", _C, 1_900, bias=-6.0, weights={"blue": 12.0}),
)


def _check_tables() -> None:
    names = [t.name for t in TAGS]
    if len(set(names)) != len(names):
        raise ValueError("duplicate tag names in TAGS")
    for tag in TAGS:
        unknown = set(tag.weights) - set(DETECTOR_NAMES)
        if unknown:
            raise ValueError(f"tag {tag.name!r} weights unknown detectors {sorted(unknown)}")
    categories = [t.category for t in TAGS]
    # Consumers index ratings as the first rows and assume general before character, like kohya does.
    if categories[:4] != [TagCategory.RATING] * 4 or TagCategory.RATING in categories[4:]:
        raise ValueError("TAGS must start with exactly the 4 rating rows")
    if categories[4:] != sorted(categories[4:]):
        raise ValueError("general tags must come before character tags")


_check_tables()


# The graph uses ONNX HardSigmoid with its default alpha 0.2 / beta 0.5: clip(0.2 z + 0.5, 0, 1). It is plain
# float32 arithmetic, whereas onnxruntime approximates a per-pixel Sigmoid (~2e-6 off once pooled); with it the
# numpy reference matches onnxruntime to ~5e-7 instead of ~6e-6.
_HARD_SIGMOID_ALPHA = 0.2
_HARD_SIGMOID_BETA = 0.5


def detector_matrix() -> tuple[np.ndarray, np.ndarray]:
    """Conv weights [K, 3] over (B, G, R) and biases [K], float32, such that HardSigmoid(z) is the 0..1 ramp."""
    rows, biases = [], []
    for d in DETECTORS:
        # 0.2 z + 0.5 = (test - low) / (high - low)  =>  z = gain * test + offset
        gain = 1.0 / (_HARD_SIGMOID_ALPHA * (d.high - d.low))
        rows.append([gain * d.blue, gain * d.green, gain * d.red])
        biases.append(-gain * d.low - _HARD_SIGMOID_BETA / _HARD_SIGMOID_ALPHA)
    return np.array(rows, dtype=np.float32), np.array(biases, dtype=np.float32)


def tag_matrix() -> tuple[np.ndarray, np.ndarray]:
    """Tag weights [K, N] (detector fraction -> logit) and biases [N], float32, columns in TAGS order."""
    weights = np.zeros((len(DETECTORS), len(TAGS)), dtype=np.float32)
    for column, tag in enumerate(TAGS):
        for detector, weight in tag.weights.items():
            weights[DETECTOR_NAMES.index(detector), column] = weight
    biases = np.array([t.bias for t in TAGS], dtype=np.float32)
    return weights, biases


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def reference_features(bgr_image_batch: np.ndarray) -> np.ndarray:
    """Detector fractions [batch, K] for NHWC BGR images in 0..255, exactly what the graph pools."""
    images = np.asarray(bgr_image_batch)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected NHWC images with 3 channels, got shape {images.shape}")
    weights, biases = detector_matrix()
    weights64 = weights.T.astype(np.float64)
    fractions = np.empty((images.shape[0], len(DETECTORS)), dtype=np.float64)
    # One image at a time keeps the float64 working set to a few tens of MB for any batch.
    for index, image in enumerate(images):
        z = (image.astype(np.float64) / 127.5 - 1.0) @ weights64 + biases
        fractions[index] = np.clip(_HARD_SIGMOID_ALPHA * z + _HARD_SIGMOID_BETA, 0.0, 1.0).mean(axis=(0, 1))
    return fractions


def reference_probabilities(bgr_image_batch: np.ndarray) -> np.ndarray:
    """Tag probabilities [batch, N] (float32, TAGS order) that model.onnx computes for the same input."""
    weights, biases = tag_matrix()
    logits = reference_features(bgr_image_batch) @ weights.astype(np.float64) + biases
    return _sigmoid(logits).astype(np.float32)


def build_tiny_tagger(out_dir: Path, layout: Layout = "v3", side: int = DEFAULT_SIDE) -> Path:
    """Write model.onnx and selected_tags.csv into out_dir (created if needed) and return out_dir.

    layout "v3": input "input" [batch_size, side, side, 3], output "output" [batch_size, N] (dynamic batch).
    layout "v2": input "input_1:0" [1, side, side, 3], output "predictions_sigmoid" [1, N] (v2.0 export names).
    """
    if layout not in ("v3", "v2"):
        raise ValueError(f"layout must be 'v3' or 'v2', got {layout!r}")
    if side < 1:
        raise ValueError(f"side must be positive, got {side}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_FILENAME).write_bytes(model_bytes(layout, side))
    write_selected_tags(out_dir / TAGS_FILENAME)
    return out_dir


def write_selected_tags(path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for tag in TAGS:
            writer.writerow((tag.tag_id, tag.name, int(tag.category), tag.count))


# --- ONNX graph ------------------------------------------------------------------------------

_IR_VERSION = 8  # loads on onnxruntime >= 1.14; real v3 taggers need >= 1.17 anyway
_OPSET = 17
_PRODUCER = "loratui-demo"
_GRAPH_NAME = "loratui_tiny_wd14_tagger"


@dataclass(frozen=True)
class _Node:
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    ints: dict[str, int] = field(default_factory=dict)
    int_lists: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _io_names(layout: Layout) -> tuple[str, str, int | str]:
    if layout == "v2":
        return "input_1:0", "predictions_sigmoid", 1
    return "input", "output", "batch_size"


def model_bytes(layout: Layout = "v3", side: int = DEFAULT_SIDE) -> bytes:
    """The serialised ModelProto. Written by hand so the runtime needs onnxruntime but not the onnx package."""
    input_name, output_name, batch = _io_names(layout)
    det_w, det_b = detector_matrix()
    tag_w, tag_b = tag_matrix()
    initializers = (
        ("scale", np.array(1.0 / 127.5, dtype=np.float32)),
        ("shift", np.array(-1.0, dtype=np.float32)),
        ("detector_w", det_w.reshape(len(DETECTORS), 3, 1, 1)),
        ("detector_b", det_b),
        ("tag_w", tag_w),
        ("tag_b", tag_b),
    )
    # WD14 graphs take NHWC BGR 0..255 and scale inside the graph; this one does the same.
    nodes = (
        _Node("Transpose", (input_name,), ("nchw",), int_lists={"perm": (0, 3, 1, 2)}),
        _Node("Mul", ("nchw", "scale"), ("scaled",)),
        _Node("Add", ("scaled", "shift"), ("normalised",)),
        _Node("Conv", ("normalised", "detector_w", "detector_b"), ("detector_logits",),
              int_lists={"kernel_shape": (1, 1)}),
        _Node("HardSigmoid", ("detector_logits",), ("detector_maps",)),
        _Node("GlobalAveragePool", ("detector_maps",), ("pooled",)),
        _Node("Flatten", ("pooled",), ("fractions",), ints={"axis": 1}),
        _Node("Gemm", ("fractions", "tag_w", "tag_b"), ("tag_logits",)),
        _Node("Sigmoid", ("tag_logits",), (output_name,)),
    )
    graph = _graph(
        nodes,
        initializers,
        inputs=((input_name, (batch, side, side, 3)),),
        outputs=((output_name, (batch, len(TAGS))),),
    )
    opset = string_field(1, "") + varint_field(2, _OPSET)
    # Fields go out in field-number order, as protobuf's own serialiser does, so the bytes are canonical.
    return (
        varint_field(1, _IR_VERSION)
        + string_field(2, _PRODUCER)
        + bytes_field(7, graph)
        + bytes_field(8, opset)
    )


def _graph(
    nodes: tuple[_Node, ...],
    initializers: tuple[tuple[str, np.ndarray], ...],
    inputs: tuple[tuple[str, tuple[int | str, ...]], ...],
    outputs: tuple[tuple[str, tuple[int | str, ...]], ...],
) -> bytes:
    body = b"".join(bytes_field(1, _node(node, index)) for index, node in enumerate(nodes))
    body += string_field(2, _GRAPH_NAME)
    body += b"".join(bytes_field(5, _float_tensor(name, array)) for name, array in initializers)
    body += b"".join(bytes_field(11, _value_info(name, shape)) for name, shape in inputs)
    body += b"".join(bytes_field(12, _value_info(name, shape)) for name, shape in outputs)
    return body


def _node(node: _Node, index: int) -> bytes:
    body = b"".join(string_field(1, name) for name in node.inputs)
    body += b"".join(string_field(2, name) for name in node.outputs)
    body += string_field(3, f"{node.op_type.lower()}_{index}")
    body += string_field(4, node.op_type)
    body += b"".join(bytes_field(5, _int_attribute(name, value)) for name, value in node.ints.items())
    body += b"".join(bytes_field(5, _ints_attribute(name, values)) for name, values in node.int_lists.items())
    return body


_ATTRIBUTE_INT = 2
_ATTRIBUTE_INTS = 7
_TENSOR_FLOAT = 1


def _int_attribute(name: str, value: int) -> bytes:
    return string_field(1, name) + varint_field(3, value) + varint_field(20, _ATTRIBUTE_INT)


def _ints_attribute(name: str, values: tuple[int, ...]) -> bytes:
    return string_field(1, name) + b"".join(varint_field(8, v) for v in values) + varint_field(20, _ATTRIBUTE_INTS)


def _float_tensor(name: str, array: np.ndarray) -> bytes:
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    body = b"".join(varint_field(1, dim) for dim in array.shape)
    return body + varint_field(2, _TENSOR_FLOAT) + string_field(8, name) + bytes_field(9, data)


def _value_info(name: str, shape: tuple[int | str, ...]) -> bytes:
    dims = b"".join(
        bytes_field(1, string_field(2, dim) if isinstance(dim, str) else varint_field(1, dim)) for dim in shape
    )
    tensor_type = varint_field(1, _TENSOR_FLOAT) + bytes_field(2, dims)
    return string_field(1, name) + bytes_field(2, bytes_field(1, tensor_type))
