"""The time left in a run: no ETA from the first step's one-off costs, in the bar, the loop's rule and the events."""

from __future__ import annotations

import io

import pytest

from loratui.commands.progress_view import ProgressBar
from loratui.progress import Progress
from loratui.training.eta import MIN_TIMED_STEPS, eta_from_events, eta_from_step_times


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _drawn(stream: _Terminal) -> str:
    return stream.getvalue().split("\r")[-1]


def test_the_training_bar_gives_no_eta_until_steps_after_the_first_are_timed():
    """The bar starts before the model loads (20 s here); step 1 pays one-off costs (5 s); then 0.3 s a step."""
    stream, clock = _Terminal(), _Clock()
    bar = ProgressBar(stream, clock=clock)
    clock.now = 25.0
    bar(Progress("train", 1, 96, "loss 1.1836"))
    assert "ETA" not in _drawn(stream)  # it used to say 39m35s: 25 s x 95 steps left
    for step in range(2, 2 + MIN_TIMED_STEPS):
        clock.now += 0.3
        bar(Progress("train", step, 96, "loss 1.1"))
        if step < 1 + MIN_TIMED_STEPS:
            assert "ETA" not in _drawn(stream)
    assert "4/96 ETA 28s loss 1.1" in _drawn(stream)  # 92 steps x 0.3 s


def test_a_new_stage_times_its_pace_afresh():
    stream, clock = _Terminal(), _Clock()
    bar = ProgressBar(stream, clock=clock)
    for done in range(0, 11):
        clock.now = done * 10.0  # slow
        bar(Progress("caching latents", done, 10))
    clock.now = 200.0
    bar(Progress("train", 1, 11))
    for step in range(2, 6):
        clock.now += 1.0
        bar(Progress("train", step, 11))
    assert "5/11 ETA 6s" in _drawn(stream)


def test_the_loop_s_eta_leaves_the_first_step_out_and_waits_for_a_few():
    assert eta_from_step_times([], 96) is None
    assert eta_from_step_times([5.0, 0.3, 0.3], 93) is None  # two steps after the first: not yet
    assert eta_from_step_times([5.0, 0.3, 0.3, 0.3], 92) == pytest.approx(92 * 0.3)
    recent = [5.0] + [1.0] * 30 + [0.5] * 20  # the recent pace counts
    assert eta_from_step_times(recent, 10) == pytest.approx(5.0)


def test_readers_of_step_events_time_the_steps_after_the_job_s_first():
    first = (1, 5.0)  # the first step of the run ended 5 s in (one-off costs)
    assert eta_from_events(first, 1, 96, 5.0, 475.0) is None
    assert eta_from_events(first, 3, 96, 5.6, 150.0) is None
    assert eta_from_events(first, 4, 96, 5.9, 120.0) == pytest.approx(92 * 0.3)
    resumed = (241, 8.0)  # a resumed run's first step is 241
    assert eta_from_events(resumed, 242, 480, 8.3, 70.0) is None
    assert eta_from_events(resumed, 244, 480, 8.9, 70.0) == pytest.approx(236 * 0.3)
    # events of an older loratui (no elapsed time) keep the ETA they were written with
    assert eta_from_events((120, None), 120, 960, None, 725.0) == 725.0
