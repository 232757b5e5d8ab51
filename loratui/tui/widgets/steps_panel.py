"""The step estimator of step 4 (design §4.4): the engine's bucket-aware estimate as a short column of sums,
always visible and redrawn on every change of the form."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from loratui.durations import format_duration

if TYPE_CHECKING:
    from loratui.training.estimate import Estimate

PANEL_WIDTH = 28  # inside the box at 80 columns


def number(value: float) -> str:
    """1920 -> "1 920", as the wizard writes large counts."""
    if value != int(value):
        return f"{value:,.1f}".replace(",", " ")
    return f"{int(value):,}".replace(",", " ")


def steps_lines(result: Estimate, *, width: int = PANEL_WIDTH, done: str = "✓", buckets: bool = False) -> list[str]:
    """The panel's lines: each sum with its figure right-aligned in ``width`` columns."""
    steps = result.steps

    def row(label: str, value: str) -> str:
        return f"{label}{value:>{max(1, width - len(label))}}"

    repeats = sorted({c.repeats for c in result.concepts})
    lines = [row("pictures", number(steps.pictures)),
             row("x repeats", number(repeats[0]) if len(repeats) == 1 else "mixed"),
             row("= pictures/epoch", number(steps.images_per_epoch))]
    accumulation, gpus = steps.gradient_accumulation_steps, steps.gpus
    split = accumulation > 1 or gpus > 1
    lines.append(row(f"/ batch {steps.batch_size} = {'batches' if split else 'steps'}",
                     number(steps.batches_per_epoch)))
    if accumulation > 1:
        lines.append(row(f"/ accumulation {accumulation}", number(-(-steps.batches_per_epoch // accumulation))))
    if gpus > 1:
        lines.append(row(f"/ {gpus} GPUs = steps", number(steps.steps_per_epoch)))
    if result.rounded_up:
        why = "buckets round up" if not split else "rounded up"
        lines += [f"  ({why};", f"   plain math says {number(steps.plain_steps_per_epoch)})"]
    lines += [row("x epochs", number(result.epochs)), row("= total steps", number(result.total_steps))]
    low, high = result.step_range
    if result.in_range:
        lines.append(f"{done} aim: {number(low)} to {number(high)}")
    else:
        side = f"below {number(low)}" if result.total_steps < low else f"above {number(high)}"
        lines.append(f"! {number(result.total_steps)}: {side}")
        if result.fit_epochs is None:
            lines += textwrap.wrap("one epoch overshoots: lower repeats or raise batch", width)
        else:
            first, last = result.fit_epochs
            fit = f"{first}" if first == last else f"{first}-{last}"
            lines.append(f"  in range: {fit} epochs")
    lines.append(f"checkpoints {len(result.checkpoints)}")
    if result.seconds is None:
        # the engine's "unknown until your first training run on the CPU", two words shorter for the column
        lines += textwrap.wrap(f"time: {result.time_basis.replace('training run', 'run')}", width)
    else:
        lines += textwrap.wrap(f"time ~{format_duration(result.seconds)}, {result.time_basis}", width)
    if buckets and len(steps.buckets) > 0:
        lines += ["", "bucket     pics  x rep  batches"]
        lines += [f"{f'{b.width}x{b.height}':<10}{b.pictures:>5}{b.images:>7}{b.batches:>9}"
                  for b in steps.buckets[:8]]
        if len(steps.buckets) > 8:
            lines.append(f"... {len(steps.buckets) - 8} more (loratui estimate)")
    return lines


class StepsPanel(Static):
    """Shows an estimate, or why there is none yet (no prepared pictures, a field to fix)."""

    def show_estimate(self, result: Estimate, *, done: str = "✓", wide: bool = False) -> None:
        width = max(20, self.content_size.width or PANEL_WIDTH)
        self.update(Text("\n".join(steps_lines(result, width=width, done=done, buckets=wide))))

    def show_reason(self, reason: str) -> None:
        width = max(20, self.content_size.width or PANEL_WIDTH)
        self.update(Text("\n".join(textwrap.wrap(reason, width))))
