"""Per-step overhead of loratui's training loop against a minimal plain-torch loop doing the same math.

usage: python bench/train_overhead.py [--steps 40] [--warmup 10] [--rounds 2]

Both loops train the demo project (tiny SD1.5 single file, 24 prepared pictures at 128 px, batch 2, LoRA rank 4
on kohya's UNet + text encoder targets, AdamW, unet_lr 1e-3, te_lr 1e-4, clip_skip 2, max_grad_norm 1, latents
cached in memory, precision "no") on the same device with the same seed:

* loratui: `run_training(project, config, max_steps=N)` in a job whose step events a listener times (accelerate,
  events, caption processing);
* reference: load the same model, add the same LoRA, cache the same latents, then per step: tokenize the captions,
  text-encode (layer -clip_skip through the final layer norm), noise + timesteps, UNet forward, MSE loss,
  backward, clip grad norm, AdamW step, zero_grad; nothing else.

s/step is the time between successive optimizer steps (loratui's `step` events, as a listener sees them), the
first `--warmup` steps left out; the final LoRA file is written after the last callback, so it is never timed.
The loops run alternately (ref, loratui, ref, loratui, ...) and the medians over all timed steps are compared.
Goal (issue 4 item 10): loratui / reference <= 1.05. This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

GOAL = 1.05


def make_project(root: Path):
    """The demo project, prepared and tagged, with per-epoch checkpoints off."""
    from loratui.dataset.prepare import prepare_project
    from loratui.dataset.tagger import tag_dataset
    from loratui.demo.build import build_demo_project

    project = build_demo_project(root).project
    prepare_project(project)
    tag_dataset(project, project.load())
    config = project.load()
    config.training.save_every_n_epochs = 0
    config.training.save_state = False
    project.save(config)
    return project, config


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_loratui(project, config, steps: int) -> list[float]:
    """Seconds between successive optimizer steps of `run_training`."""
    from loratui.jobs.events import Step
    from loratui.jobs.runner import job
    from loratui.training.loop import run_training

    stamps: list[float] = []

    def on_step(step: int, total: int, loss: float) -> None:
        _sync()
        stamps.append(time.perf_counter())

    with job(project, "train") as handle:  # the run joins this job; its step events reach the listener
        handle.listen(lambda event: isinstance(event, Step) and on_step(event.step, steps, event.loss))
        run_training(project, config, max_steps=steps)
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def run_reference(project, config, steps: int) -> list[float]:
    """The minimal loop: same model, LoRA, optimizer, latents and per-step math, in plain torch."""
    import random

    import torch
    import torch.nn.functional as F  # noqa: N812 (torch's own convention)

    from loratui.lora.file import add_lora_adapters
    from loratui.lora.keys import UNET
    from loratui.training.data import TrainDataset, load_pixels
    from loratui.training.loop import resolve_mixed_precision
    from loratui.training.models import load_base_model

    t = config.training
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_mixed_precision(t.mixed_precision)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    torch.manual_seed(t.seed)
    random.seed(t.seed)

    model = load_base_model(config, project.root, device="cpu")
    model.vae.to(device, dtype)
    unet, encoder, tokenizer = model.unet, model.text_encoders[0], model.tokenizers[0]
    unet.to(device, dtype)
    encoder.to(device, dtype)
    train_te = t.train_text_encoder and t.text_encoder_lr > 0
    network = add_lora_adapters(model.pipeline, t.network_dim, t.network_alpha, text_encoders=train_te)
    groups = [{"params": network.parameters(UNET), "lr": t.unet_lr}]
    groups += [{"params": network.parameters(c), "lr": t.text_encoder_lr} for c in network.models if c != UNET]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    params = [p for g in groups for p in g["params"]]
    unet.train()
    encoder.train(train_te)

    # The same pictures at the same size (loratui's bucket placement), encoded once.
    dataset = TrainDataset.from_project(project, config)
    latents = []
    with torch.no_grad():
        for picture in dataset.pictures:
            pixels = load_pixels(picture).unsqueeze(0).to(device, dtype)
            latents.append(model.vae.encode(pixels).latent_dist.sample().float()[0])
    captions = [", ".join(picture.tags) for picture in dataset.pictures]
    latents_all = torch.stack(latents) * model.vae.config.scaling_factor
    scheduler = model.noise_scheduler
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype != torch.float32
                else torch.autocast(device.type, enabled=False))

    stamps: list[float] = []
    order: list[int] = []
    for _ in range(steps):
        if len(order) < t.batch_size:
            order = random.sample(range(len(captions)), len(captions))
        batch, order = order[:t.batch_size], order[t.batch_size:]
        x0 = latents_all[batch]
        ids = tokenizer([captions[i] for i in batch], padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids.to(device)
        noise = torch.randn_like(x0)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), device=device).long()
        noisy = scheduler.add_noise(x0, noise, timesteps)
        with autocast, torch.set_grad_enabled(train_te):
            out = encoder(ids, output_hidden_states=t.clip_skip > 1)
            norm = getattr(encoder, "text_model", encoder).final_layer_norm  # transformers >= 5.6 drops the level
            hidden = norm(out.hidden_states[-t.clip_skip]) if t.clip_skip > 1 else out.last_hidden_state
        with autocast:
            prediction = unet(noisy.to(dtype), timesteps, hidden.to(dtype)).sample
        loss = F.mse_loss(prediction.float(), noise.float())
        loss.backward()
        loss_value = loss.item()  # every loop reads its loss (logging, NaN check)
        if t.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        del loss_value
        _sync()
        stamps.append(time.perf_counter())
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run (default 40)")
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of the timing (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="ref + loratui pairs, run alternately (default 2)")
    args = parser.parse_args()
    from loratui.hf_logging import quiet_hf_libraries

    quiet_hf_libraries()
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; torch {torch.__version__}; {args.steps} steps per run, first {args.warmup} untimed",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="loratui-overhead-") as tmp:
        project, config = make_project(Path(tmp) / "demo")
        t, d = config.training, config.dataset
        print(f"demo project: {d.resolution} px, batch {t.batch_size}, rank {t.network_dim}, {t.optimizer}, "
              f"precision {t.mixed_precision}, text encoder {'on' if t.train_text_encoder else 'off'}, "
              f"cache_latents {t.cache_latents}", flush=True)
        timed: dict[str, list[float]] = {"reference": [], "loratui": []}
        print(f"{'round':>5} {'loop':<10} {'median s/step':>14} {'mean s/step':>12}", flush=True)
        for round_index in range(1, args.rounds + 1):
            for name, run in (("reference", run_reference), ("loratui", run_loratui)):
                steps = run(project, config, args.steps)[args.warmup - 1:]
                timed[name].extend(steps)
                print(f"{round_index:>5} {name:<10} {statistics.median(steps):14.4f} {statistics.fmean(steps):12.4f}",
                      flush=True)
        ref, ours = statistics.median(timed["reference"]), statistics.median(timed["loratui"])
        print(f"{'all':>5} {'reference':<10} {ref:14.4f} {statistics.fmean(timed['reference']):12.4f}")
        print(f"{'all':>5} {'loratui':<10} {ours:14.4f} {statistics.fmean(timed['loratui']):12.4f}")
        ratio = ours / ref
        verdict = "within" if ratio <= GOAL else "above"
        print(f"ratio loratui / reference (medians): {ratio:.3f} ({verdict} the goal of {GOAL:.2f})")


if __name__ == "__main__":
    main()
