"""`loratui demo DIR`: a ready project built offline whose model and tagger load through the real loaders."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loratui.config_io import load_config
from loratui.demo.build import build_demo_project
from loratui.project import check_project


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo_project(tmp_path_factory.mktemp("demo") / "demo")


def test_the_demo_project_passes_check(demo):
    assert check_project(demo.project.root) == []


def test_the_demo_project_points_at_its_own_files(demo):
    config = load_config(demo.project.config_path)
    root = demo.project.root
    assert (root / config.project.base_model) == demo.base_model and demo.base_model.is_file()
    assert (root / config.project.base_model_config / "model_index.json").is_file()
    assert (root / config.tagging.model / "model.onnx").is_file()
    assert (root / config.tagging.model / "selected_tags.csv").is_file()
    concept = config.concepts[0]
    assert (concept.name, concept.trigger, concept.source) == ("akari", "akari", "pictures")
    pictures = [p for p in demo.pictures_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".webp")]
    assert len(pictures) == demo.picture_count >= 20
    # Settings a CPU and the tiny models can run: no 8-bit optimizer, buckets around the small resolution.
    assert config.training.optimizer == "AdamW" and config.dataset.resolution == 128


def test_the_demo_model_loads_offline_as_a_single_file(demo, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_single_file(str(demo.base_model), config=str(demo.base_model_config),
                                                    local_files_only=True)
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size


def test_the_demo_tagger_loads_in_onnxruntime(demo):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(demo.tagger_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [448, 448, 3]


def test_the_demo_command(tmp_path):
    run = [sys.executable, "-m", "loratui", "demo", str(tmp_path / "d")]
    first = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "Demo ready" in first.stdout and "or loratui check" in first.stdout
    assert "[transformers]" not in first.stderr and "warn" not in first.stderr.lower()  # progress lines only
    again = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already a loratui project" in again.stderr
    assert "Traceback" not in again.stderr
