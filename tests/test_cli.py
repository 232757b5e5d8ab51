"""The `loratui` command as a user runs it: exit statuses, one-line messages, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def loratui(*args: str | Path, env_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = None
    if env_dir is not None:
        import os

        env = {**os.environ, "LORATUI_CONFIG_DIR": str(env_dir)}
    return subprocess.run([sys.executable, "-m", "loratui", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(b"")  # `check` lists the source's pictures by name only
    model = tmp_path / "base.safetensors"
    # `check` reads the header only: an SD1 single file needs a UNet key and a CLIP text encoder key.
    header = json.dumps({key: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for key in (
        "model.diffusion_model.out.2.bias", "cond_stage_model.transformer.text_model.final_layer_norm.bias")})
    model.write_bytes(len(header).to_bytes(8, "little") + header.encode() + bytes(4))
    result = loratui("new", tmp_path / "proj", "--source", tmp_path / "pics", "--concept", "Rishi",
                     "--preset", "sd15-character", "--base-model", model)
    assert result.returncode == 0, result.stderr
    return tmp_path / "proj"


def test_help_lists_the_commands():
    result = loratui("--help")
    assert result.returncode == 0
    for command in ("new", "check", "presets", "settings", "demo"):
        assert f"    {command} " in result.stdout


def test_check_names_a_bad_value_a_wrong_type_and_an_unknown_key(project):
    toml = project / "loratui.toml"
    text = toml.read_text()
    text = text.replace("epochs = 10", "epochs = 0").replace("batch_size = 1\n", 'batch_size = "two"\n', 1)
    text = text.replace("[training]\n", "[training]\nlearnrate = 0.001\n")
    toml.write_text(text)
    result = loratui("check", project)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.endswith("training.epochs: 0 is too small: use 1 or more") for line in lines), lines
    assert any('training.batch_size: must be a whole number, not text ("two")' in line for line in lines), lines
    assert any("training.learnrate: unknown setting" in line for line in lines), lines
    assert lines[0].startswith("base model: sd15 ")
    assert all(line.startswith(str(toml)) for line in lines[1:-1])
    assert lines[-1] == f"3 problems in {project}"


def test_check_a_valid_project(project):
    result = loratui("check", project)
    assert (result.returncode, result.stdout.splitlines()) == (0, [
        f"base model: sd15 (A1111 single file {project.parent / 'base.safetensors'})", f"{project}: no problems found"])


def test_check_json(project):
    (project / "loratui.toml").write_text("[training]\nepochs = 0\n")
    result = loratui("check", project, "--json")
    assert result.returncode == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert {"file": str(project / "loratui.toml"), "line": 2, "key": "training.epochs",
            "message": "0 is too small: use 1 or more"} in data["problems"]


def test_check_a_folder_that_is_not_a_project(tmp_path):
    result = loratui("check", tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is not a loratui project" in result.stderr


def test_new_with_bad_input_is_one_line_and_status_2(tmp_path):
    result = loratui("new", tmp_path / "p", "--source", tmp_path / "missing", "--concept", "x")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no such folder" in result.stderr
    (tmp_path / "pics").mkdir()
    result = loratui("new", tmp_path / "p", "--source", tmp_path / "pics", "--concept", "x", "--preset", "nope")
    assert result.returncode == 2 and "no preset named 'nope'" in result.stderr


def test_presets_list_show_save(project, tmp_path):
    result = loratui("presets", "list", env_dir=tmp_path / "cfg")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"sd15-character", "sd15-style", "sdxl-character", "low-vram"} <= set(names)
    shown = loratui("presets", "show", "low-vram")
    assert shown.returncode == 0 and "gradient_checkpointing = true" in shown.stdout
    saved = loratui("presets", "save", "mine", project, "--description", "my run", env_dir=tmp_path / "cfg")
    assert saved.returncode == 0, saved.stderr
    assert (tmp_path / "cfg" / "presets" / "mine.toml").is_file()
    listed = json.loads(loratui("presets", "list", "--json", env_dir=tmp_path / "cfg").stdout)
    assert {"name": "mine", "origin": "user", "description": "my run"}.items() <= listed[-1].items()


def test_settings_explains_one_key():
    result = loratui("settings", "dataset.resolution")
    assert result.returncode == 0
    assert result.stdout.startswith("dataset.resolution = 512  (64 to 4096, multiple of 64)")
    assert loratui("settings", "nope").returncode == 2
