"""`loratui estimate DIR`: steps per epoch (bucket-aware), total steps, checkpoints and time, as a table."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from loratui.commands.common import add_project_dir, open_project
from loratui.durations import format_duration

if TYPE_CHECKING:
    from loratui.training.estimate import Estimate

LABEL_WIDTH = 26
VALUE_WIDTH = 7


def register(commands: argparse._SubParsersAction) -> None:
    estimate = commands.add_parser(
        "estimate",
        help="count the training steps (bucket-aware), checkpoints and time",
        description="Count the steps of a training run exactly as `loratui train` runs them: pictures x repeats, "
        "cut into batches per aspect-ratio bucket (a bucket's last batch may be short, so buckets round up), "
        "divided by gradient accumulation and GPUs, times epochs. Warns outside 1500-5000 total steps and says "
        "which epoch counts land in range. The time comes from your recent runs on this GPU (or CPU), model "
        "family and resolution: the median of the last 5, so one run slowed by other work does not skew it.",
    )
    add_project_dir(estimate)
    estimate.add_argument("--family", metavar="F",
                          help="model family: sd15, sd2, sd2-v or sdxl (default: the project's preset family, "
                          "else sd15); picks the speed history entry")
    estimate.add_argument("--gpus", type=int, metavar="N", help="GPUs to share the run (default: training.gpus)")
    estimate.add_argument("--gpu-name", metavar="NAME",
                          help="the GPU whose measured speed to use (default: this machine's first GPU, or CPU)")
    estimate.add_argument("--json", action="store_true", help="print the whole estimate as one JSON object")
    estimate.set_defaults(run=run_estimate)


def run_estimate(args: argparse.Namespace) -> int:
    from loratui.errors import LoratuiError
    from loratui.training.estimate import estimate

    if args.gpus is not None and args.gpus < 1:
        raise LoratuiError(f"--gpus {args.gpus}: use 1 or more")
    project = open_project(args)
    result = estimate(project, project.load(), args.gpus, family=args.family, gpu_name=args.gpu_name)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print("\n".join(render(result)))
    return 0


def render(result: Estimate) -> list[str]:
    """The Steps panel of the wizard's Parameters screen, then the per-concept and per-bucket tables."""
    lines = [f"Estimate for {result.project}: family {result.family} ({result.family_from}), "
             f"{result.resolution} px, {_device(result.gpu)}", ""]
    lines += _steps_panel(result)
    lines += ["", "Concepts", f"  {'folder':<30} {'pictures':>8} {'repeats':>8} {'per epoch':>10}"]
    lines += [f"  {c.folder:<30} {c.pictures:>8} {c.repeats:>8} {c.images:>10}" for c in result.concepts]
    lines += ["", f"Buckets (batch {result.steps.batch_size}; a batch never mixes buckets)",
              f"  {'width x height':<16} {'pictures':>8} {'x repeats':>10} {'batches':>8}"]
    lines += [f"  {f'{b.width} x {b.height}':<16} {b.pictures:>8} {b.images:>10} {b.batches:>8}"
              for b in result.steps.buckets]
    lines.append(f"  {'total':<16} {result.steps.pictures:>8} {result.steps.images_per_epoch:>10} "
                 f"{result.steps.batches_per_epoch:>8}")
    others = [w for w in result.warnings if w != result.range_advice]  # the panel already shows that one
    if others:
        lines += ["", *(f"! {warning}" for warning in others)]
    return lines


def _steps_panel(result: Estimate) -> list[str]:
    steps = result.steps
    repeats = sorted({c.repeats for c in result.concepts})
    rows = [("pictures", _number(steps.pictures), ""),
            ("x repeats", _number(repeats[0]) if len(repeats) == 1 else "mixed",
             "" if len(repeats) == 1 else "per concept, see below"),
            ("= pictures/epoch", _number(steps.images_per_epoch), "")]
    accumulation, gpus = steps.gradient_accumulation_steps, steps.gpus
    rows.append((f"/ batch {steps.batch_size} = {'batches' if accumulation > 1 or gpus > 1 else 'steps'}",
                 _number(steps.batches_per_epoch), ""))
    if accumulation > 1:
        # ceil(ceil(b / g) / n) == ceil(b / (g * n)), so the middle figure is consistent with the last
        rows.append((f"/ accumulation {accumulation}{' = steps' if gpus == 1 else ''}",
                     _number(-(-steps.batches_per_epoch // accumulation)), ""))
    if gpus > 1:
        rows.append((f"/ {gpus} GPUs = steps", _number(steps.steps_per_epoch), ""))
    if result.rounded_up:
        why = "buckets round up" if accumulation == 1 and gpus == 1 else "rounded up"
        rows.append(("", "", f"({why}; plain math says {_number(steps.plain_steps_per_epoch)})"))
    rows += [("x epochs", _number(result.epochs), ""), ("= total steps", _number(result.total_steps), "")]
    low, high = result.step_range
    aim = f"aim: {_number(low)} to {_number(high)}"
    if result.in_range:
        rows.append((f"\u2713 {aim}", "", ""))
    else:
        side = f"below {_number(low)}" if result.total_steps < low else f"above {_number(high)}"
        rows.append((f"! {_number(result.total_steps)}: {side}", "", f"{aim}; {_fit(result)}"))
    shown = [str(c.epoch) for c in result.checkpoints]
    epochs = ", ".join(shown) if len(shown) <= 6 else f"{', '.join(shown[:3])}, \u2026, {', '.join(shown[-2:])}"
    rows.append(("checkpoints", _number(len(result.checkpoints)), f"after epoch {epochs}"))
    duration = "" if result.seconds is None else f"~{format_duration(result.seconds)}"  # an estimate, hence ~
    rows.append(("time", duration, result.time_basis))
    return [f"  {label:<{LABEL_WIDTH}}{value:>{VALUE_WIDTH}}{'  ' + note if note else ''}".rstrip()
            for label, value, note in rows]


def _device(gpu: str) -> str:
    """ "on the CPU" (no GPU found, or --gpu-name CPU), else "GPU <name>"."""
    from loratui.training.speed_history import CPU

    return "on the CPU" if gpu == CPU else f"GPU {gpu}"


def _fit(result: Estimate) -> str:
    from loratui.training.estimate import fit_phrase

    if result.fit_epochs is None:
        return f"one epoch is already {_number(result.steps.steps_per_epoch)} steps: lower repeats or raise batch"
    return fit_phrase(result.fit_epochs)


def _number(value: float) -> str:
    """1920 -> "1 920" as the wizard writes it; 47.5 stays 47.5."""
    if value != int(value):
        return f"{value:,.1f}".replace(",", " ")
    return f"{int(value):,}".replace(",", " ")
