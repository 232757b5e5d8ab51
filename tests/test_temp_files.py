"""Temp files a killed write left behind are removed by the next job's start; a live writer's are kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from loratui.jobs.runner import job
from loratui.jobs.temp_files import UNOWNED_TEMP_AGE_S
from loratui.project import create_project

# Writes a checkpoint atomically, but hangs inside the write: the temp file exists, the rename has not happened.
HANGING_WRITE = """
import sys, time
from pathlib import Path
from loratui.fsutil import atomic_write_with
def write(handle):
    handle.write(b"half a checkpoint")
    handle.flush()
    print("writing", flush=True)
    time.sleep(600)
atomic_write_with(Path(sys.argv[1]), write)
"""


def _hanging_writer(target: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HANGING_WRITE, str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "writing\n"
    return process


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp"))


def test_a_job_start_removes_the_temp_files_of_killed_writers_and_keeps_live_ones(tmp_path: Path):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    project, _ = create_project(tmp_path / "proj", pictures, "akari")
    state = project.state_dir / "state"
    state.mkdir(parents=True)
    killed = [_hanging_writer(project.output_dir / "project-000001.safetensors"),
              _hanging_writer(state / "state.json")]
    for process in killed:
        process.send_signal(signal.SIGKILL)  # kill -9 between write and rename
        process.wait()
    live = _hanging_writer(project.output_dir / "project-000002.safetensors")
    try:
        # loratui 0.1's names had no pid: removed only when old enough that no write can still be going on.
        old_unowned = project.output_dir / ".project.safetensors.k2j4h5g6.tmp"
        new_unowned = project.output_dir / ".project-000003.safetensors.a1b2c3d4.tmp"
        old_unowned.write_bytes(b"")
        new_unowned.write_bytes(b"")
        past = time.time() - UNOWNED_TEMP_AGE_S - 60
        os.utime(old_unowned, (past, past))
        assert len(_temps(project.output_dir)) == 4 and len(_temps(state)) == 1
        with job(project, "prepare"):
            pass
        left = _temps(project.output_dir)
        assert len(left) == 2 and new_unowned.name in left  # too new to tell: it may be a write going on now
        assert any(name.startswith(f".project-000002.safetensors.{live.pid}.") for name in left)
        assert _temps(state) == []
    finally:
        live.kill()
        live.wait()
