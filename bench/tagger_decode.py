"""What the tagger's fast decode changes: its input and its tag probabilities, exact decode vs fast decode.

usage: .venv/bin/python bench/tagger_decode.py [--count 50] [--runs 3] [--workdir DIR] [--no-large]

The pictures: half photo-like (smooth gradients, shapes with hard edges, lines, sensor-like noise), half drawings
of the demo character (loratui/demo/images.py, scaled to cover the frame), all saved as 1000x1500 JPEG quality 90.
Each picture is decoded both ways (tagger_input.preprocess_file, ``fast`` off and on) and run through:

* the demo tagger (loratui/demo/tagger_model.py: its tags depend on the picture's mean colours only);
* a WD14-sized network of random weights: a ResNet-50 (bottleneck blocks 3-4-6-3, 23.5 M conv parameters, 16 GFLOPs
  at 448 px) with WD14's contract (448x448 BGR 0..255 NHWC in, x/127.5-1 inside the graph, 10,861 sigmoid outputs
  laid out as in selected_tags.csv v3: 4 ratings, 8,106 general, 2,751 character), exported with torch.onnx. Its
  BatchNorm statistics are set from the pictures' exact inputs and each tag's logit is scaled so that it spreads
  like a trained tagger's across pictures (sd 1.5 around a bias drawn from N(-4, 1.5)): random weights alone give
  logits that sit far from any threshold, which would hide every shift.

Printed: mean/max |fast - exact| of the model input (0..255), the largest and 99th-percentile per-tag probability
shift, how many (picture, general tag) pairs land on different sides of the 0.35 threshold, and the speed of both
decodes (one thread, runs taking turns in this process) with their ratio. A control row compares the exact decode
with the same decode through an area filter (kohya's resize): random weights are far touchier than a trained
tagger, and the control shows by how much.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from loratui.dataset.tagger import Tagger
from loratui.dataset.tagger_input import flatten_on_white, open_upright, preprocess_file, to_model_input
from loratui.dataset.tagger_models import resolve_model
from loratui.demo.images import build_demo_images
from loratui.demo.tagger_model import build_tiny_tagger

SIZE = (1000, 1500)
SIDE = 448
GENERAL_THRESHOLD = 0.35
RATINGS, GENERAL, CHARACTER = 4, 8106, 2751  # WD v3's selected_tags.csv


# --- the pictures ----------------------------------------------------------------------------------------------


def photo_like(rng: np.random.Generator) -> Image.Image:
    """A gradient sky/ground, soft blobs, hard-edged shapes and thin lines, then sensor-like noise."""
    width, height = SIZE
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (yy / height)[..., None]
    base = top * (1 - t) + bottom * t + 40 * np.sin(xx / rng.uniform(80, 400))[..., None]
    for _ in range(4):  # soft blobs (out-of-focus light)
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(80, 400)
        weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        base = base * (1 - weight) + rng.uniform(0, 255, 3) * weight
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 10))):  # hard edges: what draft decoding and resampling treat differently
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        box = (x0, y0, x0 + rng.uniform(40, 500), y0 + rng.uniform(40, 500))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colour)
    for _ in range(int(rng.integers(5, 20))):
        points = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(2)]
        draw.line(points, fill=tuple(int(c) for c in rng.integers(0, 256, 3)), width=int(rng.integers(1, 6)))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(2, 10), (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def cover(image: Image.Image) -> Image.Image:
    """Scale to cover SIZE and centre-crop, so a drawing of any shape becomes a 1000x1500 picture."""
    width, height = SIZE
    scale = max(width / image.width, height / image.height)
    scaled = image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)),
                                         Image.Resampling.LANCZOS)
    left, top = (scaled.width - width) // 2, (scaled.height - height) // 2
    return scaled.crop((left, top, left + width, top + height))


def make_pictures(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    drawings = build_demo_images(folder / "demo", count=count // 2, seed=1)
    paths = []
    for index in range(count):
        if index % 2 == 0:
            picture = photo_like(rng)
        else:
            with Image.open(drawings[index // 2].path) as drawn:
                picture = cover(drawn)
        path = folder / f"pic{index:03d}.jpg"
        picture.save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


# --- a WD14-sized network of random weights --------------------------------------------------------------------


def build_large_tagger(out_dir: Path, exact_inputs: np.ndarray, seed: int = 0) -> Path:
    """A ResNet-50 with WD14's contract, calibrated on ``exact_inputs`` (N, 448, 448, 3 BGR 0..255); see the
    module docstring. Written as out_dir/model.onnx + selected_tags.csv."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Bottleneck(nn.Module):
        def __init__(self, inputs: int, width: int, stride: int) -> None:
            super().__init__()
            out = width * 4
            self.body = nn.Sequential(
                nn.Conv2d(inputs, width, 1, bias=False), nn.BatchNorm2d(width, momentum=None), nn.ReLU(),
                nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width, momentum=None), nn.ReLU(),
                nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out, momentum=None))
            self.skip = nn.Identity() if stride == 1 and inputs == out else nn.Sequential(
                nn.Conv2d(inputs, out, 1, stride, bias=False), nn.BatchNorm2d(out, momentum=None))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.body(x) + self.skip(x))

    class Backbone(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64, momentum=None),
                                       nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
            inputs = 64
            for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
                for block in range(blocks):
                    layers.append(Bottleneck(inputs, width, 2 if block == 0 and stage > 0 else 1))
                    inputs = width * 4
            self.features = nn.Sequential(*layers)

        def forward(self, nhwc_bgr: torch.Tensor) -> torch.Tensor:
            x = nhwc_bgr.permute(0, 3, 1, 2) / 127.5 - 1.0  # WD14 graphs scale inside; the caller feeds 0..255
            return self.features(x).mean(dim=(2, 3))

    class WD14Like(nn.Module):
        def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
            super().__init__()
            self.backbone, self.head = backbone, head

        def forward(self, nhwc_bgr: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.head(self.backbone(nhwc_bgr)))

    backbone = Backbone()
    calibration = torch.from_numpy(exact_inputs)
    with torch.no_grad():
        backbone.train()  # momentum=None: the running statistics become the average over these batches
        for start in range(0, len(calibration), 8):
            backbone(calibration[start:start + 8])
        backbone.eval()
        features = torch.cat([backbone(calibration[s:s + 8]) for s in range(0, len(calibration), 8)])
        tags = RATINGS + GENERAL + CHARACTER
        weight = torch.randn(tags, features.shape[1])
        logits = features @ weight.T
        mean, spread = logits.mean(0), logits.std(0).clamp_min(1e-6)
        bias = torch.randn(tags) * 1.5 - 4.0
        head = nn.Linear(features.shape[1], tags)
        head.weight.copy_(weight * (1.5 / spread)[:, None])
        head.bias.copy_(bias - 1.5 * mean / spread)
    model = WD14Like(backbone, head).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (calibration[:1],), str(out_dir / "model.onnx"), input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      opset_version=17, dynamo=False)
    with open(out_dir / "selected_tags.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tag_id", "name", "category", "count"])
        for index, name in enumerate(("general", "sensitive", "questionable", "explicit")):
            writer.writerow([9999999 - index, name, 9, 0])
        for index in range(GENERAL):
            writer.writerow([index, f"tag_{index}", 0, 0])
        for index in range(CHARACTER):
            writer.writerow([100000 + index, f"character_{index}", 4, 0])
    return out_dir


