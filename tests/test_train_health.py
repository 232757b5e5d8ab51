"""The health rules a running training job is judged by (loratui.training.health): speed below half its median,
loss rising over a whole epoch, VRAM over 95 %; and the loss trend the Train step shows."""

from __future__ import annotations

from loratui.training.health import health_warnings, loss_trend


def test_a_steady_run_has_no_warning() -> None:
    losses = [0.2 - 0.001 * i for i in range(40)]
    assert health_warnings(losses, [3.0] * 40, 10, 7.9, 24.0) == []


def test_speed_below_half_its_median_names_memory_spilling() -> None:
    speeds = [3.0] * 30 + [1.4]
    (warning,) = health_warnings([0.1] * 31, speeds, 10)
    assert warning.startswith("speed fell to 1.4 pictures/s, under half its usual 3.0")
    assert "memory may be spilling to system RAM" in warning
    # A little slower is not a warning, and a handful of steps is too few to judge.
    assert health_warnings([0.1] * 31, [3.0] * 30 + [1.6], 10) == []
    assert health_warnings([0.1] * 5, [3.0] * 4 + [0.5], 10) == []


def test_loss_rising_for_a_whole_epoch_is_a_warning() -> None:
    falling = [0.20 - 0.002 * i for i in range(10)]  # epoch 1: 0.20 -> 0.18
    rising = [0.20 + 0.01 * i for i in range(10)]  # epoch 2: 0.20 -> 0.29, mean 0.245
    (warning,) = health_warnings(falling + rising, [3.0] * 20, 10)
    assert warning.startswith("loss rose for a whole epoch (0.191 -> 0.245)")
    # Noise around the same level is not "rising", nor is an epoch that went up and came back down.
    noisy = [0.2, 0.22, 0.19, 0.21] * 5
    assert health_warnings(noisy, [3.0] * 20, 10) == []
    up_then_down = [0.3 - 0.01 * i for i in range(10)]
    assert health_warnings(falling + up_then_down, [3.0] * 20, 10) == []
    # Less than two epochs of losses: nothing to compare.
    assert health_warnings(rising, [3.0] * 10, 10) == []


def test_vram_over_95_percent_is_a_warning() -> None:
    (warning,) = health_warnings([], [], None, 23.2, 24.0)
    assert warning.startswith("VRAM 23.2 of 24 GB (97%): close to running out")
    assert health_warnings([], [], None, 22.0, 24.0) == []
    assert health_warnings([], [], None, None, None) == []  # a CPU run reports none


def test_loss_trend() -> None:
    assert loss_trend([0.3, 0.2]) == ""  # too few
    assert loss_trend([0.30, 0.29, 0.20, 0.19]) == "falling"
    assert loss_trend([0.20, 0.19, 0.30, 0.29]) == "rising"
    assert loss_trend([0.200, 0.201, 0.199, 0.201]) == "flat"
    # The last 100 against the 100 before: what happened earlier does not count.
    assert loss_trend([0.9] * 50 + [0.2] * 200, window=100) == "flat"
