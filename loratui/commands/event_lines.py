"""Events as readable lines (`loratui logs`): ``12:03:04 step 120/960 epoch 3 loss 0.0912 lr 1.0e-04 ...``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from loratui.durations import format_duration
from loratui.jobs import events as ev


def format_event(event: ev.Event, context: dict[str, Any] | None = None) -> str:
    """One readable line. ``context`` carries what a line needs from earlier ones (the run's total steps)."""
    context = {} if context is None else context
    clock = time.strftime("%H:%M:%S", time.localtime(event.time)) if event.time else "--:--:--"
    return f"{clock} {_text(event, context)}"


def _text(event: ev.Event, context: dict[str, Any]) -> str:
    if isinstance(event, ev.Start):
        return f"start: {event.kind} job (pid {event.pid}): loratui {' '.join(event.argv)}".rstrip()
    if isinstance(event, ev.Plan):
        context["total_steps"] = event.total_steps
        return f"plan: {event.total_steps} steps = {event.epochs} epochs x {event.steps_per_epoch} steps" + (
            f", resuming at step {event.resumed_from}" if event.resumed_from else "")
    if isinstance(event, ev.Step):
        total = event.total_steps or context.get("total_steps")
        return (f"step {event.step}{f'/{total}' if total else ''} epoch {event.epoch} "
                f"loss {_num(event.loss, '.4f')} lr {_num(event.lr, '.1e')} "
                f"{_num(event.images_per_s, '.1f')} img/s ETA {format_duration(event.eta_s)}")
    if isinstance(event, ev.Checkpoint):
        return f"checkpoint epoch {event.epoch}: {event.path}"
    if isinstance(event, ev.Cell):
        where = f"epoch {event.epoch}" if event.epoch is not None else Path(event.checkpoint).name
        result = f"error: {event.error}" if event.error else (
            f"score {_num(event.score, '.2f')}" if event.score is not None else "not scored")
        return f"cell {where} at {event.weight}: {result} ({_num(event.seconds, '.1f')} s) {event.file or ''}".rstrip()
    if isinstance(event, ev.Progress):
        item = f"  {event.item}" if event.item else ""
        return f"{event.stage} {event.done}/{event.total}{item}"
    if isinstance(event, ev.JobWarning):
        return f"warning: {event.message}"
    if isinstance(event, ev.JobError):
        return f"error: {event.message}"
    if isinstance(event, ev.Done):
        parts = ["done" + (" (stopped)" if event.stopped else "")]
        parts += [f"{key} {_value(value)}" for key, value in event.summary.items()]
        if event.result:
            parts.append(f"result {event.result}")
        return " ".join(parts)
    if isinstance(event, ev.Unknown):
        return f"{event.type} {json.dumps(event.fields, ensure_ascii=False)}"
    return event.TYPE


def _num(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "nan"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
