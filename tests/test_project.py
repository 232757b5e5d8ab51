"""Project folders: creation, refusal of bad input before anything is written, and `check`."""

from __future__ import annotations

import json
import struct

import pytest

from loratui.config_io import load_config
from loratui.errors import LoratuiError
from loratui.project import Project, check_project, create_project


@pytest.fixture
def pictures(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not touched")
    return folder


def test_create_makes_the_documented_layout(tmp_path, pictures):
    project, config = create_project(tmp_path / "rishi", pictures, "RishiNaruto", repeats=8,
                                     preset="sd15-character", base_model="owner/model")
    for name in ("loratui.toml", "dataset", "output", "preview", "logs", ".loratui"):
        assert (project.root / name).exists(), name
    loaded = load_config(project.config_path)
    assert loaded == config
    concept = loaded.concepts[0]
    assert (concept.name, concept.repeats, concept.trigger) == ("RishiNaruto", 8, "RishiNaruto")
    assert project.concept_dir(concept) == project.root / "dataset" / "8_RishiNaruto"
    assert project.source_dir(concept) == pictures.resolve()
    assert loaded.project.preset == "sd15-character" and loaded.project.output_name == "rishi"
    assert (pictures / "a.png").read_bytes() == b"not touched"


def test_sources_inside_the_project_are_stored_relative(tmp_path):
    root = tmp_path / "proj"
    (root / "pics").mkdir(parents=True)
    _, config = create_project(root, root / "pics", "x")
    assert config.concepts[0].source == "pics"


def test_refuses_an_existing_project(tmp_path, pictures):
    create_project(tmp_path / "p", pictures, "x")
    with pytest.raises(LoratuiError, match="already a loratui project"):
        create_project(tmp_path / "p", pictures, "x")


def test_refuses_a_missing_source(tmp_path):
    with pytest.raises(LoratuiError, match="--source .*: no such folder"):
        create_project(tmp_path / "p", tmp_path / "nope", "x")
    assert not (tmp_path / "p").exists()


def test_refuses_a_project_inside_its_source(pictures):
    with pytest.raises(LoratuiError, match="inside the source folder"):
        create_project(pictures / "proj", pictures, "x")
    assert sorted(p.name for p in pictures.iterdir()) == ["a.png"]


def test_bad_concept_values_write_nothing(tmp_path, pictures):
    with pytest.raises(LoratuiError, match="concepts\\[1\\].name"):
        create_project(tmp_path / "p", pictures, "a/b")
    with pytest.raises(LoratuiError, match="concepts\\[1\\].repeats: 0 is too small"):
        create_project(tmp_path / "p", pictures, "ok", repeats=0)
    assert not (tmp_path / "p").exists()


def test_opening_a_folder_that_is_not_a_project(tmp_path):
    with pytest.raises(LoratuiError, match="is not a loratui project \\(no loratui.toml\\): create one with"):
        Project.open(tmp_path)
    with pytest.raises(LoratuiError, match="no such folder"):
        Project.open(tmp_path / "missing")


def test_check_a_good_project(tmp_path, pictures):
    model = tmp_path / "model.safetensors"
    # The check reads the header (no weights): an SD1 single file needs a UNet and a CLIP text encoder key.
    header = json.dumps({key: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for key in (
        "model.diffusion_model.out.2.bias", "cond_stage_model.transformer.text_model.final_layer_norm.bias")})
    model.write_bytes(struct.pack("<Q", len(header)) + header.encode() + bytes(4))
    create_project(tmp_path / "p", pictures, "x", base_model=str(model))
    assert check_project(tmp_path / "p") == []


def test_check_lists_sources_and_base_model_problems(tmp_path, pictures):
    project, config = create_project(tmp_path / "p", pictures, "x")
    assert [p.key for p in check_project(project.root)] == ["project.base_model"]
    config.project.base_model = "models/missing.safetensors"
    config.concepts[0].source = str(tmp_path / "gone")
    project.save(config)
    found = {p.key: p.message for p in check_project(project.root)}
    assert found["concepts[1].source"].endswith("no such folder: point it at the folder of your pictures")
    assert found["project.base_model"] == "models/missing.safetensors: not found: check the path"


def test_check_accepts_a_hub_id_it_can_download(tmp_path, pictures, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online: train downloads it (nothing is fetched here)
    create_project(tmp_path / "p", pictures, "x", base_model="stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert check_project(tmp_path / "p") == []
