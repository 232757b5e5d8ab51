"""What `new`, `demo` and `settings` tell a user: a file where a folder should be in one line, help that matches
what the command does, limits that read as numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def loratui(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loratui", *map(str, args)], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a folder")
    return path


def test_new_on_a_file_is_one_line(tmp_path: Path, a_file: Path) -> None:
    (tmp_path / "pics").mkdir()
    for where, shown in ((a_file, f"{a_file}"), (a_file / "proj", f"{a_file / 'proj'}: {a_file}")):
        result = loratui("new", where, "--source", tmp_path / "pics", "--concept", "x")
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (f"loratui: {shown} is a file, not a folder: choose a folder for the project (it is "
                                 "created if missing)\n")
    assert a_file.read_text() == "not a folder"


@pytest.mark.parametrize("headless", [False, True])
def test_demo_on_a_file_is_one_line(a_file: Path, headless: bool) -> None:
    result = loratui("demo", a_file, *(["--headless"] if headless else []))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"loratui: {a_file} is a file, not a folder: give another folder to `loratui demo` (it "
                             "is created if missing)\n")
    assert a_file.read_text() == "not a folder"


def test_demo_help_says_how_long_the_headless_run_takes() -> None:
    help_text = " ".join(loratui("demo", "--help").stdout.split())
    assert "(about a minute on a 2-core CPU)" in help_text and "a few minutes" not in help_text


def test_settings_shows_whole_number_limits_in_full() -> None:
    result = loratui("settings", "training")
    lines = result.stdout.splitlines()
    assert "training.seed = 1337  (0 to 4,294,967,295)" in lines
    assert "training.lr_warmup_steps = 0  (0 to 1,000,000)" in lines
    assert "training.epochs = 10  (1 to 10,000)" in lines
    assert "training.network_alpha = 16.0  (0.001 to 1024)" in lines
    assert "training.unet_lr = 0.0001  (1e-08 to 10)" in lines
    assert "e+" not in result.stdout


def test_no_setting_speaks_of_a_wizard_title_bar() -> None:
    result = loratui("settings", "project")
    assert result.returncode == 0 and "title bar" not in result.stdout
    assert "project.name = ''\n    A name for this project. `loratui install` starts the LoRA's card" in result.stdout
