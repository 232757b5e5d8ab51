"""`loratui check` finds what would stop a run, in the very line `loratui train` stops with: an empty or
unreadable source folder, an optimizer whose package is missing, a hub id that cannot be downloaded offline."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loratui.cli import main
from loratui.config import OPTIMIZER_PACKAGES, Config
from loratui.presets import list_presets
from loratui.project import create_project

BITSANDBYTES = ('training.optimizer: "AdamW8bit" needs the bitsandbytes package, which is not installed: pip install '
                'bitsandbytes (CUDA only), or set training.optimizer = "AdamW"')


def loratui(*args: str | Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loratui", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def single_file_model(path: Path) -> Path:
    """An SD1 A1111 file as `check` and the preflight read it: a header with a UNet and a CLIP key, no weights."""
    header = json.dumps({key: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for key in (
        "model.diffusion_model.out.2.bias", "cond_stage_model.transformer.text_model.final_layer_norm.bias")})
    path.write_bytes(len(header).to_bytes(8, "little") + header.encode() + bytes(4))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project that checks clean: one picture in its source, an SD1 base model, nothing prepared yet."""
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(b"")
    create_project(tmp_path / "proj", tmp_path / "pics", "akari",
                   base_model=str(single_file_model(tmp_path / "base.safetensors")))
    return tmp_path / "proj"


def source_of(root: Path) -> Path:
    """The source folder as loratui.toml stores it: absolute, since it lies outside the project."""
    return (root.parent / "pics").resolve()


def set_setting(root: Path, old: str, new: str) -> None:
    toml = root / "loratui.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new, 1))


def check_errors(root: Path, **env: str) -> list[str]:
    """The problem lines of `loratui check` (stdout, between the base model line and the count)."""
    result = loratui("check", root, **env)
    assert "Traceback" not in result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith(str(root / "loratui.toml"))]


def train_error(root: Path, **env: str) -> str:
    result = loratui("train", root, **env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


def test_the_clean_project_checks_clean(project: Path) -> None:
    assert check_errors(project) == []


def test_an_empty_source_folder_is_an_error_in_check_and_train(project: Path) -> None:
    (project.parent / "pics" / "a.png").unlink()
    line = (f"{project / 'loratui.toml'}: concepts[1].source: {source_of(project)}: no pictures here (png, jpg, "
            "jpeg, webp, bmp, gif, tif): point the concept's source at the folder of your pictures")
    assert check_errors(project) == [line]
    assert train_error(project) == f"loratui: {line}"


def test_a_source_with_pictures_only_in_subfolders_says_recursive(project: Path) -> None:
    pics = project.parent / "pics"
    (pics / "set1").mkdir()
    (pics / "a.png").rename(pics / "set1" / "a.png")
    assert check_errors(project) == [
        f"{project / 'loratui.toml'}: concepts[1].source: {source_of(project)}: no pictures here (png, jpg, jpeg, "
        "webp, bmp, gif, tif): to read its subfolders, set recursive = true for concept 'akari'"]


def test_an_unreadable_source_folder_is_an_error_in_check_and_train(project: Path, monkeypatch, capsys) -> None:
    # Tests may run as root, whom chmod 000 does not stop: the folder listing itself is refused instead, at the
    # one call that lists a source folder.
    source = source_of(project)
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).resolve() == source:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr("loratui.dataset.image_scan.os.scandir", scandir)
    line = (f"{project / 'loratui.toml'}: concepts[1].source: {source}: cannot read this folder (permission "
            "denied): check its permissions")
    assert main(["check", str(project)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [line, f"1 problem in {project}"]
    assert main(["train", str(project)]) == 2
    assert capsys.readouterr().err.strip() == f"loratui: {line}"


def test_a_prepared_concept_trains_without_its_source(project: Path) -> None:
    """Training reads dataset/, so only a concept with nothing prepared needs a source that gives pictures."""
    from loratui.errors import LoratuiError
    from loratui.project import Project
    from loratui.training.preflight import check_sources

    (project.parent / "pics" / "a.png").unlink()
    opened = Project.open(project)
    config = opened.load()
    with pytest.raises(LoratuiError, match="no pictures here"):
        check_sources(opened, config)
    folder = opened.concept_dir(config.concepts[0])
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(b"")
    check_sources(opened, config)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed here")
def test_adamw8bit_without_bitsandbytes_is_an_error_with_the_fix_in_check_and_train(project: Path) -> None:
    set_setting(project, 'optimizer = "AdamW"', 'optimizer = "AdamW8bit"')
    line = f"{project / 'loratui.toml'}: {BITSANDBYTES}"
    assert check_errors(project) == [line]
    assert train_error(project) == f"loratui: {line}"


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed here")
def test_new_with_the_low_vram_preset_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    result = loratui("new", tmp_path / "p", "--source", tmp_path / "pics", "--concept", "x", "--preset", "low-vram")
    assert result.returncode == 0
    assert result.stderr == f"warning: {tmp_path / 'p' / 'loratui.toml'}: {BITSANDBYTES}\n"


def test_the_default_optimizer_needs_no_optional_package() -> None:
    assert Config().training.optimizer not in OPTIMIZER_PACKAGES


def test_a_preset_whose_optimizer_needs_a_package_names_it() -> None:
    for preset in list_presets():
        needs = OPTIMIZER_PACKAGES.get(preset.config.training.optimizer)
        if needs:
            assert needs[1].split(" (")[0] in preset.description, preset.name  # "pip install bitsandbytes"


def test_an_uncached_hub_id_offline_is_an_error_in_check_and_train(project: Path) -> None:
    set_setting(project, f'base_model = "{project.parent / "base.safetensors"}"', 'base_model = "some-org/some-model"')
    line = (f"{project / 'loratui.toml'}: project.base_model: some-org/some-model: not downloaded yet and "
            "HF_HUB_OFFLINE is set: download it while online, or set project.base_model to a local diffusers "
            "folder or .safetensors file")
    empty_cache = str(project.parent / "hf-cache")
    assert check_errors(project, HF_HUB_OFFLINE="1", HF_HUB_CACHE=empty_cache) == [line]
    assert train_error(project, HF_HUB_OFFLINE="1", HF_HUB_CACHE=empty_cache) == f"loratui: {line}"