# --- measuring -------------------------------------------------------------------------------------------------


def decode_all(paths: list[Path], fast: bool) -> np.ndarray:
    return np.stack([preprocess_file(p, SIDE, fast=fast) for p in paths])


def decode_area(paths: list[Path]) -> np.ndarray:
    """The exact decode with an area (box) filter instead of BICUBIC, as kohya's script resizes (cv2 INTER_AREA):
    a change two reference tools disagree on, which a trained tagger shrugs off (WD14 trained on random filters).
    The control row: how touchy the network is to a change that should not matter."""
    arrays = []
    for path in paths:
        rgb = flatten_on_white(open_upright(path))
        long_side = max(rgb.size)
        square = Image.new("RGB", (long_side, long_side), (255, 255, 255))
        square.paste(rgb, ((long_side - rgb.width) // 2, (long_side - rgb.height) // 2))
        arrays.append(to_model_input(square.resize((SIDE, SIDE), Image.Resampling.BOX)))
    return np.stack(arrays)


def decode_rates(paths: list[Path], runs: int) -> tuple[float, float]:
    """Median pictures/s of the exact and the fast decode on one thread, runs taking turns."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for fast in (False, True):
            started = time.perf_counter()
            for path in paths:
                preprocess_file(path, SIDE, fast=fast)
            rates[fast].append(len(paths) / (time.perf_counter() - started))
    return statistics.median(rates[False]), statistics.median(rates[True])


def probabilities(tagger: Tagger, batch: np.ndarray) -> np.ndarray:
    size = tagger.batch_size_for(8)
    return np.concatenate([tagger.probabilities(batch[s:s + size]) for s in range(0, len(batch), size)])


def shifts(tagger: Tagger, exact: np.ndarray, fast: np.ndarray) -> tuple[float, float, int, int]:
    """Max and 99th-percentile |p_fast - p_exact| over every (picture, tag); general tags across the threshold;
    general tags above it (exact path), for scale."""
    p_exact, p_fast = probabilities(tagger, exact), probabilities(tagger, fast)
    shift = np.abs(p_fast - p_exact)
    general = tagger.labels.general
    crossed = int(((p_exact[:, general] > GENERAL_THRESHOLD) != (p_fast[:, general] > GENERAL_THRESHOLD)).sum())
    above = int((p_exact[:, general] > GENERAL_THRESHOLD).sum())
    return float(shift.max()), float(np.percentile(shift, 99)), crossed, above


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50, help="pictures (half photo-like, half drawings)")
    parser.add_argument("--runs", type=int, default=3, help="decode runs per path for the speed (median shown)")
    parser.add_argument("--workdir", type=Path, help="where to write pictures and models (default: a temp folder)")
    parser.add_argument("--no-large", action="store_true", help="skip the WD14-sized network (minutes on a CPU)")
    args = parser.parse_args()
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="loratui-tagger-decode-") as scratch:
        work = args.workdir or Path(scratch)
        paths = make_pictures(work / "pictures", args.count)
        exact, fast, area = decode_all(paths, False), decode_all(paths, True), decode_area(paths)
        difference = np.abs(fast - exact)
        exact_rate, fast_rate = decode_rates(paths, args.runs)
        taggers = [("demo tagger (tiny, mean colours)",
                    Tagger.load(resolve_model(str(build_tiny_tagger(work / "tiny")))))]
        if not args.no_large:
            taggers.append(("ResNet-50, random weights, 10861 tags",
                            Tagger.load(resolve_model(str(build_large_tagger(work / "large", exact))))))
        print(f"{os.cpu_count()} CPU cores; onnxruntime {onnxruntime.__version__}; {len(paths)} pictures "
              f"{SIZE[0]}x{SIZE[1]} JPEG q90 (half photo-like, half drawings); side {SIDE}")
        print(f"input |fast - exact| (0..255): mean {difference.mean():.2f}, 99th percentile "
              f"{np.percentile(difference, 99):.1f}, max {difference.max():.0f}")
        print(f"decode, 1 thread: exact {exact_rate:.1f} pictures/s, fast {fast_rate:.1f} pictures/s, "
              f"fast / exact {fast_rate / exact_rate:.2f}")
        print(f"control, exact vs area filter: mean |diff| {np.abs(area - exact).mean():.2f}, max "
              f"{np.abs(area - exact).max():.0f}")
        print(f"| model | compared with exact | max prob shift | 99th pct shift | general tags across "
              f"{GENERAL_THRESHOLD} | general tags above it (exact) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, tagger in taggers:
            for label, other in (("fast decode", fast), ("control: area filter", area)):
                worst, p99, crossed, above = shifts(tagger, exact, other)
                print(f"| {name} | {label} | {worst:.4f} | {p99:.5f} | {crossed} | {above} |")


if __name__ == "__main__":
    main()
