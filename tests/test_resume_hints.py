"""A real training run stopped with Ctrl-C: `status` and `logs` name `train DIR --resume`, the stop is no
warning, and a resume that fails at once in a new job does not hide where the stopped run stands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import step_events, tiny_project
from test_train_control import _env, _wait_for_step

from loratui.cli import main


@pytest.fixture(autouse=True)
def _own_speed_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORATUI_DATA_DIR", str(tmp_path / "user-data"))


def _loratui(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loratui", *args], capture_output=True, text=True, env=_env(),
                          timeout=120)


def _without_clock(text: str) -> list[str]:
    return [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in text.splitlines()]


def test_a_stopped_run_is_resumed_next_even_after_a_resume_that_failed(
    tmp_path: Path, tiny_sd15_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=200, save_every_n_epochs=0)
    root = str(project.root)
    process = subprocess.Popen([sys.executable, "-m", "loratui", "train", root], env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_step(project, process)
    os.killpg(process.pid, signal.SIGINT)
    process.communicate(timeout=120)
    step = step_events(project)[-1]["step"]
    resume = f"loratui train {root} --resume (goes on from step {step} of 400)"

    status = _loratui("status", root)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert "State       STOPPED" in lines and f"Next        {resume}" in lines
    assert not any(line.startswith("Warnings") for line in lines)  # Ctrl-C was asked for: no warning
    logs = _loratui("logs", root)
    assert logs.returncode == 0 and "warning:" not in logs.stdout
    ended = rf"stopped after \d+s at step {step} of 400 \(Ctrl-C\); LoRA so far "
    assert re.match(ended, _without_clock(logs.stdout)[-1])
    assert logs.stderr.splitlines()[-1] == f"Next: {resume}"

    # `train --resume` fails at once in a new job (the GPU is busy): before its first step
    import torch

    from loratui.training import loop

    def no_room(self, allow_pickle):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(loop._Run, "_load_model", no_room)
    assert main(["train", root, "--resume"]) == 2
    capsys.readouterr()
    assert main(["status", root]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "State       FAILED" in lines and any(line.startswith("Message     ") and "out of memory" in line
                                                   for line in lines)
    assert f"Next        {resume} · loratui logs {root}" in lines
    assert main(["logs", root]) == 0
    captured = capsys.readouterr()
    shown = _without_clock(captured.out)
    assert shown[0].startswith("start: train job") and shown[0].endswith(f"loratui train {root} --resume")
    heading = next(i for i, line in enumerate(shown) if line.startswith("This job ran no step; the run before it"))
    assert shown[heading - 1] == "" and any(line.startswith("error: ") for line in shown[:heading])
    assert re.match(ended, shown[-1])  # the earlier run's own end, still in sight
    assert captured.err.splitlines()[-1] == f"Next: {resume}"
