"""Training health: the preflight run before any model loads, and the NaN and out-of-memory messages."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from loratui.config import Config
from loratui.errors import LoratuiError
from loratui.project import Project
from loratui.training.data import TrainDataset
from loratui.training.estimate import Estimate, estimate
from loratui.training.model_family import HUB, ModelDetection, detect_base_model

OOM_KNOBS = ("training.batch_size 1", "a lower dataset.resolution", "training.gradient_checkpointing = true",
             "training.optimizer = \"AdamW8bit\"", "training.cache_latents = \"memory\"")


class TrainingFailed(LoratuiError):
    """The run stopped on its own (NaN loss, out of memory): the message says why and what to change."""


@dataclass
class Preflight:
    """What the checks found: the model, the dataset, the step plan, and warnings worth an event."""

    detection: ModelDetection
    dataset: TrainDataset
    plan: Estimate
    warnings: list[str] = field(default_factory=list)


def preflight(project: Project, config: Config, *, allow_pickle: bool = False, gpus: int = 1) -> Preflight:
    """Everything that can be wrong before a model is loaded: the base model (present, family known, no
    unasked pickle), the dataset (pictures and captions), the output folder, the optimizer and scheduler."""
    from loratui.training.optim import check_optimizer

    detection = detect_base_model(config.project.base_model, project.root, allow_pickle=allow_pickle)
    if detection.kind != HUB and detection.info is None:
        raise LoratuiError(f"{detection.location}: cannot train on it: {detection.note or 'unknown model family'}")
    dataset = TrainDataset.from_project(project, config)
    check_writable(project.output_dir, "the output folder")
    check_writable(project.state_dir, "the state folder")
    warnings = check_optimizer(config.training)
    plan = estimate(project, config, gpus, family=detection.family or None)
    if config.training.train_text_encoder and config.training.text_encoder_lr == 0:
        warnings.append("training.text_encoder_lr is 0: the text encoder is not trained (set a rate such as "
                        "1e-5, or turn train_text_encoder off)")
    return Preflight(detection, dataset, plan, warnings)


def check_writable(folder: Path, label: str) -> None:
    """Create ``folder`` if needed and prove a file can be written there (a read-only mount fails here, not after
    an hour of training)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        raise LoratuiError(f"{folder}: {label} is not writable ({exc.strerror or exc}): fix its permissions or "
                           "free disk space") from None


def nan_message(step: int) -> str:
    return (f"loss became NaN at step {step}: lower the learning rate or use bf16 (training.mixed_precision), "
            "or set training.no_half_vae = true; the checkpoints written before it are kept")


def oom_message(what: str) -> str:
    return f"the GPU ran out of memory {what}: try {', '.join(OOM_KNOBS)}"
