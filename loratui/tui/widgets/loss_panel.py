"""The Train step's loss box (design §4.5): the losses as a Textual Sparkline (the mean of each column), its max
and min beside it, the current value, the mean of the last 100 steps and the trend, the learning rate, the VRAM
the job reports, and the first health warning."""

from __future__ import annotations

from statistics import fmean

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from loratui.jobs.status import JobStatus
from loratui.training.health import TREND_WINDOW, loss_trend

LABEL_WIDTH = 6


def loss_text(value: float | None) -> str:
    """``0.112``; small losses keep three significant digits (``0.000412``)."""
    if value is None:
        return "-"
    return f"{value:.3f}" if abs(value) >= 0.01 else f"{value:.3g}"


def vram_text(status: JobStatus) -> str:
    if status.vram_gb is not None and status.vram_total_gb:
        return f"VRAM {status.vram_gb:.1f} of {status.vram_total_gb:.0f} GB"
    if status.device and not status.device.startswith("cuda"):
        return f"VRAM: n/a ({status.device.split(':')[0].upper()})"
    return "VRAM: -" if status.alive else ""


class PlainSegments:
    """A renderable's segments with their symbols in plain characters (ascii_mode.to_ascii)."""

    def __init__(self, renderable) -> None:
        self.renderable = renderable

    def __rich_console__(self, console, options):
        from rich.segment import Segment

        from loratui.tui.ascii_mode import to_ascii

        for segment in console.render(self.renderable, options):
            yield Segment(to_ascii(segment.text), segment.style, segment.control)


class LossSparkline(Sparkline):
    """Textual's Sparkline; under --ascii its bars come from ascii_mode.SPARK_BARS, and the full and empty
    columns it draws with fixed block characters are made plain too."""

    def render(self):
        drawn = super().render()
        return PlainSegments(drawn) if getattr(self.app, "ascii_only", False) else drawn


class LossPanel(Vertical):
    DEFAULT_CSS = """
    LossPanel #spark-row { height: 3; }
    LossPanel #spark-labels { width: 6; height: 100%; }
    LossPanel Sparkline { width: 1fr; height: 100%; }
    LossPanel .loss-line { height: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._shown: tuple = ()
        self.rows = 3

    def compose(self) -> ComposeResult:
        with Horizontal(id="spark-row"):
            yield Static("", id="spark-labels")
            yield LossSparkline([], summary_function=fmean, id="loss-spark")
        yield Static("", id="loss-now", classes="loss-line")
        yield Static("", id="loss-lr", classes="loss-line")
        yield Static("", id="loss-health", classes="loss-line")

    def set_rows(self, rows: int) -> None:
        """The sparkline's height: 3 rows at 80x24, 8 at 120x40."""
        self.rows = rows
        self.query_one("#spark-row").styles.height = rows
        self._shown = ()

    def show(self, status: JobStatus, losses: list[float], scheduler: str, warnings: list[str]) -> None:
        """``losses``: the run's, oldest first (a resumed run's include its earlier parts)."""
        key = (len(losses), losses[-1] if losses else None, status.lr, status.vram_gb, status.device, scheduler,
               tuple(warnings), self.rows)
        if key == self._shown:
            return  # coalesced: a poll that brought no step redraws nothing
        self._shown = key
        self.query_one(Sparkline).data = list(losses)
        labels = [""] * self.rows
        if losses:
            labels[0], labels[-1] = loss_text(max(losses)), loss_text(min(losses))
        self.query_one("#spark-labels", Static).update("\n".join(f"{label:<{LABEL_WIDTH}}" for label in labels))
        if losses:
            recent = losses[-TREND_WINDOW:]
            trend = loss_trend(losses)
            now = (f"now {loss_text(losses[-1])}  avg of last {len(recent)}: {loss_text(fmean(recent))}"
                   + (f"  {trend}" if trend else ""))
        else:
            now = "no loss yet: the model is loading"
        self.query_one("#loss-now", Static).update(now)
        lr = f"lr {status.lr:.1e}" + (f" ({scheduler})" if scheduler else "") if status.lr is not None else "lr -"
        self.query_one("#loss-lr", Static).update(f"{lr}   {vram_text(status)}".rstrip())
        self.query_one("#loss-health", Static).update(f"! {warnings[0]}" if warnings else "")
