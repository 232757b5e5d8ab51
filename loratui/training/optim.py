"""Optimizers (AdamW, AdamW8bit, Lion, Prodigy) and the learning-rate schedulers. Their checks run before torch
loads: a missing optional package in loratui.project.optimizer_problem (`check` and the preflight), the rest in
preflight.py."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from loratui.config import TrainingSettings
from loratui.errors import LoratuiError

# kohya's default weight decay for the AdamW family (torch's default); Lion's paper suggests 3-10x higher.
ADAMW_WEIGHT_DECAY = 0.01
LION_WEIGHT_DECAY = 0.0


class Lion(torch.optim.Optimizer):
    """EvoLved Sign Momentum, from Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"
    (arXiv:2302.06675), Algorithm 2: the update is the sign of an interpolation of momentum and gradient,
    with decoupled weight decay; one state tensor per parameter (half AdamW's memory)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0):
        if lr <= 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Lion: invalid lr {lr} or betas {betas}")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["exp_avg"] = torch.zeros_like(param)
                exp_avg = state["exp_avg"]
                param.mul_(1 - group["lr"] * group["weight_decay"])
                update = exp_avg.mul(beta1).add_(param.grad, alpha=1 - beta1).sign_()
                param.add_(update, alpha=-group["lr"])
                exp_avg.mul_(beta2).add_(param.grad, alpha=1 - beta2)
        return loss


def build_optimizer(name: str, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """The optimizer over the parameter groups (each with its own lr), with kohya's default arguments."""
    if name == "AdamW":
        return torch.optim.AdamW(groups, weight_decay=ADAMW_WEIGHT_DECAY)
    if name == "AdamW8bit":
        import bitsandbytes

        return bitsandbytes.optim.AdamW8bit(groups, weight_decay=ADAMW_WEIGHT_DECAY)
    if name == "Lion":
        return Lion(groups, weight_decay=LION_WEIGHT_DECAY)
    if name == "Prodigy":
        import prodigyopt

        return prodigyopt.Prodigy(groups, weight_decay=ADAMW_WEIGHT_DECAY)
    raise LoratuiError(f"training.optimizer = \"{name}\": unknown: use AdamW, AdamW8bit, Lion or Prodigy")


def build_scheduler(training: TrainingSettings, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    """diffusers' get_scheduler for training.lr_scheduler over ``total_steps`` optimizer steps."""
    from diffusers.optimization import get_scheduler

    options: dict[str, Any] = {"num_warmup_steps": training.lr_warmup_steps, "num_training_steps": total_steps}
    if training.lr_scheduler == "cosine_with_restarts":
        options["num_cycles"] = training.lr_scheduler_num_cycles
    if training.lr_scheduler == "constant":
        options = {}
    return get_scheduler(training.lr_scheduler, optimizer, **options)
