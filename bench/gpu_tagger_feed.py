"""Does WD14 preprocessing keep a GPU tagger fed? Decoding+preprocessing pictures/s vs a WD-sized model's GPU
pictures/s, measured in the same run on the same machine.

usage: python bench/gpu_tagger_feed.py [--count N] [--runs N]
The model half stands in for the real taggers with timm's architectures at WD v3's shape (448 px input, 10861
outputs, random weights): ViT-B/16 (wd-vit-tagger-v3) and ConvNeXt-B (wd-convnext-tagger-v3). It needs torch
with CUDA and timm (the lent GPU machine has both); elsewhere only the preprocessing half runs. The last column
says how many decoding threads' worth of pictures the GPU could eat: above 1, the GPU waits on decoding.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from tagger_bench import SETS, make_set, median_rate  # noqa: E402 (bench/ is not a package)

from loratui.dataset.tagger_input import preprocess_files  # noqa: E402

SIDE = 448
WD_V3_TAGS = 10861


def preprocessing_rates(paths: list[Path], runs: int) -> list[tuple[int, float]]:
    cores = os.cpu_count() or 1
    rates = []
    for workers in sorted({1, min(8, cores), cores}):
        def work(w: int = workers) -> None:
            for _ in preprocess_files(paths, SIDE, workers=w):
                pass

        rates.append((workers, median_rate(work, len(paths), runs)))
    return rates


def gpu_rates(batch: int = 32) -> list[tuple[str, float]]:
    try:
        import timm
        import torch
    except ImportError as exc:
        print(f"GPU half skipped: {exc}")
        return []
    if not torch.cuda.is_available():
        print("GPU half skipped: no CUDA device")
        return []
    rows = []
    for name, arch in (("ViT-B/16 @448", "vit_base_patch16_224"), ("ConvNeXt-B @448", "convnext_base")):
        kwargs = {"img_size": SIDE} if arch.startswith("vit") else {}
        model = timm.create_model(arch, pretrained=False, num_classes=WD_V3_TAGS, **kwargs).cuda().eval()
        x = torch.randn(batch, 3, SIDE, SIDE, device="cuda")
        for label, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
            with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                for _ in range(3):
                    model(x)
                torch.cuda.synchronize()
                started, steps = time.perf_counter(), 10
                for _ in range(steps):
                    model(x)
                torch.cuda.synchronize()
            rows.append((f"{name} {label} batch {batch}", steps * batch / (time.perf_counter() - started)))
        del model
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    gpu = gpu_rates()
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        device = "no torch"
    print(f"machine: {os.cpu_count()} CPU cores, {device}")
    for label, speed in gpu:
        print(f"  model {label:<34} {speed:8.0f} pictures/s")
    fastest_gpu = max((speed for _, speed in gpu), default=0.0)
    with tempfile.TemporaryDirectory(prefix="loratui-feed-") as tmp:
        for label, size, fmt in SETS:
            paths = make_set(Path(tmp) / label.split()[0] / str(size[0]), size, fmt, args.count, seed=1)
            for workers, rate in preprocessing_rates(paths, args.runs):
                hunger = f"{fastest_gpu / rate:8.1f}" if fastest_gpu else "     n/a"
                print(f"  preprocess {label:<22} {workers:2d} threads {rate:8.1f} pictures/s   GPU/feed {hunger}")


if __name__ == "__main__":
    main()
