"""Jobs: locks per resource, detached starts in their own session, status (incl. LOST), logs, stop — real processes."""

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
from loratui.jobs import events as ev
from loratui.jobs.detached import start_detached
from loratui.jobs.kinds import DATASET, DONE, FAILED, LOST, PREVIEW, RUNNING, STARTING, STOPPED, STOPPING, TRAINING
from loratui.jobs.liveness import pid_alive
from loratui.jobs.locks import is_locked
from loratui.jobs.paths import record_path, stop_path
from loratui.jobs.record import read_record
from loratui.jobs.runner import job
from loratui.jobs.status import job_status
from loratui.project import Project, create_project

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
    """A bare project: the locks, status, logs and stop need nothing but the folder and its loratui.toml."""
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


class HeldJob:
    """Runs a job of ``kind`` in a thread of this process until released (its events are written by ``body``)."""

    def __init__(self, project: Project, kind: str = "train", body=None):
        self.entered, self.release = threading.Event(), threading.Event()
        self.body = body
        self.thread = threading.Thread(target=self._hold, args=(project, kind), daemon=True)

    def _hold(self, project: Project, kind: str) -> None:
        with job(project, kind, [kind, str(project.root)]) as handle:
            self.handle = handle
            if self.body is not None:
                self.body(handle)
            self.entered.set()
            self.release.wait(WAIT_S)

    def __enter__(self) -> HeldJob:
        self.thread.start()
        assert self.entered.wait(WAIT_S)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(WAIT_S)


# --- detached prepare, end to end ------------------------------------------------------------------


def test_prepare_detach_returns_once_started_and_status_logs_follow_it(demo_pictures_project):
    root = demo_pictures_project.root
    started = loratui("prepare", str(root), "--detach")
    assert started.returncode == 0, started.stderr
    assert "pid" in started.stdout and "logs/prepare.log" in started.stdout and "logs/events/prepare-" in started.stdout
    assert f"loratui logs {root} --follow" in started.stdout
    record = read_record(demo_pictures_project, DATASET)
    assert record is not None and record.kind == "prepare"
    assert record.argv == ["prepare", str(root.resolve())]  # the same command, without --detach

    status = loratui("status", str(root), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] in (RUNNING, DONE)

    followed = loratui("logs", str(root), "--follow")
    assert followed.returncode == 0, followed.stderr
    lines = followed.stdout.splitlines()
    assert " start: prepare job" in lines[0]
    assert any(" prepare 6/6" in line for line in lines)
    assert lines[-1].endswith(f" done: 6 prepared, 0 unchanged, 0 skipped, 0 warnings; pictures in {root / 'dataset'}")

    pictures = sorted((root / "dataset" / "2_akari").glob("*.png"))
    assert len(pictures) == 6
    final = job_status(demo_pictures_project)
    assert final.state == DONE and (final.done, final.total) == (6, 6) and final.kind == "prepare"
    assert read_record(demo_pictures_project, DATASET).status == DONE
    assert "6 prepared" in (root / "logs" / "prepare.log").read_text()

    shown = loratui("status", str(root))
    assert "State       DONE" in shown.stdout and "prepare 6/6 (100.0%)" in shown.stdout


def test_a_detached_child_has_its_own_session_and_no_terminal(project):
    # `logs --follow --job train` on its own "starting" record watches forever: a long-lived child with no models.
    handle = start_detached(project, "train", ["logs", str(project.root), "--follow", "--job", "train"])
    try:
        assert handle.poll() in (STARTING, RUNNING)  # asks, never waits
        assert os.getsid(handle.pid) == handle.pid  # start_new_session: an SSH hang-up never reaches it
        assert os.readlink(f"/proc/{handle.pid}/fd/0") == os.devnull
        assert handle.log_path == project.logs_dir / "train.log"
        assert is_locked(project, TRAINING)  # the child inherited the lock: no gap after the parent let go
        status = job_status(project, TRAINING)
        assert status.state == RUNNING and status.starting and status.pid == handle.pid
        assert main(["stop", str(project.root), "--now"]) == 0
        wait_until(lambda: not pid_alive(handle.pid), "the SIGTERM to end the child")
    finally:
        if pid_alive(handle.pid):
            os.killpg(handle.pid, signal.SIGKILL)
    assert not is_locked(project, TRAINING)
    status = job_status(project, TRAINING)
    assert status.state == LOST and "gone without finishing" in status.message


