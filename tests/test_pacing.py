"""loratui.tui.pacing: the views read a running job at their own rate while keys come, once a second after three
quiet seconds, and at once again on the next key; a screen not on show reads nothing."""

from __future__ import annotations

from types import SimpleNamespace

from loratui.tui.pacing import QUIET_AFTER_S, QUIET_EVERY_S, Pacing, reads_now


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_full_rate_while_typing_once_a_second_when_quiet_and_back_on_a_key():
    clock = Clock()
    pacing = Pacing(clock=clock)
    pacing.key_pressed()
    last = clock.now
    clock.now += 0.25
    assert pacing.due(last, 0.25)  # typing: every tick reads
    clock.now = pacing.last_key + QUIET_AFTER_S + 0.1
    last = clock.now
    clock.now += 0.25
    assert pacing.quiet() and not pacing.due(last, 0.25)
    clock.now = last + QUIET_EVERY_S
    assert pacing.due(last, 0.25)  # a second later it reads
    clock.now = last + 0.25
    pacing.key_pressed()
    assert not pacing.quiet() and pacing.due(last, 0.25)  # a key: the next tick reads
    assert not pacing.due(clock.now - 0.1, 0.25)


def test_a_screen_not_on_show_never_reads():
    clock = Clock()
    shown, hidden = SimpleNamespace(name="step5"), SimpleNamespace(name="step2")
    app = SimpleNamespace(screen_stack=[shown], pacing=Pacing(clock=clock))
    shown.app = hidden.app = app
    assert reads_now(shown, float("-inf"), 0.25)
    assert not reads_now(hidden, float("-inf"), 0.25)
