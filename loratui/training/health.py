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
