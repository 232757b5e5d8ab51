"""The time left in a training run, shown only once it means something.

A run's first step carries one-off costs (allocations, kernel choice, the first batch's caption encoding): an ETA
drawn from it alone says minutes for a run of seconds. So the time left comes from the steps after the first,
and is not given at all until :data:`MIN_TIMED_STEPS` of them are timed. The loop (its ``eta_s``) and every
reader of its step events (`status`, `logs`) use the same rule. Plain Python: the wizard imports this.
"""

from __future__ import annotations

MIN_TIMED_STEPS = 3  # steps after the run's first one, timed, before an ETA is given
RECENT_STEPS = 20  # the loop's ETA follows the recent pace (a grid rendering meanwhile slows it for a while)


def eta_from_step_times(step_times: list[float], remaining: int) -> float | None:
    """For the loop: seconds left for ``remaining`` steps at the mean of the last :data:`RECENT_STEPS` step
    times (the first step left out); None until :data:`MIN_TIMED_STEPS` steps after the first are timed."""
    timed = step_times[1:]
    if len(timed) < MIN_TIMED_STEPS:
        return None
    recent = timed[-RECENT_STEPS:]
    return max(0, remaining) * sum(recent) / len(recent)


def eta_from_events(first: tuple[int, float | None] | None, step: int, total_steps: int | None,
                    elapsed_s: float | None, reported: float | None) -> float | None:
    """For a reader of step events: seconds left after ``step`` of ``total_steps``. ``first`` is the (step,
    elapsed_s) of the first step event of the job (the run's first step, or the one after a resume); the pace
    is that of the steps since. None until :data:`MIN_TIMED_STEPS` of them are timed. Events without elapsed
    times (written by an older loratui) keep the ETA they were written with."""
    if first is None or first[1] is None or elapsed_s is None:
        return reported
    first_step, first_elapsed = first
    timed = step - first_step
    if timed < MIN_TIMED_STEPS or not total_steps:
        return None
    return max(0, total_steps - step) * max(0.0, elapsed_s - first_elapsed) / timed
