"""Shared pytest fixtures: tiny offline Stable Diffusion models, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from loratui.demo.single_file import SingleFileModel

# No test may reach the model hub; huggingface_hub reads this once, when it is first imported.
os.environ["HF_HUB_OFFLINE"] = "1"

# torch/diffusers are imported inside the fixtures, so tests that do not use them stay fast.


@pytest.fixture(scope="session", autouse=True)
def _throwaway_user_data(tmp_path_factory: pytest.TempPathFactory):
    """The user data folder (recent projects, speed history) of every test, and of the `loratui` processes they
    start, is a throwaway one: `loratui new` in a test must not add a temp folder to the developer's own list.
    A test that wants its own sets LORATUI_DATA_DIR again (monkeypatch restores this one after it)."""
    previous = os.environ.get("LORATUI_DATA_DIR")
    os.environ["LORATUI_DATA_DIR"] = str(tmp_path_factory.mktemp("user-data"))
    yield
    if previous is None:
        os.environ.pop("LORATUI_DATA_DIR", None)
    else:
        os.environ["LORATUI_DATA_DIR"] = previous


@pytest.fixture(scope="session")
def tiny_sd15_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD1.5 diffusers folder (seed 0). Read-only: copy it before changing anything."""
    from loratui.demo.sd_models import build_tiny_sd15

    return build_tiny_sd15(tmp_path_factory.mktemp("tiny-sd15") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SDXL diffusers folder (seed 0). Read-only: copy it before changing anything."""
    from loratui.demo.sd_models import build_tiny_sdxl

    return build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_single_file(tmp_path_factory: pytest.TempPathFactory) -> SingleFileModel:
    """A tiny SD1.5 A1111-style checkpoint (seed 0) with `.checkpoint` and its config-only `.config_dir`."""
    from loratui.demo.single_file import build_tiny_sd15_single_file

    root = tmp_path_factory.mktemp("tiny-single-file")
    return build_tiny_sd15_single_file(root / "tiny-sd15.safetensors", root / "sd15-config", seed=0)
