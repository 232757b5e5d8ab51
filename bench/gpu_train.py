"""Training speed and peak VRAM of `loratui train`'s loop on full-size SD1.5 and SDXL (random weights), on a GPU.

usage: python bench/gpu_train.py [--steps N] [--families sd15,sdxl] [--tiny]
Each family's model is built from the config folders loratui ships (public architecture numbers, random weights),
saved as a diffusers folder, and trained through `run_training` on a few generated pictures at the family's
resolution, batch 1, in several variants (precision, gradient checkpointing, optimizer). Pictures/s is measured
over the steps after the first few (warm-up); peak VRAM is torch's max allocated memory during the run.
Goals (issue 4): SD1.5 <= 6 GB at 512 px, SDXL <= 12 GB at 1024 px. `--tiny` runs the same path on the tiny demo
model on a CPU, to check the script itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

VARIANTS = (  # label, mixed_precision, gradient_checkpointing, optimizer
    ("fp16", "fp16", False, "AdamW"),
    ("bf16", "bf16", False, "AdamW"),
    ("bf16 + grad ckpt", "bf16", True, "AdamW"),
    ("bf16 + grad ckpt + AdamW8bit", "bf16", True, "AdamW8bit"),
)
RESOLUTION = {"sd15": 512, "sdxl": 1024, "tiny": 64}


def build_model(family: str, folder: Path) -> Path:
    """A full-size pipeline with random weights from loratui's bundled config folder, saved in fp16."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from loratui.training.config_folders import bundled_config_dir

    source = bundled_config_dir(family)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        parts = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(source / "unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(source / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(source / "text_encoder")),
        }
        if family == "sdxl":
            parts["text_encoder_2"] = CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(source / "text_encoder_2"))
    parts = {name: model.to(torch.float16) for name, model in parts.items()}
    parts["tokenizer"] = CLIPTokenizer.from_pretrained(source / "tokenizer")
    parts["scheduler"] = DDPMScheduler.from_pretrained(source / "scheduler")
    if family == "sdxl":
        from diffusers import StableDiffusionXLPipeline

        parts["tokenizer_2"] = CLIPTokenizer.from_pretrained(source / "tokenizer_2")
        pipe = StableDiffusionXLPipeline(**parts, add_watermarker=False)
    else:
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe.save_pretrained(folder)
    del pipe, parts
    return folder


def make_project(root: Path, base_model: Path, family: str, pictures: int = 6):
    import numpy as np
    from PIL import Image

    from loratui.dataset.captions import write_caption
    from loratui.project import create_project

    source = root / "pictures"
    source.mkdir(parents=True)
    project, config = create_project(root / "project", source, "hero", repeats=1, base_model=str(base_model))
    side = RESOLUTION[family]
    folder = project.concept_dir(config.concepts[0])
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(pictures):  # written straight into the dataset: this measures training, not prepare
        pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")
        write_caption(folder / f"{index}.txt", ["hero", "1girl", "smile"])
    d, t = config.dataset, config.training
    d.resolution, d.crop = side, "center"
    d.min_bucket_reso, d.max_bucket_reso = min(256, side), max(1024, side)
    t.batch_size, t.epochs, t.save_every_n_epochs = 1, 1000, 0
    t.train_text_encoder = family != "sdxl"
    t.cache_latents = "memory"
    project.save(config)
    return project, config


def run_variant(project, config, label: str, precision: str, checkpointing: bool, optimizer: str, steps: int):
    import torch

    from loratui.jobs.events import Step
    from loratui.jobs.runner import job
    from loratui.training.loop import run_training

    config.training.mixed_precision = precision
    config.training.gradient_checkpointing = checkpointing
    config.training.optimizer = optimizer
    times: list[float] = []
    last = [time.perf_counter()]

    def on_step(step: int, total: int, loss: float) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        with job(project, "train") as handle:  # the run joins this job; its step events reach the listener
            handle.listen(lambda event: isinstance(event, Step) and on_step(event.step, steps, event.loss))
            run_training(project, config, max_steps=steps)
    except Exception as exc:  # one variant failing (e.g. no bitsandbytes) must not hide the others
        return label, None, None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    steady = times[min(5, len(times) - 1):]
    return label, 1 / statistics.median(steady), peak, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--families", default="sd15,sdxl")
    parser.add_argument("--tiny", action="store_true", help="check the script on the tiny demo model (CPU)")
    args = parser.parse_args()
    from loratui.hf_logging import quiet_hf_libraries

    quiet_hf_libraries()
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"device: {device}; torch {torch.__version__}; {args.steps} steps per variant, batch 1", flush=True)
    families = ["tiny"] if args.tiny else args.families.split(",")
    print(f"{'family':<6} {'px':>5} {'variant':<30} {'pictures/s':>10} {'peak VRAM GB':>13}", flush=True)
    for family in families:
        with tempfile.TemporaryDirectory(prefix=f"loratui-gpu-{family}-") as tmp:
            started = time.perf_counter()
            if family == "tiny":
                from loratui.demo.sd_models import build_tiny_sd15

                model = build_tiny_sd15(Path(tmp) / "model")
            else:
                model = build_model(family, Path(tmp) / "model")
            print(f"  ({family} model built in {time.perf_counter() - started:.0f} s)", flush=True)
            project, config = make_project(Path(tmp), model, family)
            for label, precision, checkpointing, optimizer in VARIANTS:
                if family == "tiny" and precision != "fp16":
                    continue
                name, speed, peak, error = run_variant(project, config, label, "no" if family == "tiny" else precision,
                                                       checkpointing, optimizer, args.steps)
                shown = f"{speed:10.2f}" if speed else f"{'-':>10}"
                vram = f"{peak:13.2f}" if peak is not None else f"{'-':>13}"
                print(f"{family:<6} {RESOLUTION[family]:>5} {name:<30} {shown} {vram}  {error}", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
