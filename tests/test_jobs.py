"""Jobs: the one-job lock, detached starts in their own session, status (incl. LOST), logs, stop — real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loratui.cli import main
from loratui.errors import LoratuiError
from loratui.project import Project, create_project
from loratui.training.events import EventWriter, events_path
from loratui.training.jobs import (
    DONE,
    FAILED,
    LOST,
    RUNNING,
    STOPPED,
    STOPPING,
    job_lock,
    job_status,
    lock_held,
    pid_alive,
    read_job,
    start_detached,
    stop_file,
)

PYTHON = sys.executable
# Bounded waits for other processes (never asserted as timings: a slow machine only waits longer).
WAIT_S = 60


def loratui(*args: str, timeout: float = WAIT_S) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "loratui", *args], capture_output=True, text=True, timeout=timeout)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A bare project: the lock, status, logs and stop need nothing but the folder and its loratui.toml."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "loratui.toml").write_text("")
    return Project(root)


@pytest.fixture
def demo_pictures_project(tmp_path: Path) -> Project:
    """A project over a few of the demo's made-up pictures (the demo's tiny models are not needed to prepare)."""
    from loratui.demo.images import build_demo_images

    pictures = tmp_path / "pictures"
    build_demo_images(pictures, count=6)
    created, config = create_project(tmp_path / "demo", pictures, "akari", repeats=2, trigger="akari")
    config.dataset.resolution = 128
    config.dataset.min_bucket_reso = 64
    config.dataset.crop = "center"
    created.save(config)
    return created


class HeldLock:
    """Holds a project's job lock in a thread of this process until released."""

    def __init__(self, project: Project, kind: str = "train"):
        self.entered, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(project, kind), daemon=True)

    def _hold(self, project: Project, kind: str) -> None:
        with job_lock(project, kind, ["train", str(project.root)]):
            self.entered.set()
            self.release.wait(WAIT_S)

    def __enter__(self) -> HeldLock:
        self.thread.start()
        assert self.entered.wait(WAIT_S)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(WAIT_S)


# --- detached prepare, end to end ------------------------------------------------------------------


def test_prepare_detach_returns_at_once_and_status_logs_follow_it(demo_pictures_project):
    root = demo_pictures_project.root
    started = loratui("prepare", str(root), "--detach")
    assert started.returncode == 0, started.stderr
    assert "pid" in started.stdout and "logs/prepare.log" in started.stdout
    assert f"loratui logs {root} --follow" in started.stdout
    record = read_job(demo_pictures_project)
    assert record is not None and record.kind == "prepare"
    assert record.argv == ["prepare", str(root.resolve())]  # the same command, without --detach

    status = loratui("status", str(root), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] in (RUNNING, DONE)

    followed = loratui("logs", str(root), "--follow")
    assert followed.returncode == 0, followed.stderr
    lines = followed.stdout.splitlines()
    assert any(" prepare 6/6" in line for line in lines)
    assert " done prepared 6 " in lines[-1]

    pictures = sorted((root / "dataset" / "2_akari").glob("*.png"))
    assert len(pictures) == 6
    final = job_status(demo_pictures_project)
    assert final.state == DONE and (final.done, final.total) == (6, 6)
    assert read_job(demo_pictures_project).status == DONE
    assert "6 prepared" in (root / "logs" / "prepare.log").read_text()

    shown = loratui("status", str(root))
    assert "State       DONE" in shown.stdout and "prepare 6/6 (100.0%)" in shown.stdout


def test_a_detached_child_has_its_own_session_and_no_terminal(project):
    # `logs --follow` on its own "starting" record watches forever: a long-lived child that needs no models.
    job = start_detached(project, "watch", ["logs", str(project.root), "--follow"])
    try:
        assert os.getsid(job.pid) == job.pid  # start_new_session: an SSH hang-up never reaches it
        assert os.readlink(f"/proc/{job.pid}/fd/0") == os.devnull
        assert job.log_path == project.logs_dir / "watch.log"
        status = job_status(project)
        assert status.state == RUNNING and status.starting and status.pid == job.pid
        assert main(["stop", str(project.root), "--now"]) == 0
        wait_until(lambda: not pid_alive(job.pid), "the SIGTERM to end the child")
    finally:
        if pid_alive(job.pid):
            os.killpg(job.pid, signal.SIGKILL)
    status = job_status(project)
    assert status.state == LOST and "gone without finishing" in status.message


