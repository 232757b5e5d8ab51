"""Packaging: the built-in presets live in the top-level presets/ and the wheel ships them where the loader looks."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from loratui.presets import BUILTIN_DIR, list_presets

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_NAMES = {"sd15-character", "sd15-style", "sdxl-character", "low-vram"}


def _setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _source_packages() -> set[str]:
    return {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "loratui").rglob("__init__.py")}


def test_builtin_presets_are_read_from_the_top_level_presets_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LORATUI_CONFIG_DIR", str(tmp_path / "config"))
    assert BUILTIN_DIR.resolve() == ROOT / "presets"
    assert {path.stem for path in (ROOT / "presets").glob("*.toml")} == BUILTIN_NAMES
    assert not list((ROOT / "loratui" / "presets").glob("*.toml")), "presets belong in the top-level presets/"
    assert {p.name for p in list_presets() if p.origin == "built-in"} == BUILTIN_NAMES


def test_pyproject_lists_every_package_and_maps_presets_into_the_loader():
    config = _setuptools_config()
    # packages is a list, not find: a new subpackage must be added there or the wheel leaves it out.
    assert set(config["packages"]) == _source_packages() | {"loratui.presets.builtin"}
    assert config["package-dir"] == {"loratui.presets.builtin": "presets"}
    assert config["package-data"]["loratui.presets.builtin"] == ["*.toml"]


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="building a wheel needs setuptools")
def test_the_wheel_ships_the_presets_where_the_loader_looks(tmp_path):
    # Build from a copy so the checkout gets no build/ folder or egg-info of ours.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("loratui", "presets"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "wheel"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], cwd=src, env=env, check=True, capture_output=True, timeout=120)
    (wheel,) = out.glob("loratui-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"loratui/presets/builtin/{name}.toml" for name in BUILTIN_NAMES} <= names
    assert {f"{package.replace('.', '/')}/__init__.py" for package in _source_packages()} <= names
    assert not any(name.startswith("presets/") for name in names), "no top-level presets/ in site-packages"

    # The unpacked wheel, run from outside the checkout, finds its own copy of the presets.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import json, loratui.presets as p; print(json.dumps([str(p.BUILTIN_DIR), "
             "[x.name for x in p.list_presets() if x.origin == 'built-in']]))")
    env = {**os.environ, "PYTHONPATH": str(site), "LORATUI_CONFIG_DIR": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True, capture_output=True,
                          text=True, timeout=60)
    builtin_dir, listed = json.loads(done.stdout)
    assert Path(builtin_dir) == site / "loratui" / "presets" / "builtin"
    assert set(listed) == BUILTIN_NAMES
