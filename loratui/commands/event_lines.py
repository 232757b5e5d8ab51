"""Events as readable lines (`loratui logs`): ``12:03:04 step 120/960 epoch 3 loss 0.0912 lr 1.0e-04 ...``.

Every kind of event reads as a sentence; a field this version does not know is named in words, never dumped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from loratui.durations import format_duration
from loratui.jobs import events as ev
from loratui.jobs.status import is_stop_reason
from loratui.training.eta import eta_from_events

# What each job kind's main result is, for "done ...; LoRA output/a.safetensors".
RESULT_NAMES = {"train": "LoRA", "grid": "PNG", "prepare": "pictures in"}


def format_event(event: ev.Event, context: dict[str, Any] | None = None) -> str:
    """One readable line. ``context`` carries what a line needs from earlier ones (the job's kind, the run's
    total steps, its first step)."""
    context = {} if context is None else context
    clock = time.strftime("%H:%M:%S", time.localtime(event.time)) if event.time else "--:--:--"
    return f"{clock} {_text(event, context)}"


def _text(event: ev.Event, context: dict[str, Any]) -> str:
    if isinstance(event, ev.Start):
        context["kind"] = event.kind
        return f"start: {event.kind} job (pid {event.pid}): loratui {' '.join(event.argv)}".rstrip()
    if isinstance(event, ev.Plan):
        context["total_steps"] = event.total_steps
        return f"plan: {event.total_steps} steps = {event.epochs} epochs x {event.steps_per_epoch} steps" + (
            f", resuming at step {event.resumed_from}" if event.resumed_from else "")
    if isinstance(event, ev.Step):
        return _step(event, context)
    if isinstance(event, ev.Checkpoint):
        return f"checkpoint {_checkpoint_when(event)}: {event.path}"
    if isinstance(event, ev.Cell):
        where = f"epoch {event.epoch}" if event.epoch is not None else Path(event.checkpoint).name
        result = f"error: {event.error}" if event.error else (
            f"score {_num(event.score, '.2f')}" if event.score is not None else "not scored")
        return f"cell {where} at {event.weight}: {result} ({_num(event.seconds, '.1f')} s) {event.file or ''}".rstrip()
    if isinstance(event, ev.Progress):
        item = f"  {event.item}" if event.item else ""
        return f"{event.stage} {event.done}/{event.total}{item}"
    if isinstance(event, ev.JobWarning):
        # A stop the user asked for is why the job ends, not a warning.
        return f"stopping: {event.message}" if is_stop_reason(event.message) else f"warning: {event.message}"
    if isinstance(event, ev.JobError):
        return f"error: {event.message}"
    if isinstance(event, ev.Done):
        return done_sentence(context.get("kind"), event.stopped, event.summary, event.result, event.seconds)
    if isinstance(event, ev.Unknown):
        fields = _phrases(event.fields)
        return f"{event.type} (an event of a newer loratui)" + (f": {fields}" if fields else "")
    return event.TYPE


def _checkpoint_when(event: ev.Checkpoint) -> str:
    """``after epoch 3 (step 120)``; a file a stop saved in the first epoch counts 0 epochs done."""
    if event.epoch is None:
        return f"at step {event.step}" if event.step is not None else "saved"
    when = f"after epoch {event.epoch}" if event.epoch else "during epoch 1"
    return when + (f" (step {event.step})" if event.step is not None else "")


def _step(event: ev.Step, context: dict[str, Any]) -> str:
    total = event.total_steps or context.get("total_steps")
    first = context.setdefault("first_step", (event.step, event.elapsed_s))
    eta = eta_from_events(first, event.step, total, event.elapsed_s, event.eta_s)
    return (f"step {event.step}{f'/{total}' if total else ''} epoch {event.epoch} "
            f"loss {_num(event.loss, '.4f')} lr {_num(event.lr, '.1e')} "
            f"{_num(event.images_per_s, '.1f')} img/s" + (f" ETA {format_duration(eta)}" if eta is not None else ""))


def done_sentence(kind: str | None, stopped: bool, summary: dict[str, Any], result: str | None,
                  seconds: float | None = None) -> str:
    """How a job ended, in words: ``done in 17s: 96 of 96 steps; LoRA output/d1.safetensors``, ``stopped
    after 9s at step 48 of 96 (Ctrl-C); LoRA so far ...``, ``done in 4s: 10 cells, 10 rendered ...``."""
    if seconds is None and isinstance(summary.get("seconds"), (int, float)):
        seconds = summary["seconds"]
    duration = format_duration(seconds) if isinstance(seconds, (int, float)) else None
    details = outcome_details(kind, stopped, summary, result)
    if stopped:
        return " ".join(part for part in ("stopped", f"after {duration}" if duration else "", details) if part)
    return "done" + (f" in {duration}" if duration else "") + (f": {details}" if details else "")


def outcome_details(kind: str | None, stopped: bool, summary: dict[str, Any], result: str | None) -> str:
    """What a job's ``done`` says beyond done/stopped: ``96 of 96 steps; LoRA output/d1.safetensors``; a stop:
    ``at step 48 of 96 (Ctrl-C); LoRA so far ...``."""
    facts = {key: value for key, value in summary.items() if key != "seconds"}
    steps, total = facts.pop("steps", None), facts.pop("total_steps", None)
    early, stopped_by = facts.pop("early", False), facts.pop("stopped_by", None)
    of_total = f" of {total}" if total else ""
    parts = []
    if stopped and steps is not None:
        parts.append(f"at step {steps}{of_total}" + (f" ({stopped_by})" if stopped_by else ""))
    elif stopped and stopped_by:
        parts.append(f"({stopped_by})")
    elif steps is not None:
        parts.append(f"{steps}{of_total} steps" + (", ended early at --max-steps" if early is True else ""))
    described = _phrases(facts)
    if described:
        parts.append(described)
    text = ", ".join(parts)
    if result:
        name = RESULT_NAMES.get(kind or "", "result") + (" so far" if stopped and kind == "train" else "")
        text += f"{'; ' if text else ''}{name} {result}"
    return text


# Counts as the jobs write them in their `done`, and how each reads.
_COUNT_WORDS = {"prepared": "{} prepared", "unchanged": "{} unchanged", "tagged": "{} tagged", "skipped": "{} skipped",
                "cells": "{} cells", "rendered": "{} rendered", "cached": "{} from the cache", "failed": "{} failed"}


def _phrases(facts: dict[str, Any]) -> str:
    """``24 prepared, 0 skipped, 1 warning, suggested ep02 at 0.6``; an empty list is left out, a key this
    version does not know reads as its name and value."""
    parts = []
    for key, value in facts.items():
        if key in _COUNT_WORDS and isinstance(value, int):
            parts.append(_COUNT_WORDS[key].format(value))
        elif key == "warnings":
            count = value if isinstance(value, int) else len(value) if isinstance(value, list) else None
            if count is not None:
                parts.append(f"{count} warning{'s' if count != 1 else ''}")
            if isinstance(value, list) and value:
                parts[-1] += f" ({'; '.join(str(v) for v in value)})"
        elif key == "suggestion":
            parts.append(f"suggested {value}" if value else "no suggestion")
        elif value in (None, [], {}, ""):
            continue
        else:
            parts.append(f"{key.replace('_', ' ')} {_value(value)}")
    return ", ".join(parts)


def _num(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "nan"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
