"""Training runs under control: TensorBoard scalars, out of GPU memory, Ctrl-C, and a multi-GPU launch's lock,
Ctrl-C and failure handling (2-process CPU DDP)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from job_events import job_events
from test_train import step_events, tiny_project

from loratui.cli import main


@pytest.fixture(autouse=True)
def _own_speed_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORATUI_DATA_DIR", str(tmp_path / "user-data"))


# --- TensorBoard ---------------------------------------------------------------------------------


def test_crc32c_matches_the_castagnoli_check_value() -> None:
    from loratui.training.tensorboard_log import crc32c

    assert crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C
    assert crc32c(b"") == 0


def test_tensorboard_reads_kohyas_tags_with_the_run_losses(tmp_path: Path, tiny_sd15_dir: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from loratui.training.loop import run_training

    project, config = tiny_project(tmp_path, tiny_sd15_dir, epochs=2, tensorboard=True, lr_scheduler="cosine")
    run_training(project, config)
    runs = list((project.logs_dir / "tensorboard").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("project-")
    board = EventAccumulator(str(runs[0]))
    board.Reload()
    tags = set(board.Tags()["scalars"])
    assert tags == {"loss/current", "loss/average", "lr/unet", "lr/textencoder", "loss/epoch_average"}
    steps = step_events(project)
    current = board.Scalars("loss/current")
    assert [s.step for s in current] == [e["step"] for e in steps] == [1, 2, 3, 4]
    assert [s.value for s in current] == pytest.approx([e["loss"] for e in steps], rel=1e-6)
    # loss/average: the mean of the last steps-per-epoch (2) losses, as kohya's loss recorder keeps it.
    losses = [e["loss"] for e in steps]
    expected = [losses[0], *[(a + b) / 2 for a, b in zip(losses, losses[1:], strict=False)]]
    assert [s.value for s in board.Scalars("loss/average")] == pytest.approx(expected, rel=1e-6)
    assert [s.value for s in board.Scalars("lr/unet")] == pytest.approx([e["lr"] for e in steps], rel=1e-6)
    # The same cosine shape on both groups, each from its own rate (unet 1e-3, text encoder 1e-4).
    te_rates = [s.value for s in board.Scalars("lr/textencoder")]
    assert [r / 1e-4 for r in te_rates] == pytest.approx([e["lr"] / 1e-3 for e in steps], rel=1e-5)
    assert te_rates[-1] < te_rates[0]
    epochs = board.Scalars("loss/epoch_average")
    assert [s.step for s in epochs] == [1, 2]
    assert [s.value for s in epochs] == pytest.approx([sum(losses[:2]) / 2, sum(losses[2:]) / 2], rel=1e-6)


def test_tensorboard_is_off_by_default(tmp_path: Path, tiny_sd15_dir: Path) -> None:
    from loratui.training.loop import run_training

    project, config = tiny_project(tmp_path, tiny_sd15_dir, epochs=1)
    assert config.training.tensorboard is False
    run_training(project, config)
    assert not (project.logs_dir / "tensorboard").exists()


# --- out of GPU memory ---------------------------------------------------------------------------


def test_out_of_gpu_memory_is_one_line_with_the_knobs_and_keeps_checkpoints(
    tmp_path: Path, tiny_sd15_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import torch

    from loratui.training import loop

    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=3)
    real_forward = loop._Run._forward
    calls = {"n": 0}

    def runs_out(self, samples):
        calls["n"] += 1
        if calls["n"] == 4:  # the first step of epoch 2: epoch 1's checkpoint is on disk
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(self, samples)

    monkeypatch.setattr(loop._Run, "_forward", runs_out)
    assert main(["train", str(project.root)]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # the lines before it are the progress bar's
    assert "Traceback" not in err and last.startswith("loratui: ") and "ran out of memory at step 4" in last
    for knob in ("batch_size", "resolution", "gradient_checkpointing", "AdamW8bit", "cache_latents"):
        assert knob in last
    events = job_events(project)
    assert events[-1]["type"] == "error" and "out of memory" in events[-1]["message"]
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3]
    assert (project.output_dir / "project-000001.safetensors").is_file()
    job = json.loads((project.state_dir / "jobs" / "training.json").read_text())
    assert job["status"] == "failed" and "out of memory" in job["message"]


def test_out_of_memory_while_loading_says_so(
    tmp_path: Path, tiny_sd15_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from loratui.training import loop
    from loratui.training.health import TrainingFailed

    project, config = tiny_project(tmp_path, tiny_sd15_dir)

    def no_room(self, allow_pickle):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(loop._Run, "_load_model", no_room)
    with pytest.raises(TrainingFailed, match="out of memory loading the model or in the first step: try"):
        loop.run_training(project, config)


# --- Ctrl-C --------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("LORATUI_LAUNCHED", None)
    return env


def _wait_for_step(project, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"training ended before its first step: {process.communicate()}")
        if step_events(project):
            return
        time.sleep(0.2)
    process.kill()
    raise AssertionError("no step event in time")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM],
                         ids=["ctrl-c", "ssh-lost", "sigterm"])
def test_a_stop_signal_stops_after_the_step_with_a_state_that_resumes(
    tmp_path: Path, tiny_sd15_dir: Path, signum: int
) -> None:
    """Ctrl-C, a dropped SSH connection (SIGHUP) and a shutdown's SIGTERM each cost one step, not an epoch."""
    project, config = tiny_project(tmp_path, tiny_sd15_dir, epochs=200, save_every_n_epochs=0)
    process = subprocess.Popen([sys.executable, "-m", "loratui", "train", str(project.root)], env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_step(project, process)
    os.killpg(process.pid, signum)  # what the terminal (or the SSH server, or a shutdown) sends
    out, err = process.communicate(timeout=120)
    # 128 + the signal, as the help says: a shell sees that a signal ended it, though it ended cleanly.
    assert process.returncode == 128 + signum, err[-2000:]
    assert "loratui: stopping after this step, saving a state…" in err
    assert "Stopped:" in out and f"loratui train {project.root} --resume" in out
    steps = [e["step"] for e in step_events(project)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < 400
    assert (project.output_dir / f"project-step{steps[-1]:08d}.safetensors").is_file()
    job = json.loads((project.state_dir / "jobs" / "training.json").read_text())
    assert job["status"] == "stopped"
    assert job_events(project)[-1]["summary"]["stopped_by"] == STOPPED_BY[signum]
    assert not any(e["type"] == "warning" for e in job_events(project))  # a stop asked for is no warning

    from loratui.training.run_position import read_position, state_folder

    assert read_position(state_folder(project.state_dir)).step == steps[-1]


def test_an_ssh_connection_lost_stops_after_the_step_with_a_state(tmp_path: Path, tiny_sd15_dir: Path) -> None:
    """The real thing: training on a terminal (a pty that is its controlling terminal) that goes away. The kernel
    sends SIGHUP, and every later write to the terminal fails (EIO): the run must still save and end cleanly."""
    import fcntl
    import pty
    import termios

    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=200, save_every_n_epochs=0)
    master, slave = pty.openpty()

    def own_terminal() -> None:  # a login shell's session: the pty is the controlling terminal
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    process = subprocess.Popen([sys.executable, "-m", "loratui", "train", str(project.root)], env=_env(),
                               stdin=slave, stdout=slave, stderr=slave, preexec_fn=own_terminal)
    os.close(slave)
    reader = __import__("threading").Thread(target=_drain, args=(master,), daemon=True)
    reader.start()
    _wait_for_step(project, process)
    os.close(master)  # the SSH connection drops: the terminal hangs up
    assert process.wait(timeout=120) == 128 + signal.SIGHUP
    steps = [e["step"] for e in step_events(project)]
    assert (project.output_dir / f"project-step{steps[-1]:08d}.safetensors").is_file()
    job = json.loads((project.state_dir / "jobs" / "training.json").read_text())
    assert job["status"] == "stopped"
    assert job_events(project)[-1]["summary"]["stopped_by"] == "the terminal closed (SIGHUP)"

    from loratui.training.run_position import read_position, state_folder

    assert read_position(state_folder(project.state_dir)).step == steps[-1]


def _drain(fd: int) -> None:
    """Read the terminal's output as a terminal emulator would, until it closes."""
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass


STOPPED_BY = {signal.SIGINT: "Ctrl-C", signal.SIGHUP: "the terminal closed (SIGHUP)", signal.SIGTERM: "SIGTERM"}


def test_ctrl_c_says_at_once_that_it_stops_after_the_step(tmp_path: Path, tiny_sd15_dir: Path) -> None:
    """The line comes when the key is pressed, before the step ends: a slow step (one picture at 512 px on two
    cores takes seconds) shows the stop was heard."""
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=200, save_every_n_epochs=0)
    process = subprocess.Popen([sys.executable, "-m", "loratui", "train", str(project.root)], env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for_step(project, process)
    os.killpg(process.pid, signal.SIGINT)
    said = b""
    deadline = time.monotonic() + 30
    assert process.stderr is not None
    os.set_blocking(process.stderr.fileno(), False)
    while b"saving a state" not in said and time.monotonic() < deadline:
        said += process.stderr.read() or b""
        time.sleep(0.05)
    heard = len(step_events(project))
    process.communicate(timeout=120)
    assert b"stopping after this step, saving a state" in said
    assert heard <= len(step_events(project))  # said while the run still went on (or as it stopped)


def test_stop_now_ends_a_foreground_run_at_once(tmp_path: Path, tiny_sd15_dir: Path) -> None:
    """`loratui stop --now` still means now, though a plain SIGTERM to a training run means "after this step"."""
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=200, save_every_n_epochs=0)
    process = subprocess.Popen([sys.executable, "-m", "loratui", "train", str(project.root)], env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_step(project, process)
    assert main(["stop", str(project.root), "--now"]) == 0
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Stopped:" not in out  # no step-named file, no state: it did not finish the step
    assert not list(project.output_dir.glob("*-step*.safetensors"))
    job = json.loads((project.state_dir / "jobs" / "training.json").read_text())
    assert job["status"] == "stopped" and job["message"] == "terminated (SIGTERM)"


# --- multi-GPU launch (2 CPU processes) ----------------------------------------------------------


def test_multi_gpu_launcher_holds_the_lock_and_turns_ctrl_c_into_a_clean_stop(
    tmp_path: Path, tiny_sd15_dir: Path
) -> None:
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, {"akari": (2, [(128, 128)] * 4)}, epochs=200,
                              save_every_n_epochs=0)
    process = subprocess.Popen([sys.executable, "-m", "loratui", "train", str(project.root), "--gpus", "2"],
                               env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    _wait_for_step(project, process, timeout=300)
    job = json.loads((project.state_dir / "jobs" / "training.json").read_text())
    assert job["pid"] == process.pid and job["status"] == "running"  # the launcher, not a rank
    assert main(["train", str(project.root)]) == 2  # one job per project while the ranks run
    os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C: the ranks live in their own session
    out, err = process.communicate(timeout=180)
    assert process.returncode == 130, err[-3000:]  # stopped cleanly, by Ctrl-C: as with one process
    assert out.count("Stopped:") == 1 and err.count("stopping after this step, saving a state…") == 1
    events = job_events(project)
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < 400
    assert events[-1]["type"] == "done" and events[-1]["stopped"] is True
    assert (project.output_dir / f"project-step{steps[-1]:08d}.safetensors").is_file()
    job = json.loads((project.state_dir / "jobs" / "training.json").read_text())
    assert job["status"] == "stopped" and job["pid"] == process.pid
    assert not (project.state_dir / "jobs" / "training.stop").exists()


def test_multi_gpu_bad_input_fails_once_before_launching(
    tmp_path: Path, tiny_sd15_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    project, config = tiny_project(tmp_path, tiny_sd15_dir)
    config.project.base_model = str(tmp_path / "nowhere.safetensors")
    project.save(config)
    assert main(["train", str(project.root), "--gpus", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere.safetensors" in err[0]
    assert not (project.state_dir / "jobs" / "training.json").exists()  # refused before the launch took the job slot


def test_accumulation_syncs_gradients_once_per_step_with_the_same_losses(tmp_path: Path, tiny_sd15_dir: Path) -> None:
    """2 ranks, 2 micro-batches a step: gradients are all-reduced on the last micro-batch only (no_sync on the
    others), and the run's losses equal those of syncing every micro-batch, as loratui did before."""
    from loratui.training.loop import SYNC_EVERY_BATCH_ENV

    losses = {}
    for name, extra in (("no_sync", {}), ("every batch", {SYNC_EVERY_BATCH_ENV: "1"})):
        project, _ = tiny_project(tmp_path / name.replace(" ", "-"), tiny_sd15_dir, {"akari": (1, [(128, 128)] * 8)},
                                  epochs=2, batch_size=1, gradient_accumulation_steps=2, save_every_n_epochs=0)
        done = subprocess.run([sys.executable, "-m", "loratui", "train", str(project.root), "--gpus", "2"],
                              env={**_env(), **extra}, capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stderr[-3000:]
        steps = step_events(project)
        assert [e["step"] for e in steps] == [1, 2, 3, 4]  # 8 pictures / (1 x 2 micro-batches x 2 ranks) x 2 epochs
        losses[name] = [e["loss"] for e in steps]
    assert losses["no_sync"] == pytest.approx(losses["every batch"], rel=1e-5, abs=1e-7)