def test_a_child_that_fails_at_once_is_reported_with_its_error(project, tmp_path):
    handle = start_detached(project, "prepare", ["prepare", str(tmp_path / "nowhere")])
    with pytest.raises(LoratuiError) as caught:
        handle.wait_started()
    message = str(caught.value)
    assert "the prepare job stopped at once" in message and "nowhere: no such folder" in message
    assert "\n" not in message
    assert read_record(project, DATASET).status == FAILED
    assert job_status(project).state == FAILED


def test_train_detach_with_a_missing_base_model_refuses_and_starts_nothing(demo_pictures_project, capsys):
    config = demo_pictures_project.load()
    config.project.base_model = "models/nothere.safetensors"
    demo_pictures_project.save(config)
    done = loratui("train", str(demo_pictures_project.root), "--detach")
    assert done.returncode == 2
    assert done.stderr.strip() == "loratui: models/nothere.safetensors: not found: check the path"
    assert "Started" not in done.stdout
    assert read_record(demo_pictures_project, TRAINING) is None
    assert not (demo_pictures_project.logs_dir / "train.log").exists()


def test_the_preflight_loads_no_torch(demo_pictures_project):
    """The checks before a run (and before a detached start) run without torch, accelerate or diffusers."""
    code = ("import sys\nfrom loratui.project import Project\nfrom loratui.errors import LoratuiError\n"
            "from loratui.training.preflight import preflight\n"
            f"p = Project.open({str(demo_pictures_project.root)!r})\n"
            "try:\n    preflight(p, p.load())\nexcept LoratuiError as e:\n    print('refused:', e)\n"
            "heavy = ('torch', 'accelerate', 'diffusers', 'transformers', 'peft')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "[]"
    assert lines[0].startswith("refused:")  # no base model in this project: it says so, still without torch


# --- locks per resource ----------------------------------------------------------------------------


def test_a_second_dataset_job_is_refused_naming_the_running_one(demo_pictures_project, capsys):
    with HeldJob(demo_pictures_project, "tag"):
        assert is_locked(demo_pictures_project, DATASET)
        assert main(["prepare", str(demo_pictures_project.root)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert f"the dataset is in use by a tag job (pid {os.getpid()}" in err
        assert f"loratui status {demo_pictures_project.root}" in err and "loratui stop" in err
        with pytest.raises(LoratuiError, match="in use by a tag job"):
            start_detached(demo_pictures_project, "prepare", ["prepare", str(demo_pictures_project.root)])
        assert not (demo_pictures_project.root / "dataset" / "2_akari").exists()
    assert not is_locked(demo_pictures_project, DATASET)
    assert read_record(demo_pictures_project, DATASET).status == DONE


def test_a_tag_edit_is_refused_while_a_tag_job_runs(demo_pictures_project, capsys):
    assert main(["prepare", str(demo_pictures_project.root)]) == 0
    capsys.readouterr()
    with HeldJob(demo_pictures_project, "tag"):
        assert main(["tags", str(demo_pictures_project.root), "--delete", "smile"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "cannot run tags now: the dataset is in use by a tag job" in err
        assert main(["tags", str(demo_pictures_project.root), "--undo"]) == 2
        assert "in use by a tag job" in capsys.readouterr().err


def test_training_and_a_grid_run_at_once_and_stop_asks_which(project, capsys):
    with HeldJob(project, "train") as train, HeldJob(project, "grid") as grid:
        assert train.handle.job_id != grid.handle.job_id
        assert job_status(project, TRAINING).state == RUNNING and job_status(project, PREVIEW).state == RUNNING
        assert main(["status", str(project.root)]) == 0
        out = capsys.readouterr().out
        assert "Job         grid" in out and f"  train     RUNNING (pid {os.getpid()}) since " in out
        assert f"loratui logs {project.root} --job train --follow" in out
        assert main(["stop", str(project.root)]) == 2
        err = capsys.readouterr().err
        assert "2 jobs are running" in err and "--job grid or --job train" in err
        assert main(["stop", str(project.root), "--job", "train"]) == 0
        assert stop_path(project, TRAINING).exists() and not stop_path(project, PREVIEW).exists()
        assert job_status(project, TRAINING).state == STOPPING and job_status(project, PREVIEW).state == RUNNING
    # Each job wrote its own file: nothing of one is in the other's.
    from loratui.jobs.event_log import read_events

    for held in (train, grid):
        assert {e.job for e in read_events(held.handle.events_path)} == {held.handle.job_id}


def test_the_lock_frees_when_its_holder_is_killed_and_status_says_lost(project):
    holder = subprocess.Popen(
        [PYTHON, "-c", "import sys, time\nfrom loratui.project import Project\n"
         "from loratui.jobs.runner import job\n"
         f"with job(Project.open({str(project.root)!r}), 'train', ['train']):\n"
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
    assert not is_locked(project, TRAINING)  # the OS dropped it with the process: no stale lock
    assert read_record(project, TRAINING).status == RUNNING  # the record could not be closed...
    status = job_status(project)
    assert status.state == LOST  # ...so status tells the truth instead
    with job(project, "train", ["train"]):
        assert read_record(project, TRAINING).status == RUNNING
    assert job_status(project).state == DONE


def test_sigterm_closes_the_record_as_stopped(project):
    holder = subprocess.Popen(
        [PYTHON, "-c", "import time\nfrom loratui.project import Project\nfrom loratui.jobs.runner import job\n"
         f"with job(Project.open({str(project.root)!r}), 'train', ['train']):\n"
         "    print('held', flush=True)\n    time.sleep(600)\n"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGTERM)
        holder.wait(WAIT_S)
    finally:
        holder.kill()
        holder.stdout.close()
    record = read_record(project, TRAINING)
    assert (record.status, record.message) == (STOPPED, "terminated (SIGTERM)")
    assert job_status(project).state == STOPPED


def test_lost_from_a_record_whose_process_is_gone(project):
    gone = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record_path(project, TRAINING).parent.mkdir(parents=True)
    record_path(project, TRAINING).write_text(json.dumps(
        {"job_id": "train-x", "kind": "train", "pid": int(gone.stdout), "started": time.time() - 60,
         "argv": ["train"], "status": "running", "events": str(project.logs_dir / "events" / "train-x.jsonl")}))
    assert job_status(project).state == LOST
    assert main(["stop", str(project.root)]) == 2


def test_the_record_ends_failed_or_stopped_as_the_job_did(project):
    with pytest.raises(LoratuiError), job(project, "train", ["train"]):
        raise LoratuiError("base model not found")
    status = job_status(project)
    assert (status.state, status.message) == (FAILED, "base model not found")

    # The training loop's own `done` with stopped=True is enough (the contract with the loop).
    with job(project, "train", ["train"]) as handle:
        handle.emit(ev.Plan(total_steps=10, steps_per_epoch=5, epochs=2))
        handle.emit(ev.Step(step=3, total_steps=10, epoch=1, loss=0.1, lr=1e-4, images_per_s=2.0, eta_s=7))
        handle.warning("stopped by request at step 3")
        handle.done(stopped=True)
    assert read_record(project, TRAINING).status == STOPPED
    status = job_status(project)
    assert (status.state, status.step, status.total_steps) == (STOPPED, 3, 10)
    lines = [json.loads(line) for line in Path(status.events_path).read_text().splitlines()]
    assert [r["type"] for r in lines] == ["start", "plan", "step", "warning", "done"]  # one end, not two


def test_a_leftover_stop_file_does_not_stop_the_next_job(project):
    stop_path(project, TRAINING).parent.mkdir(parents=True)
    stop_path(project, TRAINING).write_text("{}")
    with job(project, "train", ["train"]) as handle:
        assert not handle.stop_requested
    assert not stop_path(project, TRAINING).exists()


def test_an_engine_function_joins_the_job_its_caller_opened(project):
    with job(project, "grid", ["grid"]) as outer, job(project, "grid") as inner:
        assert inner is outer
    assert job_status(project, PREVIEW).state == DONE


# --- stop ----------------------------------------------------------------------------------------------


def test_stop_creates_the_stop_file_and_refuses_when_nothing_runs(project, capsys):
    assert main(["stop", str(project.root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no job is running, nothing to stop" in err and "\n" not in err
    assert not stop_path(project, TRAINING).exists()

    with HeldJob(project, "train"):
        assert main(["stop", str(project.root)]) == 0
        out = capsys.readouterr().out
        assert "finishes its current step, saves, and exits" in out and f"loratui status {project.root}" in out
        assert stop_path(project, TRAINING).exists()
        assert job_status(project).state == STOPPING


def test_a_stop_request_cancels_a_job_that_takes_a_cancel_token(project):
    with pytest.raises(LoratuiError, match="cancelled"), job(project, "tag", ["tag"]) as handle:
        token = handle.cancel_token(poll_s=0.02)
        stop_path(project, DATASET).write_text("{}")
        wait_until(lambda: token.cancelled, "the stop file to cancel the token")
        token.check()
    status = job_status(project)
    events = [json.loads(line) for line in Path(status.events_path).read_text().splitlines()]
    assert [e["type"] for e in events] == ["start", "done"] and events[-1]["stopped"] is True
    assert events[-1]["summary"]["stopped_by"] == "stopped by request"  # said in the end, not as a warning
    assert status.state == STOPPED


# --- status, read incrementally ------------------------------------------------------------------------


def test_the_tracker_reads_only_what_is_new(project):
    from loratui.jobs.status import JobTracker

    with HeldJob(project, "train") as held:
        tracker = JobTracker(project, TRAINING)
        first = tracker.poll()
        assert first.state == RUNNING and first.step is None
        offset = tracker._reader.offset
        line = held.handle.emit(ev.Step(step=1, total_steps=4, loss=0.5))
        size = held.handle.events_path.stat().st_size
        second = tracker.poll()
        assert (second.step, second.loss, second.losses) == (1, 0.5, [0.5])
        assert tracker._reader.offset == size > offset  # read from where it was, to the end, once
        assert tracker.poll().step == 1 and tracker._reader.offset == size
        assert line.job == held.handle.job_id


def test_status_keeps_its_fold_for_the_next_call_on_a_long_file(project):
    from loratui.jobs import status as status_module

    with job(project, "train", ["train"]) as handle:
        for step in range(1, 4001):
            handle.emit(ev.Step(step=step, total_steps=8000, loss=1.0 / step))
    first = job_status(project)
    cache = status_module.status_cache_path(project, first.job_id)
    assert cache.is_file() and first.step == 4000 and first.state == DONE
    saved = json.loads(cache.read_text())
    assert saved["offset"] == Path(first.events_path).stat().st_size
    again = job_status(project)  # starts at the saved offset: same figures
    assert (again.step, again.total_steps, again.loss, len(again.losses)) == (4000, 8000, first.loss,
                                                                              len(first.losses))


def test_an_old_project_s_job_still_shows(project, capsys):
    """job.json and the shared logs/events.jsonl, as loratui wrote them before jobs had ids."""
    project.state_dir.mkdir()
    project.logs_dir.mkdir()
    old_events = [
        {"type": "start", "time": 1.0, "config": {}, "total_steps": 20, "steps_per_epoch": 10, "epochs": 2},
        {"type": "error", "time": 2.0, "message": "an earlier run's failure"},
        {"type": "start", "time": 3.0, "config": {}, "total_steps": 96, "steps_per_epoch": 24, "epochs": 4},
        {"type": "step", "time": 4.0, "step": 96, "epoch": 4, "loss": 0.05, "lr": 1e-4, "images_per_s": 3.0,
         "eta_s": 0},
        {"type": "done", "time": 5.0, "stopped": False, "final": str(project.output_dir / "a.safetensors")},
    ]
    text = "".join(json.dumps(e) + "\n" for e in old_events)
    offset = len("".join(json.dumps(e) + "\n" for e in old_events[:2]))
    (project.logs_dir / "events.jsonl").write_text(text)
    (project.state_dir / "job.json").write_text(json.dumps(
        {"kind": "train", "pid": 1, "started": 3.0, "argv": ["train"], "status": "done", "events_offset": offset,
         "finished": 6.0}))
    status = job_status(project)
    assert (status.state, status.kind, status.step, status.total_steps) == (DONE, "train", 96, 96)
    assert status.final_path.endswith("a.safetensors") and status.message is None
    assert main(["logs", str(project.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].endswith("plan: 96 steps = 4 epochs x 24 steps")


# --- logs ----------------------------------------------------------------------------------------------


def write_two_jobs(project: Project) -> None:
    with pytest.raises(LoratuiError), job(project, "train", ["train"]) as first:
        first.emit(ev.Plan(total_steps=20, steps_per_epoch=10, epochs=2))
        first.emit(ev.Step(step=1, total_steps=20, epoch=1, loss=0.5, lr=2e-4, images_per_s=1.0, eta_s=100))
        raise LoratuiError("CUDA out of memory")
    time.sleep(1.05)  # job ids and records are ordered by start time (to the second in the id)
    holder = HeldJob(project, "train", body=lambda handle: [
        handle.emit(ev.Plan(total_steps=960, steps_per_epoch=120, epochs=8)),
        handle.emit(ev.Step(step=120, total_steps=960, epoch=3, loss=0.0912, lr=1e-4, images_per_s=4.2,
                            eta_s=725)),
        handle.emit(ev.Checkpoint(path=str(project.output_dir / "hero-000003.safetensors"), epoch=3, step=120)),
        handle.emit(ev.Step(step=121, total_steps=960, epoch=3, loss=float("nan"), lr=1e-4, images_per_s=4.1,
                            eta_s=724)),
    ])
    return holder


def test_logs_shows_only_the_last_job_as_readable_lines(project, capsys):
    with write_two_jobs(project):
        assert main(["logs", str(project.root)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 5
        assert " start: train job " in lines[0]
        assert lines[1].endswith("plan: 960 steps = 8 epochs x 120 steps")
        assert lines[2].endswith("step 120/960 epoch 3 loss 0.0912 lr 1.0e-04 4.2 img/s ETA 12m05s")
        assert lines[3].endswith("checkpoint after epoch 3 (step 120): "
                                 + str(project.output_dir / "hero-000003.safetensors"))
        assert "loss nan" in lines[4]
        assert not any("out of memory" in line for line in lines)

        assert main(["logs", str(project.root), "--raw"]) == 0
        raw = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [e["type"] for e in raw] == ["start", "plan", "step", "checkpoint", "step"]


def test_logs_follow_ends_with_the_job(project, capsys):
    holder = write_two_jobs(project)
    with holder:
        follower = threading.Thread(target=lambda: holder.__setattr__("code", main(["logs", str(project.root),
                                                                                   "--follow"])))
        follower.start()
        time.sleep(0.3)
        holder.handle.emit(ev.JobError(message="loss is NaN at step 121: the last good checkpoint is kept"))
        follower.join(WAIT_S)
    assert holder.code == 1
    assert capsys.readouterr().out.splitlines()[-1].endswith("error: loss is NaN at step 121: the last good "
                                                             "checkpoint is kept")


def test_status_shows_the_training_figures(project, capsys):
    with write_two_jobs(project):
        assert main(["status", str(project.root)]) == 0
        out = capsys.readouterr().out
    assert "State       RUNNING" in out
    assert "step 121/960 (12.6%), epoch 3/8" in out
    assert "lr 1.0e-04   4.1 img/s   ETA 12m04s" in out
    assert "Checkpoint  output/hero-000003.safetensors (epoch 3)" in out


def test_status_of_a_project_that_never_ran_a_job(project, capsys):
    assert main(["status", str(project.root)]) == 0
    assert "No job has run in this project yet." in capsys.readouterr().out
    assert main(["status", str(project.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "none"


# --- the job command line ------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["tag", "P", "--general-threshold", "0.4", "--mcut", "--no-write-rating", "--concept", "hero",
     "--trigger=-x-"],
    ["train", "P", "--resume", "--gpus", "2", "--max-steps", "10", "--allow-pickle"],
    ["prepare", "P", "--force"],
    ["grid", "P", "--weights", "0.6,1", "--prompt=-dash first", "--seed", "3", "--no-score", "--checkpoints",
     "2", "final"],
])
def test_one_function_builds_each_job_s_command_line(project, argv):
    from loratui.cli import build_parser
    from loratui.jobs.command import command_line, options_from_args

    argv = [str(project.root) if a == "P" else a for a in argv]
    kind = argv[0]
    options = options_from_args(kind, build_parser().parse_args([*argv, "--detach"]))
    line = command_line(project.root, options)
    assert line[:2] == [kind, str(project.root.resolve())] and "--detach" not in line
    assert options_from_args(kind, build_parser().parse_args(line)) == options  # the child runs the same job


def test_log_lines_read_like_sentences() -> None:
    from loratui.commands.event_lines import format_event

    context: dict = {}
    at = 1_800_000_000.0
    plan = format_event(ev.Plan(time=at, total_steps=96, epochs=4, steps_per_epoch=24), context)
    assert plan.endswith("plan: 96 steps = 4 epochs x 24 steps")
    step = format_event(ev.Step(time=at, step=12, epoch=1, loss=0.09123, lr=1e-4, images_per_s=4.25, eta_s=725),
                        context)
    assert step.endswith("step 12/96 epoch 1 loss 0.0912 lr 1.0e-04 4.2 img/s ETA 12m05s")
    cell = format_event(ev.Cell(time=at, checkpoint="output/a-000002.safetensors", epoch=2, weight=0.8,
                                file="preview/cells/k.png", seconds=0.49, score=0.713))
    assert cell.endswith("cell epoch 2 at 0.8: score 0.71 (0.5 s) preview/cells/k.png")
    failed = format_event(ev.Cell(time=at, checkpoint="output/odd.safetensors", weight=1.0, seconds=0.0,
                                  error="cannot be loaded"))
    assert failed.endswith("cell odd.safetensors at 1.0: error: cannot be loaded (0.0 s)")
    done = format_event(ev.Done(time=at, result="output/a.safetensors", summary={"steps": 96}))
    assert done.endswith("done: 96 steps; result output/a.safetensors")


@pytest.mark.parametrize(("kind", "state", "expected"), [
    ("prepare", "done", "loratui tag P"),
    ("tag", "done", "loratui tags P --list"),
    ("train", "done", "loratui grid P"),
    ("grid", "done", "loratui grid P --text · loratui install P --to LORA_DIR"),
    ("train", "stopped", "loratui logs P"),  # no saved state to go on from (moved aside by --from-scratch)
    ("grid", "failed", "loratui logs P"),
    ("train", "running", "loratui logs P --job train --follow · loratui stop P --job train"),
])
def test_status_suggests_the_next_stage(kind: str, state: str, expected: str) -> None:
    from loratui.commands.jobs_cmd import _next_hint
    from loratui.jobs.status import JobStatus

    assert _next_hint(JobStatus(state=state, kind=kind), "P") == expected


@pytest.mark.parametrize(("state", "expected"), [
    ("stopped", "loratui train P --resume (goes on from step 48 of 96)"),
    ("failed", "loratui train P --resume (goes on from step 48 of 96) · loratui logs P"),
    ("lost", "loratui train P --resume (goes on from step 48 of 96) · loratui logs P"),
    ("done", "loratui grid P"),
])
def test_a_training_run_that_can_go_on_is_resumed_next(state: str, expected: str) -> None:
    from loratui.commands.jobs_cmd import _next_hint
    from loratui.jobs.status import JobStatus

    assert _next_hint(JobStatus(state=state, kind="train"), "P", "step 48 of 96") == expected


def test_a_tag_job_keeps_an_edit_made_to_loratui_toml_while_it_ran(demo_pictures_project, monkeypatch, capsys):
    """The trigger a tag job saves at its end goes into loratui.toml as it is then, not as it was at the start."""
    from loratui.dataset import tagger
    from loratui.dataset.tagger import TagRun
    from loratui.progress import Outcome

    root = demo_pictures_project.root

    def tag_while_the_user_edits(project, config, **kwargs):
        project.update(lambda stored: setattr(stored.training, "epochs", 7))  # the wizard saves a parameter
        return TagRun(Outcome(), model="tiny")

    monkeypatch.setattr(tagger, "tag_dataset", tag_while_the_user_edits)
    assert main(["tag", str(root), "--trigger", "akari2"]) == 0
    saved = demo_pictures_project.load()
    assert saved.training.epochs == 7 and saved.concepts[0].trigger == "akari2"


def test_a_job_of_an_older_loratui_still_running_keeps_its_project(project, capsys):
    """loratui 0.x held .loratui/job.lock for every kind of job: while it does, no new job starts."""
    import fcntl

    project.state_dir.mkdir()
    (project.state_dir / "job.json").write_text(json.dumps(
        {"kind": "train", "pid": os.getpid(), "started": time.time(), "argv": ["train"], "status": "running"}))
    fd = os.open(project.state_dir / "job.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(LoratuiError, match=f"in use by a train job \\(pid {os.getpid()}"), job(project, "grid"):
            pass
    finally:
        os.close(fd)
    with job(project, "grid"):
        pass
