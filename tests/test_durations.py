"""format_duration: one way of writing a duration everywhere (21s, 12m05s, 3h07m, ? when unknown)."""

from __future__ import annotations

import pytest

from loratui.durations import format_duration


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"),
    (0.4, "0s"),
    (21, "21s"),
    (21.4, "21s"),
    (59.4, "59s"),
    (59.6, "1m00s"),  # rounded to a whole second first: never "60s"
    (60, "1m00s"),
    (725, "12m05s"),
    (3599, "59m59s"),
    (3599.6, "1h00m"),
    (3600, "1h00m"),
    (3600 * 3 + 7 * 60 + 10, "3h07m"),
    (3600 * 3 + 7 * 60 + 40, "3h08m"),  # the hour form rounds to the nearest minute
    (27 * 3600, "27h00m"),  # hours go past a day
])
def test_durations(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [None, float("nan"), float("inf"), -1, -0.1, "12", True])
def test_unknown_durations_are_a_question_mark(seconds):
    assert format_duration(seconds) == "?"
