"""Presets: the built-in ones validate, user presets save/list/show, and no preset ever holds a path."""

from __future__ import annotations

import tomllib

import pytest

from loratui.config import Concept, Config
from loratui.errors import LoratuiError, ProblemsError
from loratui.presets import BUILTIN_DIR, apply_preset, find_preset, list_presets, preset_text, save_preset

REQUIRED = {"sd15-character", "sd15-style", "sdxl-character", "low-vram"}


@pytest.fixture(autouse=True)
def user_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LORATUI_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


def test_builtin_presets_load_and_validate():
    presets = {p.name: p for p in list_presets()}
    assert REQUIRED <= set(presets)
    for preset in presets.values():
        assert preset.origin == "built-in"
        assert len(preset.description) > 20
        assert preset.family in ("sd15", "sdxl")


def test_builtin_presets_hold_settings_not_paths():
    for path in BUILTIN_DIR.glob("*.toml"):
        data = tomllib.loads(path.read_text())
        assert set(data) <= {"preset", "dataset", "tagging", "training", "preview"}, path.name
        assert "crop_boxes" not in data.get("dataset", {})
        assert "model" not in data.get("tagging", {})


def test_presets_differ_where_they_should():
    sdxl = find_preset("sdxl-character").config
    assert sdxl.dataset.resolution == 1024 and not sdxl.training.train_text_encoder and sdxl.training.no_half_vae
    low = find_preset("low-vram").config.training
    assert low.gradient_checkpointing and low.optimizer == "AdamW8bit" and low.batch_size == 1
    assert low.network_dim <= 16 and low.mixed_precision == "fp16" and low.cache_latents != "off"
    style = find_preset("sd15-style").config
    assert style.dataset.crop == "none" and style.training.caption_tag_dropout_rate > 0


def test_apply_keeps_paths_concepts_and_crop_boxes():
    config = Config(concepts=[Concept(name="rishi", source="/pics")])
    config.project.base_model = "/m.safetensors"
    config.dataset.crop_boxes = {"rishi/a.png": [0, 0, 10, 10]}
    apply_preset(config, find_preset("sdxl-character"))
    assert config.dataset.resolution == 1024
    assert config.dataset.crop_boxes == {"rishi/a.png": [0, 0, 10, 10]}
    assert config.concepts[0].source == "/pics" and config.project.base_model == "/m.safetensors"
    assert config.project.preset == "sdxl-character"


def test_save_list_show_a_user_preset(user_config_dir):
    config = Config()
    config.training.epochs = 17
    path = save_preset("my-chars", config, "my characters")
    assert path == user_config_dir / "presets" / "my-chars.toml"
    mine = find_preset("my-chars")
    assert mine.origin == "user" and mine.description == "my characters" and mine.config.training.epochs == 17
    assert "my-chars" in [p.name for p in list_presets()]
    with pytest.raises(LoratuiError, match="exists: add --force"):
        save_preset("my-chars", config, "again")
    config.training.epochs = 18
    save_preset("my-chars", config, "again", force=True)
    assert find_preset("my-chars").config.training.epochs == 18


def test_builtin_names_and_bad_names_are_refused():
    with pytest.raises(LoratuiError, match="built-in preset"):
        save_preset("low-vram", Config(), "x")
    with pytest.raises(LoratuiError, match="use letters, digits"):
        save_preset("../evil", Config(), "x")


def test_a_preset_never_saves_a_local_path(tmp_path):
    config = Config()
    config.tagging.model = str(tmp_path)
    config.dataset.crop_boxes = {"a/b.png": [0, 0, 1, 1]}
    data = tomllib.loads(preset_text(config, "d"))
    assert "model" not in data["tagging"] and "crop_boxes" not in data["dataset"]
    config.tagging.model = "SmilingWolf/wd-vit-tagger-v3"
    assert tomllib.loads(preset_text(config, "d"))["tagging"]["model"] == "SmilingWolf/wd-vit-tagger-v3"


def test_unknown_preset_suggests_a_name():
    with pytest.raises(LoratuiError, match="no preset named 'low-vrm' \\(did you mean low-vram\\?\\)"):
        find_preset("low-vrm")


def test_a_broken_user_preset_names_its_file_and_key(user_config_dir):
    folder = user_config_dir / "presets"
    folder.mkdir(parents=True)
    (folder / "bad.toml").write_text('[preset]\ndescription = "x"\n[project]\nbase_model = "/a"\n'
                                     "[training]\nepochs = 0\n")
    with pytest.raises(ProblemsError) as err:
        find_preset("bad")
    lines = [str(p) for p in err.value.problems]
    assert any("bad.toml:3: project: a preset holds settings only" in line for line in lines)
    assert any("bad.toml:6: training.epochs: 0 is too small" in line for line in lines)


def test_a_preset_without_description_is_refused(user_config_dir):
    folder = user_config_dir / "presets"
    folder.mkdir(parents=True)
    (folder / "nodesc.toml").write_text("[training]\nepochs = 3\n")
    with pytest.raises(ProblemsError, match="preset.description: missing"):
        find_preset("nodesc")
