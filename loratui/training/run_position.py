"""Where a stopped run is, and the settings it was made with: read without torch, so a resume is checked first."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loratui.config import Config
from loratui.errors import LoratuiError

STATE_FILE = "state.json"
STATE_VERSION = 2  # 1: only eleven plan facts were saved ("plan")
# [training] settings that change neither the steps nor the numbers: free to change between stop and resume.
RESUME_FREE = ("tensorboard", "save_every_n_epochs", "save_precision", "save_state", "gpus")
DATASET_KEYS = ("resolution", "enable_bucket", "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps",
                "bucket_no_upscale")
# Version 1's plan facts and the setting each one is now.
V1_PLAN_KEYS = {"steps_per_epoch": "steps_per_epoch", "epochs": "training.epochs",
                "batch_size": "training.batch_size",
                "gradient_accumulation_steps": "training.gradient_accumulation_steps",
                "network_dim": "training.network_dim", "network_alpha": "training.network_alpha",
                "seed": "training.seed", "base_model": "project.base_model", "processes": "processes"}


@dataclass
class RunPosition:
    """Where a run is: optimizer steps done, the epoch (from 0) and the batches of it already consumed."""

    step: int
    epoch: int
    batches_done: int
    total_steps: int
    # Every setting that changes the optimisation, flat ("training.unet_lr": 1e-4): see run_settings.
    settings: dict[str, Any]


def state_folder(state_dir: Path) -> Path:
    return state_dir / "state"


def run_settings(config: Config, steps_per_epoch: int, processes: int) -> dict[str, Any]:
    """The settings a resume must find unchanged: all of [training] but :data:`RESUME_FREE`, the resolution and
    buckets, the concepts and their repeats, the base model, the process count and the resulting epoch length."""
    settings: dict[str, Any] = {f"training.{k}": v for k, v in dataclasses.asdict(config.training).items()
                                if k not in RESUME_FREE}
    settings.update({f"dataset.{k}": getattr(config.dataset, k) for k in DATASET_KEYS})
    settings["concepts"] = [f"{c.repeats}_{c.name}" for c in config.concepts]
    settings["project.base_model"] = config.project.base_model
    settings["processes"] = processes
    settings["steps_per_epoch"] = steps_per_epoch
    return _json_values(settings)


def _json_values(settings: dict[str, Any]) -> dict[str, Any]:
    """As the state file will give them back (tuples become lists)."""
    return json.loads(json.dumps(settings))


def changed_settings(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``name: old -> new`` for each setting that differs (a setting the saved state lacks is not compared)."""
    return [f"{key}: {_show(saved[key])} -> {_show(value)}" for key, value in now.items()
            if key in saved and saved[key] != value]


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, list, dict)) else str(value)


def check_resume(folder: Path, settings: dict[str, Any], root: Path) -> RunPosition:
    """The saved position, or one line naming every changed setting (old and new) and how to start afresh."""
    position = read_position(folder)
    changed = changed_settings(position.settings, settings)
    if changed:
        raise LoratuiError(f"{folder}: cannot resume: the run was made with other settings ({'; '.join(changed)}): "
                           f"put them back in {root / 'loratui.toml'}, or start from scratch with "
                           f"`loratui train {root} --from-scratch` (the old run's files are kept)")
    return position


def read_position(folder: Path) -> RunPosition:
    path = folder / STATE_FILE
    if not path.is_file():
        raise LoratuiError(f"{path}: no saved training state to resume: start a new run without --resume")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        settings = data.get("settings")
        if settings is None:  # version 1
            settings = {V1_PLAN_KEYS[k]: v for k, v in dict(data["plan"]).items() if k in V1_PLAN_KEYS}
        return RunPosition(int(data["step"]), int(data["epoch"]), int(data["batches_done"]),
                           int(data["total_steps"]), dict(settings))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        root = folder.parent.parent
        raise LoratuiError(f"{path}: damaged training state ({exc}): start over with "
                           f"`loratui train {root} --from-scratch` (the files so far are kept)") from None
