"""Tagger speed: WD14 preprocessing (exact reference vs JPEG draft + worker threads) and end-to-end tagging.

usage: .venv/bin/python bench/tagger_bench.py [--runs N] [--count N] [--workdir DIR]
Every figure comes from N runs made in this process, the rows taking turns, and each row is compared with the
exact, single-threaded reference of the same runs (the ratio is what to read on a noisy VM). The issue's goal: at least
40 pictures/s of preprocessing on a 2-core machine, so decoding never starves a GPU tagger.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from loratui.config import TaggingSettings
from loratui.dataset.tagger import Tagger, tag_images
from loratui.dataset.tagger_input import (
    default_workers,
    open_upright,
    preprocess_exact,
    preprocess_file,
    preprocess_files,
)
from loratui.dataset.tagger_models import resolve_model
from loratui.demo.tagger_model import build_tiny_tagger

SETS = (  # label, (width, height), format
    ("photo 2000x3000 JPEG", (2000, 3000), "JPEG"),
    ("photo 1024x1536 JPEG", (1024, 1536), "JPEG"),
    ("prepared 512x512 PNG", (512, 512), "PNG"),
)


def photo_like(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Smooth gradients, a few shapes and sensor-like noise: decodes like a photo, unlike flat colour or pure noise."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 255 / (width + height)], -1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.05, 0.3) * min(size)
        base[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    noisy = base + rng.normal(0, 6, size=base.shape).astype(np.float32)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def make_set(folder: Path, size: tuple[int, int], fmt: str, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    template = photo_like(size, rng)
    paths = []
    for index in range(count):
        # Different bytes per file (a shifted copy) so no decode is served from a cache; cheap to make.
        picture = Image.fromarray(np.roll(np.asarray(template), index * 37, axis=1))
        path = folder / f"img{index:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"
        picture.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        paths.append(path)
    return paths


def median_rate(work: Callable[[], object], count: int, runs: int) -> float:
    """Median pictures/s of ``work`` (which handles ``count`` pictures) over ``runs`` runs; gpu_tagger_feed uses it."""
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def pipelines(paths: list[Path], tagger: Tagger) -> list[tuple[str, Callable[[], object]]]:
    side = tagger.side
    return [
        ("exact reference, 1 thread", lambda: [preprocess_exact(open_upright(p), side) for p in paths]),
        ("fast (draft + scale-then-pad), 1 thread", lambda: [preprocess_file(p, side) for p in paths]),
        (f"fast, {default_workers()} worker threads", lambda: list(preprocess_files(paths, side))),
        ("tag_images (fast, threads), batch 1", lambda: tag_images(paths, tagger, TaggingSettings(batch_size=1))),
        ("tag_images (fast, threads), batch 8", lambda: tag_images(paths, tagger, TaggingSettings(batch_size=8))),
    ]


def measure(rows: list[tuple[str, Callable[[], object]]], count: int, runs: int) -> list[list[float]]:
    """Pictures/s of every row, run after run in turn, so a burst of load on the VM hits all rows alike."""
    rates: list[list[float]] = [[] for _ in rows]
    for _ in range(runs):
        for index, (_, work) in enumerate(rows):
            started = time.perf_counter()
            work()
            rates[index].append(count / (time.perf_counter() - started))
    return rates


def difference(paths: list[Path], side: int) -> tuple[float, float]:
    """Mean and max |fast - exact| on 0..255, over a few pictures of the set."""
    diffs = [np.abs(preprocess_exact(open_upright(p), side) - preprocess_file(p, side)) for p in paths[:4]]
    return float(np.mean([d.mean() for d in diffs])), float(max(d.max() for d in diffs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median and best shown)")
    parser.add_argument("--count", type=int, default=24, help="pictures per set")
    parser.add_argument("--workdir", type=Path, help="where to write the pictures (default: a temporary folder)")
    args = parser.parse_args()
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="loratui-tagger-bench-") as scratch:
        work = args.workdir or Path(scratch)
        tagger = Tagger.load(resolve_model(str(build_tiny_tagger(work / "tiny-tagger"))))
        print(f"{os.cpu_count()} CPU cores; onnxruntime {onnxruntime.__version__} on {tagger.device}; tiny WD14 "
              f"tagger, side {tagger.side}; {args.count} pictures per set; {args.runs} runs per row")
        print(f"{'set':<22} {'pipeline':<40} {'median/s':>9} {'best/s':>7} {'x exact':>8}")
        for index, (label, size, fmt) in enumerate(SETS):
            paths = make_set(work / f"set{index}", size, fmt, args.count, seed=index)
            tag_images(paths[:8], tagger, TaggingSettings(batch_size=8))  # warm-up: page cache, session
            rows = pipelines(paths, tagger)
            rates = measure(rows, len(paths), args.runs)
            reference = statistics.median(rates[0])
            for (name, _), row_rates in zip(rows, rates, strict=True):
                median = statistics.median(row_rates)
                print(f"{label:<22} {name:<40} {median:>9.1f} {max(row_rates):>7.1f} {median / reference:>8.1f}")
            mean, worst = difference(paths, tagger.side)
            print(f"{label:<22} fast vs exact input: mean |diff| {mean:.2f}, max {worst:.0f} (of 255)")

if __name__ == "__main__":
    main()
