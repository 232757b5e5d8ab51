"""The resumable training state in `.loratui/state/`: LoRA weights (fp32), optimizer, scheduler, step, RNG."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_bytes, atomic_write_text
from loratui.lora.file import LoraNetwork
from loratui.training.run_position import STATE_FILE, STATE_VERSION, RunPosition


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


def load_state(folder: Path, network: LoraNetwork, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """Put the saved weights, optimizer and scheduler state and RNG back (weights_only: no code is unpickled)."""
    from safetensors.torch import load_file

    data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    try:
        weights = load_file(str(folder / data["weights"]))
        saved = torch.load(folder / data["optimizer"], map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        root = folder.parent.parent
        raise LoratuiError(f"{folder}: cannot read the training state ({exc}): start over with "
                           f"`loratui train {root} --from-scratch` (the files so far are kept)") from None
    params = trainable_tensors(network)
    if set(weights) != set(params):
        raise LoratuiError(f"{folder}: the saved state is for another network (rank, targets or text encoder "
                           "setting changed): start over with "
                           f"`loratui train {folder.parent.parent} --from-scratch` (the files so far are kept)")
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