def test_a_child_that_fails_at_once_is_reported_with_its_error(project, tmp_path):
    with pytest.raises(LoratuiError) as caught:
        start_detached(project, "prepare", ["prepare", str(tmp_path / "nowhere")])
    message = str(caught.value)
    assert "the prepare job stopped at once" in message and "nowhere: no such folder" in message
    assert "\n" not in message
    assert read_job(project).status == FAILED
    assert job_status(project).state == FAILED


# --- the lock ------------------------------------------------------------------------------------------


def test_a_second_heavy_command_is_refused_while_a_job_holds_the_lock(demo_pictures_project, capsys):
    with HeldLock(demo_pictures_project, "train"):
        assert lock_held(demo_pictures_project)
        assert main(["prepare", str(demo_pictures_project.root)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert f"a train job is running (pid {os.getpid()})" in err
        assert f"loratui status {demo_pictures_project.root}" in err and "loratui stop" in err
        with pytest.raises(LoratuiError, match="a train job is running"):
            start_detached(demo_pictures_project, "prepare", ["prepare", str(demo_pictures_project.root)])
        assert not (demo_pictures_project.root / "dataset" / "2_akari").exists()
    assert not lock_held(demo_pictures_project)
    assert read_job(demo_pictures_project).status == DONE


def test_the_lock_frees_when_its_holder_is_killed_and_status_says_lost(project):
    holder = subprocess.Popen(
        [PYTHON, "-c", "import sys, time\nfrom loratui.project import Project\n"
         "from loratui.training.jobs import job_lock\n"
         f"with job_lock(Project.open({str(project.root)!r}), 'train', ['train']):\n"
         "    print('held', flush=True)\n    time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert job_status(project).state == RUNNING
        holder.send_signal(signal.SIGKILL)
        holder.wait(WAIT_S)
    finally:
        holder.kill()
        holder.stdout.close()
    assert not lock_held(project)  # the OS dropped it with the process: no stale lock
    assert read_job(project).status == RUNNING  # the record could not be closed...
    status = job_status(project)
    assert status.state == LOST  # ...so status tells the truth instead
    with job_lock(project, "prepare", ["prepare"]):
        assert read_job(project).kind == "prepare"
    assert job_status(project).state == DONE


def test_sigterm_closes_the_record_as_stopped(project):
    holder = subprocess.Popen(
        [PYTHON, "-c", "import time\nfrom loratui.project import Project\nfrom loratui.training.jobs import job_lock\n"
         f"with job_lock(Project.open({str(project.root)!r}), 'train', ['train']):\n"
         "    print('held', flush=True)\n    time.sleep(600)\n"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGTERM)
        holder.wait(WAIT_S)
    finally:
        holder.kill()
        holder.stdout.close()
    record = read_job(project)
    assert (record.status, record.message) == (STOPPED, "terminated (SIGTERM)")
    assert job_status(project).state == STOPPED


def test_lost_from_a_record_whose_process_is_gone(project):
    gone = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    project.state_dir.mkdir()
    (project.state_dir / "job.json").write_text(json.dumps(
        {"kind": "train", "pid": int(gone.stdout), "started": time.time() - 60, "argv": ["train"],
         "status": "running"}))
    assert job_status(project).state == LOST
    assert main(["stop", str(project.root)]) == 2


def test_the_record_ends_failed_or_stopped_as_the_job_did(project):
    with pytest.raises(LoratuiError), job_lock(project, "train", ["train"]):
        raise LoratuiError("base model not found")
    status = job_status(project)
    assert (status.state, status.message) == (FAILED, "base model not found")

    # The training loop's own `done` with stopped=True is enough (the contract with the loop).
    with job_lock(project, "train", ["train"]), EventWriter(events_path(project.logs_dir)) as events:
        events.start(config={}, total_steps=10, steps_per_epoch=5, epochs=2)
        events.step(step=3, epoch=1, loss=0.1, lr=1e-4, images_per_s=2.0, eta_s=7)
        events.warning("stopped by request at step 3")
        events.done(stopped=True)
    assert read_job(project).status == STOPPED
    status = job_status(project)
    assert (status.state, status.step, status.total_steps) == (STOPPED, 3, 10)


def test_a_leftover_stop_file_does_not_stop_the_next_job(project):
    project.state_dir.mkdir()
    stop_file(project).write_text("{}")
    with job_lock(project, "train", ["train"]) as job:
        assert not job.stop_requested
    assert not stop_file(project).exists()


# --- stop ----------------------------------------------------------------------------------------------


def test_stop_creates_the_stop_file_and_refuses_when_nothing_runs(project, capsys):
    assert main(["stop", str(project.root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no job is running, nothing to stop" in err and "\n" not in err
    assert not stop_file(project).exists()

    with HeldLock(project, "train"):
        assert main(["stop", str(project.root)]) == 0
        out = capsys.readouterr().out
        assert "finishes its current step, saves, and exits" in out and f"loratui status {project.root}" in out
        assert stop_file(project).exists()
        assert job_status(project).state == STOPPING


def test_a_stop_request_cancels_a_job_that_takes_a_cancel_token(project):
    with pytest.raises(LoratuiError, match="cancelled"), job_lock(project, "tag", ["tag"]) as job:
        job.progress()  # reports through events, as prepare and tag do
        token = job.cancel_token(poll_s=0.02)
        stop_file(project).write_text("{}")
        wait_until(lambda: token.cancelled, "the stop file to cancel the token")
        token.check()
    events = [json.loads(line) for line in events_path(project.logs_dir).read_text().splitlines()]
    assert [e["type"] for e in events] == ["warning", "done"] and events[-1]["stopped"] is True
    assert job_status(project).state == STOPPED


# --- logs ----------------------------------------------------------------------------------------------


def write_two_runs(project: Project) -> None:
    project.logs_dir.mkdir()
    with EventWriter(events_path(project.logs_dir)) as events:
        events.start(config={}, total_steps=20, steps_per_epoch=10, epochs=2)
        events.step(step=1, epoch=1, loss=0.5, lr=2e-4, images_per_s=1.0, eta_s=100)
        events.error("CUDA out of memory")
        events.start(config={}, total_steps=960, steps_per_epoch=120, epochs=8)
        events.step(step=120, epoch=3, loss=0.0912, lr=1e-4, images_per_s=4.2, eta_s=725)
        events.checkpoint(path=project.output_dir / "hero-000003.safetensors", epoch=3)
        events.step(step=121, epoch=3, loss=float("nan"), lr=1e-4, images_per_s=4.1, eta_s=724)


def test_logs_shows_only_the_last_run_as_readable_lines(project, capsys):
    write_two_runs(project)
    assert main(["logs", str(project.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[0].endswith("start: 960 steps = 8 epochs x 120 steps")
    assert lines[1].endswith("step 120/960 epoch 3 loss 0.0912 lr 1.0e-04 4.2 img/s ETA 12m")
    assert lines[2].endswith("checkpoint epoch 3: " + str(project.output_dir / "hero-000003.safetensors"))
    assert "loss nan" in lines[3]
    assert not any("out of memory" in line for line in lines)

    assert main(["logs", str(project.root), "--raw"]) == 0
    raw = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["type"] for e in raw] == ["start", "step", "checkpoint", "step"]


def test_logs_follow_ends_with_the_run(project, capsys):
    write_two_runs(project)
    with EventWriter(events_path(project.logs_dir)) as events:
        events.error("loss is NaN at step 121: the last good checkpoint is kept")
    assert main(["logs", str(project.root), "--follow"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].endswith("error: loss is NaN at step 121: the last good "
                                                             "checkpoint is kept")


def test_status_shows_the_training_figures(project, capsys):
    write_two_runs(project)
    with HeldLock(project, "train"):
        # The held job's events start where it took the lock: write this run's events after that.
        with EventWriter(events_path(project.logs_dir)) as events:
            events.start(config={}, total_steps=960, steps_per_epoch=120, epochs=8)
            events.step(step=120, epoch=3, loss=0.0912, lr=1e-4, images_per_s=4.2, eta_s=725)
            events.checkpoint(path=project.output_dir / "hero-000003.safetensors", epoch=3)
        assert main(["status", str(project.root)]) == 0
        out = capsys.readouterr().out
    assert "State       RUNNING" in out
    assert "step 120/960 (12.5%), epoch 3/8" in out
    assert "loss 0.0912   lr 1.0e-04   4.2 img/s   ETA 12m" in out
    assert "Checkpoint  output/hero-000003.safetensors (epoch 3)" in out


def test_status_of_a_project_that_never_ran_a_job(project, capsys):
    assert main(["status", str(project.root)]) == 0
    assert "No job has run in this project yet." in capsys.readouterr().out
    assert main(["status", str(project.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "none"


def test_tag_detach_reruns_the_same_command(project):
    from loratui.cli import build_parser
    from loratui.commands.tag_cmd import _job_argv

    args = build_parser().parse_args(["tag", str(project.root), "--detach", "--mcut", "--no-write-rating",
                                      "--general-threshold", "0.4", "--concept", "hero"])
    assert _job_argv(args) == ["tag", str(project.root.resolve()), "--general-threshold", "0.4", "--mcut",
                               "--no-write-rating", "--concept", "hero"]


def test_log_lines_read_like_sentences() -> None:
    from loratui.commands.jobs_cmd import format_event

    context: dict = {}
    at = 1_800_000_000.0
    start = format_event({"type": "start", "time": at, "total_steps": 96, "epochs": 4, "steps_per_epoch": 24},
                         context)
    assert start.endswith("start: 96 steps = 4 epochs x 24 steps")
    step = format_event({"type": "step", "time": at, "step": 12, "epoch": 1, "loss": 0.09123, "lr": 1e-4,
                         "images_per_s": 4.25, "eta_s": 725}, context)
    assert step.endswith("step 12/96 epoch 1 loss 0.0912 lr 1.0e-04 4.2 img/s ETA 12m")
    cell = format_event({"type": "cell", "time": at, "checkpoint": "output/a-000002.safetensors", "epoch": 2,
                         "weight": 0.8, "file": "preview/cells/k.png", "seconds": 0.49, "score": 0.713})
    assert cell.endswith("cell epoch 2 at 0.8: score 0.71 (0.5 s) preview/cells/k.png")
    failed = format_event({"type": "cell", "time": at, "checkpoint": "output/odd.safetensors", "epoch": None,
                           "weight": 1.0, "file": None, "seconds": 0.0, "score": None, "error": "cannot be loaded"})
    assert failed.endswith("cell odd.safetensors at 1.0: error: cannot be loaded (0.0 s)")


@pytest.mark.parametrize(("kind", "state", "expected"), [
    ("prepare", "done", "loratui tag P"),
    ("tag", "done", "loratui tags P --list"),
    ("train", "done", "loratui grid P"),
    ("grid", "done", "loratui grid P --text · loratui install P --to LORA_DIR"),
    ("train", "stopped", "loratui train P --resume"),
    ("grid", "failed", "loratui logs P"),
    ("train", "running", "loratui logs P --follow · loratui stop P"),
])
def test_status_suggests_the_next_stage(kind: str, state: str, expected: str) -> None:
    from loratui.commands.jobs_cmd import _next_hint
    from loratui.training.jobs import JobStatus

    assert _next_hint(JobStatus(state=state, kind=kind), "P") == expected
