"""Speed of `prepare` (focal crop at 512 px) on 50 photo-like 2000x3000 JPEGs, against a plain loop in the same run.

usage: .venv/bin/python bench/prepare_bench.py [--count 50] [--resolution 512] [--workdir DIR] [--workers N ...]

The reference is what a short script would do: open, centre-crop, resize (Lanczos), save PNG, one file after the
other. prepare does more per picture (face search with animeface and the Haar cascades, corners, saliency, a
perceptual hash, atomic writes) and less decoding (JPEG draft). The re-run with nothing changed shows the cost
of the incremental check. Pictures are generated once per work folder (deterministic) and reused.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from loratui.dataset.prepare import default_workers, prepare_project
from loratui.project import Project, create_project

WIDTH, HEIGHT = 2000, 3000


def photo(seed: int) -> Image.Image:
    """Smooth coloured noise with grain, a few shapes, and a person with a face-like head somewhere."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 220, (12, 8, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    grain = rng.normal(0, 10, (HEIGHT // 4, WIDTH // 4, 1)).astype(np.int16)
    pixels = np.asarray(image, dtype=np.int16) + np.kron(grain, np.ones((4, 4, 1), dtype=np.int16))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        w, h = rng.uniform(100, 700, 2)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + w, y + h), fill=colour)
    r = rng.uniform(140, 260)
    cx, cy = rng.uniform(r * 2, WIDTH - r * 2), rng.uniform(r * 1.5, HEIGHT * 0.6)
    draw.rectangle((cx - r * 2, cy + r * 1.6, cx + r * 2, HEIGHT), fill=(40, 70, 140))
    draw.ellipse((cx - r * 1.1, cy - r * 1.45, cx + r * 1.1, cy + r * 0.6), fill=(60, 40, 30))
    draw.ellipse((cx - r, cy - r * 1.25, cx + r, cy + r * 1.25), fill=(224, 180, 150))
    for side in (-1, 1):
        ex, ey = cx + side * r * 0.4, cy - r * 0.2
        draw.ellipse((ex - r * 0.2, ey - r * 0.09, ex + r * 0.2, ey + r * 0.09), fill=(240, 240, 240))
        draw.ellipse((ex - r * 0.08, ey - r * 0.08, ex + r * 0.08, ey + r * 0.08), fill=(50, 35, 25))
    draw.polygon([(cx, cy - r * 0.05), (cx - r * 0.12, cy + r * 0.35), (cx + r * 0.12, cy + r * 0.35)],
                 fill=(200, 150, 125))
    draw.ellipse((cx - r * 0.32, cy + r * 0.55, cx + r * 0.32, cy + r * 0.72), fill=(170, 80, 80))
    return image.filter(ImageFilter.BoxBlur(1))


def make_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"photo_{index + 1:03d}.jpg"
        if not path.exists():
            photo(index).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def reference_loop(paths: list[Path], out: Path, resolution: int) -> float:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        side = min(rgb.size)
        left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
        rgb.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.Resampling.LANCZOS) \
            .save(out / f"{path.stem}.png")
    return time.perf_counter() - start


def timed_prepare(project: Project, workers: int, force: bool) -> tuple[float, int, dict]:
    start = time.perf_counter()
    result = prepare_project(project, workers=workers, force=force)
    return time.perf_counter() - start, result.outcome.done, dict(result.methods())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--workdir", type=Path, help="keep the generated photos here (default: a temp folder)")
    parser.add_argument("--workers", type=int, nargs="*", help=f"worker counts to time (default: 1 and "
                                                                f"{default_workers()})")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="loratui-prepare-bench-"))
    photos = make_photos(workdir / "photos", args.count)
    print(f"{len(photos)} photos of {WIDTH}x{HEIGHT} in {workdir / 'photos'}; focal crop at {args.resolution} px")

    reference = reference_loop(photos, workdir / "reference", args.resolution)
    rows = [("reference loop (decode, centre crop, resize, PNG)", reference, len(photos), "")]
    project_dir = workdir / "project"
    shutil.rmtree(project_dir, ignore_errors=True)
    project, config = create_project(project_dir, workdir / "photos", "bench")
    config.dataset.resolution, config.dataset.crop = args.resolution, "focal"
    project.save(config)
    for workers in args.workers or sorted({1, default_workers()}):
        seconds, done, methods = timed_prepare(project, workers, force=True)
        found = ", ".join(f"{count} {method}" for method, count in sorted(methods.items()))
        rows.append((f"prepare focal, {workers} worker{'s' if workers != 1 else ''}", seconds, done, found))
    seconds, done, _ = timed_prepare(project, default_workers(), force=False)
    rows.append(("prepare re-run, nothing changed", seconds, len(photos), f"{done} redone"))

    print(f"{'':52} {'seconds':>8} {'images/s':>9} {'x reference':>12}")
    for label, seconds, count, note in rows:
        print(f"{label:52} {seconds:8.2f} {count / seconds:9.1f} {seconds / reference:12.2f}  {note}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
