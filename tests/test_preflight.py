"""The checks before a run, without torch: a full disk and a bad safetensors header are one line each."""

from __future__ import annotations

import shutil
import struct
from collections import namedtuple
from pathlib import Path

import pytest

from loratui.config import Config
from loratui.errors import LoratuiError
from loratui.project import Project
from loratui.safetensors_header import SafetensorsHeaderError, read_safetensors_header
from loratui.training.preflight import check_free_space, space_needed

Usage = namedtuple("Usage", "total used free")


def test_the_space_a_run_needs_counts_its_files_state_and_latent_cache() -> None:
    config = Config()
    config.training.epochs, config.training.save_every_n_epochs, config.training.network_dim = 10, 2, 32
    needed = space_needed(config, "sd15", pictures=100)
    assert needed.files == 5  # epochs 2, 4, 6, 8 and the final file (kohya writes no epoch-10 copy)
    assert 30e6 < needed.file_bytes < 50e6  # ~38 MB at dim 32: kohya's SD1.5 files are this size
    assert needed.latent_bytes == 0
    config.training.cache_latents = "disk"
    assert space_needed(config, "sdxl", pictures=100).latent_bytes == 100 * 4 * 64 * 64 * 4
    assert space_needed(config, "sdxl", pictures=1).file_bytes > 5 * needed.file_bytes


def test_a_full_disk_is_refused_before_the_run_with_what_to_do(tmp_path: Path, monkeypatch) -> None:
    project = Project(tmp_path)
    project.output_dir.mkdir()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - 50 * 10**6, 50 * 10**6))
    with pytest.raises(LoratuiError) as refused:
        check_free_space(project, Config(), "sdxl", 20)
    message = str(refused.value)
    assert message.startswith(f"{project.output_dir}: 50.0 MB free on this disk, and the run needs about ")
    assert "LoRA files of ~" in message and "save_every_n_epochs" in message and "\n" not in message
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**13, 0, 10**13))
    check_free_space(project, Config(), "sdxl", 20)  # room enough: no word


def test_one_header_reader_for_every_safetensors_file(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    header = b'{"__metadata__": {"ss_network_dim": "4"}}'
    good.write_bytes(struct.pack("<Q", len(header)) + header)
    data, start = read_safetensors_header(good)
    assert data["__metadata__"]["ss_network_dim"] == "4" and start == 8 + len(header)
    cases = {
        b"1234": "too short",
        struct.pack("<Q", 10**12): "header length",
        struct.pack("<Q", 50) + b"{}": "larger than the file",
        struct.pack("<Q", 4) + b"nope": "not JSON",
        struct.pack("<Q", 2) + b"[]": "not an object",
    }
    for content, reason in cases.items():
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(content)
        with pytest.raises(SafetensorsHeaderError) as caught:
            read_safetensors_header(bad)
        assert str(caught.value).startswith(f"{bad}: not a .safetensors file (") and "\n" not in str(caught.value)
        assert reason in caught.value.reason or reason in str(caught.value), (content, str(caught.value))
    with pytest.raises(LoratuiError, match="no such file"):
        read_safetensors_header(tmp_path / "missing.safetensors")
