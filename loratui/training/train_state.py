"""The resumable training state in `.loratui/state/`: LoRA weights (fp32), optimizer, scheduler, step, RNG."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_bytes, atomic_write_text
from loratui.training.lora_file import LoraNetwork

STATE_FILE = "state.json"
STATE_VERSION = 1


@dataclass
class RunPosition:
    """Where a run is: optimizer steps done, the epoch (from 0) and the batches of it already consumed."""

    step: int
    epoch: int
    batches_done: int
    total_steps: int
    # Settings that change the step plan or the network: a resume with other values would not continue the run.
    plan: dict[str, Any]


def state_folder(state_dir: Path) -> Path:
    return state_dir / "state"


def trainable_tensors(network: LoraNetwork) -> dict[str, torch.nn.Parameter]:
    return {f"{component}/{name}": param for component, model in network.models.items()
            for name, param in model.named_parameters() if param.requires_grad}


def save_state(folder: Path, position: RunPosition, network: LoraNetwork, optimizer: torch.optim.Optimizer,
               scheduler: Any) -> Path:
    """Write the state; the files of this step first, then ``state.json`` naming them, so a crash mid-save
    leaves the previous state whole."""
    import io

    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    tag = f"{position.step:08d}"
    weights = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in trainable_tensors(network).items()}
    atomic_write_bytes(folder / f"lora-{tag}.safetensors", save(weights))
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state()},
               buffer)
    atomic_write_bytes(folder / f"optimizer-{tag}.pt", buffer.getvalue())
    document = {"version": STATE_VERSION, **asdict(position), "weights": f"lora-{tag}.safetensors",
                "optimizer": f"optimizer-{tag}.pt"}
    atomic_write_text(folder / STATE_FILE, json.dumps(document, indent=2) + "\n")
    for old in folder.iterdir():  # earlier steps' files, now superseded
        if old.name not in (STATE_FILE, document["weights"], document["optimizer"]) and not old.name.startswith("."):
            old.unlink(missing_ok=True)
    return folder


def read_position(folder: Path) -> RunPosition:
    path = folder / STATE_FILE
    if not path.is_file():
        raise LoratuiError(f"{path}: no saved training state to resume: start without --resume")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunPosition(int(data["step"]), int(data["epoch"]), int(data["batches_done"]),
                           int(data["total_steps"]), dict(data["plan"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise LoratuiError(f"{path}: damaged training state ({exc}): start again without --resume") from None


def load_state(folder: Path, network: LoraNetwork, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """Put the saved weights, optimizer and scheduler state and RNG back (weights_only: no code is unpickled)."""
    from safetensors.torch import load_file

    data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    try:
        weights = load_file(str(folder / data["weights"]))
        saved = torch.load(folder / data["optimizer"], map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise LoratuiError(f"{folder}: cannot read the training state ({exc}): start again without --resume") from None
    params = trainable_tensors(network)
    if set(weights) != set(params):
        raise LoratuiError(f"{folder}: the saved state is for another network (rank, targets or text encoder "
                           "setting changed): start again without --resume")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(weights[name].to(param.device, param.dtype))
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    _set_rng_state(saved["rng"])


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
