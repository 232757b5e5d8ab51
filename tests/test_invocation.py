"""The commands loratui prints must work when pasted: `loratui` only when that name on PATH is this program."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loratui.invocation import program

VENV_BIN = Path(sys.executable).parent


def test_the_venvs_script_run_by_path_is_named_by_its_path_when_not_on_path(tmp_path: Path):
    script = VENV_BIN / "loratui"
    empty_path = str(tmp_path)  # the venv is not activated: nothing called loratui on PATH
    repo = VENV_BIN.parent.parent
    assert program(str(script), path=empty_path, cwd=repo) == ".venv/bin/loratui"  # as the README says to type
    assert program(str(script), path=str(VENV_BIN), cwd=repo) == "loratui"  # activated: the name works


def test_started_by_name_or_with_python_dash_m(tmp_path: Path):
    assert program("loratui", path=str(tmp_path)) == "loratui"
    assert program("-m", path=str(tmp_path)).endswith(" -m loratui")
    assert program("-m", path=str(VENV_BIN)) == "loratui"


def test_the_headless_demos_look_around_line_works_as_printed(tmp_path: Path):
    """Run from a shell that has not activated the venv: every command it prints is runnable as printed."""
    env = {**os.environ, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    script = VENV_BIN / "loratui"
    done = subprocess.run([str(script), "demo", str(tmp_path / "demo"), "--headless"], capture_output=True,
                          text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    look = next(line for line in done.stdout.splitlines() if line.startswith("Look around: "))
    commands = look.removeprefix("Look around: ").split(" · ")
    assert len(commands) == 3 and all(c.startswith(f"{script} ") for c in commands)
    for command in commands:
        ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120,
                             cwd=tmp_path)
        assert ran.returncode == 0, (command, ran.stderr)
    assert f"$ {script} prepare " in done.stdout
