"""Training health: what a run that stopped on its own (NaN loss, out of memory) says, and the exception for it.

The checks before a run are in :mod:`loratui.training.preflight`."""

from __future__ import annotations

from loratui.errors import LoratuiError

OOM_KNOBS = ("training.batch_size 1", "a lower dataset.resolution", "training.gradient_checkpointing = true",
             "training.optimizer = \"AdamW8bit\"", "training.cache_latents = \"memory\"")


class TrainingFailed(LoratuiError):
    """The run stopped on its own (NaN loss, out of memory): the message says why and what to change."""


def nan_message(step: int) -> str:
    return (f"loss became NaN at step {step}: lower the learning rate or use bf16 (training.mixed_precision), "
            "or set training.no_half_vae = true; the checkpoints written before it are kept")


def oom_message(what: str) -> str:
    return f"the GPU ran out of memory {what}: try {', '.join(OOM_KNOBS)}"


# --- while a run goes on: rules on the figures its step events carry (the wizard shows what they say) ----------

SPEED_SAMPLES = 20  # steps of pictures/s needed before "below half its median" means anything
SPEED_DROP = 0.5
LOSS_RISE = 0.10  # the last epoch's mean loss this much over the one before (diffusion losses are noisy)
VRAM_FULL = 0.95
TREND_WINDOW = 100
TREND_FLAT = 0.02  # a change of the window's mean under 2 % reads "flat"


def loss_trend(losses: list[float], window: int = TREND_WINDOW) -> str:
    """"falling", "flat" or "rising": the mean of the last ``window`` losses against the ``window`` before (on a
    short run, the last half against the first); "" with fewer than 4 losses."""
    if len(losses) < 4:
        return ""
    size = min(window, len(losses) // 2)
    recent, before = losses[-size:], losses[-2 * size:-size]
    now, then = sum(recent) / size, sum(before) / size
    if then == 0 or abs(now - then) / abs(then) < TREND_FLAT:
        return "flat"
    return "falling" if now < then else "rising"


def health_warnings(losses: list[float], speeds: list[float], steps_per_epoch: int | None,
                    vram_gb: float | None = None, vram_total_gb: float | None = None) -> list[str]:
    """What looks wrong with a running training job, each as one line with its likely cause: the speed fell
    below half its median (memory spilling to system RAM), the loss rose over a whole epoch, or VRAM is over
    95 % full. ``losses`` and ``speeds`` are the step events' figures, oldest first."""
    warnings = []
    if len(speeds) >= SPEED_SAMPLES:
        ordered = sorted(speeds)
        median = ordered[len(ordered) // 2]
        if median > 0 and speeds[-1] < SPEED_DROP * median:
            warnings.append(f"speed fell to {speeds[-1]:.1f} pictures/s, under half its usual {median:.1f}: "
                            "memory may be spilling to system RAM (a lower batch size or resolution helps)")
    spe = steps_per_epoch or 0
    if spe >= 2 and len(losses) >= 2 * spe:
        last, before = losses[-spe:], losses[-2 * spe:-spe]
        mean_last, mean_before = sum(last) / spe, sum(before) / spe
        half = spe // 2
        still_rising = sum(last[half:]) / (spe - half) > sum(last[:half]) / half
        if mean_before > 0 and mean_last > mean_before * (1 + LOSS_RISE) and still_rising:
            warnings.append(f"loss rose for a whole epoch ({mean_before:.3f} -> {mean_last:.3f}): the learning "
                            "rate may be too high; compare the checkpoints before this one")
    if vram_gb is not None and vram_total_gb:
        share = vram_gb / vram_total_gb
        if share > VRAM_FULL:
            warnings.append(f"VRAM {vram_gb:.1f} of {vram_total_gb:.0f} GB ({share:.0%}): close to running out; "
                            f"if it fails, try {OOM_KNOBS[0]} or {OOM_KNOBS[2]}")
    return warnings
