"""A full disk: one line naming the real file, a job record that says why the job ended, no empty log files,
and for training the way back (`--resume`). Real ENOSPC from the kernel: /dev/full, or a small tmpfs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import tiny_project

from loratui.cli import main
from loratui.jobs import events as ev
from loratui.jobs.kinds import FAILED
from loratui.jobs.record import read_record
from loratui.jobs.runner import job
from loratui.jobs.status import job_status
from loratui.project import Project, create_project


@pytest.fixture(autouse=True)
def _own_speed_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORATUI_DATA_DIR", str(tmp_path / "user-data"))


def _loratui(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "loratui", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def _pictures_project(root: Path, pictures: Path) -> Project:
    from loratui.demo.images import build_demo_images

    build_demo_images(pictures, count=4)
    project, config = create_project(root, pictures, "akari", repeats=2, trigger="akari")
    config.dataset.resolution, config.dataset.min_bucket_reso, config.dataset.crop = 128, 64, "center"
    project.save(config)
    return project


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "4m"):
    where.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (the /dev/full tests cover the same code without it)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(folder: Path) -> None:
    """Write until the disk says no more."""
    with open(folder / "filler", "wb") as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()


def _no_traceback(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_detached_start_on_a_full_disk_is_one_line_and_the_record_says_why(tmp_path: Path):
    project = _pictures_project(tmp_path / "proj", tmp_path / "pictures")
    project.logs_dir.mkdir(parents=True, exist_ok=True)
    log = project.logs_dir / "prepare.log"
    log.symlink_to("/dev/full")  # every write to it: ENOSPC
    result = _loratui("prepare", str(project.root), "--detach")
    assert result.returncode == 2
    assert _no_traceback(result) == (f"loratui: {log}: the disk is full: free some space, then run the command "
                                     "again")
    record = read_record(project, "dataset")
    assert record is not None and record.status == FAILED and record.message == f"{log}: the disk is full: free " \
        "some space, then run the command again"


def test_a_detached_start_on_a_real_full_tmpfs_leaves_no_empty_log(tmp_path: Path):
    with small_tmpfs(tmp_path / "disk") as disk:
        project = _pictures_project(disk / "proj", tmp_path / "pictures")
        (project.logs_dir).mkdir(parents=True, exist_ok=True)
        _loratui("status", str(project.root))  # a record to overwrite later, as after any earlier job
        assert main(["prepare", str(project.root)]) == 0
        _fill(disk)
        result = _loratui("prepare", str(project.root), "--detach", "--force")
        assert result.returncode == 2
        line = _no_traceback(result)
        assert "the disk is full: free some space" in line and str(project.root) in line
        logs = [p for p in project.logs_dir.rglob("*") if p.is_file()]
        assert all(p.stat().st_size > 0 for p in logs), [p.name for p in logs if not p.stat().st_size]
        status = job_status(project, "dataset")
        assert status.state in ("done", "failed")  # the last prepare, or this one failed and saying why
        if status.state == "failed":
            assert "the disk is full" in (status.message or "")


def test_the_disk_filling_while_training_writes_events_names_the_file_and_says_resume(
    tmp_path: Path, tiny_sd15_dir: Path
):
    from loratui.training.loop import run_training

    project, config = tiny_project(tmp_path, tiny_sd15_dir, epochs=4, save_every_n_epochs=1)

    def fill_at_step_3(event: ev.Event) -> None:
        if isinstance(event, ev.Step) and event.step == 3:
            handle.writer._handle = open("/dev/full", "a", encoding="utf-8")  # the disk is now full

    with pytest.raises(Exception) as failed, job(project, "train") as handle:
        handle.listen(fill_at_step_3)
        run_training(project, config)
    events_path = handle.events_path
    message = str(failed.value)
    assert message == (f"{events_path}: the disk is full: free some space, then `loratui train {project.root} "
                       "--resume` goes on from the last saved state (step 2 of 8)")
    record = read_record(project, "training")
    assert record.status == FAILED and record.message == message  # not LOST ("killed, or the machine restarted")
    assert job_status(project, "training").state == FAILED
    # The lines written before the disk filled are whole: the file still reads.
    assert [json.loads(line)["type"] for line in events_path.read_text().splitlines()][-1] == "step"


def test_a_record_is_rewritten_in_place_when_no_new_file_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from loratui.fsutil import DiskFull
    from loratui.jobs import record as records

    project = Project(tmp_path)
    (tmp_path / "loratui.toml").write_text("")
    with job(project, "prepare"):
        pass
    saved = read_record(project, "dataset")

    def no_new_files(path, text):
        raise DiskFull(path)

    monkeypatch.setattr(records, "atomic_write_text", no_new_files)
    saved.status, saved.message = FAILED, "the disk is full"
    records.write_record(project, saved)
    again = read_record(project, "dataset")
    assert (again.status, again.message) == (FAILED, "the disk is full")
