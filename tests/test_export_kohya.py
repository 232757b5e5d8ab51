"""`loratui export-kohya`: the sd-scripts config TOML for the same run, per model family, with "auto" resolved."""

from __future__ import annotations

import tomllib

import pytest
from PIL import Image

from loratui.cli import main
from loratui.errors import LoratuiError
from loratui.project import Project, create_project
from loratui.training.kohya_export import kohya_config, resolve_keep_tokens, toml_value, write_kohya_config

SECTIONS = ["model_arguments", "dataset_arguments", "additional_network_arguments", "optimizer_arguments",
            "training_arguments", "saving_arguments", "others"]


def _project(tmp_path, base_model: str, **concept) -> Project:
    pictures = tmp_path / "pictures"
    pictures.mkdir(exist_ok=True)
    Image.new("RGB", (64, 64)).save(pictures / "a.png")
    project, _ = create_project(tmp_path / "proj", pictures, "akari", base_model=base_model, **concept)
    return project


def _export(project: Project, **options) -> tuple[dict, dict, str]:
    result = write_kohya_config(project, project.load(), **options)
    text = result.config_file.read_text(encoding="utf-8")
    sections = tomllib.loads(text)
    flat = {key: value for section in sections.values() for key, value in section.items()}
    return sections, flat, text


@pytest.fixture
def sd15(tmp_path, tiny_single_file) -> Project:
    return _project(tmp_path, str(tiny_single_file.checkpoint))


def test_sd15_single_file_exports_every_argument(sd15, tiny_single_file):
    sections, flat, text = _export(sd15)
    root = sd15.root.resolve()
    assert list(sections) == SECTIONS
    assert flat == {
        "pretrained_model_name_or_path": str(tiny_single_file.checkpoint.resolve()),
        "v2": False, "v_parameterization": False,
        "train_data_dir": str(root / "dataset"), "resolution": "512,512", "enable_bucket": True,
        "min_bucket_reso": 256, "max_bucket_reso": 1024, "bucket_reso_steps": 64, "bucket_no_upscale": True,
        "caption_extension": ".txt", "shuffle_caption": True, "keep_tokens": 1, "caption_dropout_rate": 0.0,
        "caption_tag_dropout_rate": 0.0, "flip_aug": False, "cache_latents": True, "cache_latents_to_disk": False,
        "max_token_length": 225,
        "network_module": "networks.lora", "network_dim": 32, "network_alpha": 16.0,
        "network_train_unet_only": False,
        "optimizer_type": "AdamW", "learning_rate": 1e-4, "unet_lr": 1e-4, "text_encoder_lr": 1e-5,
        "lr_scheduler": "cosine_with_restarts", "lr_warmup_steps": 0, "lr_scheduler_num_cycles": 1,
        "max_grad_norm": 1.0,
        "max_train_epochs": 10, "train_batch_size": 1, "gradient_accumulation_steps": 1,
        "gradient_checkpointing": False, "mixed_precision": "bf16", "no_half_vae": False, "clip_skip": 2,
        "sdpa": True, "seed": 1337,
        "output_dir": str(root / "output"), "output_name": "proj", "save_model_as": "safetensors",
        "save_precision": "fp16", "save_every_n_epochs": 2, "save_state": True,
        "logging_dir": str(root / "logs" / "kohya"), "log_prefix": "proj",
    }
    # floats stay floats: sd-scripts skips argparse's float() for TOML values, and an int alpha is stored as int64
    assert isinstance(flat["network_alpha"], float) and isinstance(flat["max_grad_norm"], float)
    assert "lr_restart_cycles" not in text and "xformers =" not in text
    assert (f"#   accelerate launch --num_cpu_threads_per_process 2 train_network.py --config_file "
            f"{root / 'kohya-config.toml'}\n") in text
    assert 'mixed_precision = "bf16"  # auto: bf16 for RTX 30 and newer; use fp16 on older cards' in text
    assert [p.name for p in sd15.root.iterdir() if p.name.startswith(".kohya")] == []  # no temp file left


def test_sdxl_folder_uses_the_sdxl_script_without_clip_skip(tmp_path, tiny_sdxl_dir):
    project = _project(tmp_path, str(tiny_sdxl_dir))
    config = project.load()
    config.training.train_text_encoder = False
    config.dataset.resolution = 1024
    project.save(config)
    result = write_kohya_config(project, config)
    _, flat, text = _export(project)
    assert (result.family, result.script) == ("sdxl", "sdxl_train_network.py")
    assert "clip_skip" not in flat and flat["network_train_unet_only"] is True
    assert flat["v2"] is False and flat["resolution"] == "1024,1024"
    assert "sdxl_train_network.py --config_file" in text and " train_network.py" not in text
    assert result.notes == ["dataset: not prepared yet: run `loratui prepare " + str(project.root) + "`"]


def test_sdxl_refuses_nothing_but_warns_about_a_bucket_step_kohya_rejects(tmp_path, tiny_sdxl_dir):
    project = _project(tmp_path, str(tiny_sdxl_dir))
    config = project.load()
    config.dataset.bucket_reso_steps = 48
    result = kohya_config(project, config, project.root / "k.toml")
    assert result.notes[-1] == ("dataset.bucket_reso_steps: 48: sdxl_train_network.py needs a multiple of 32: set "
                                "32 or 64 in loratui.toml")


def test_family_flag_sets_the_v2_flags(sd15):
    _, flat, _ = _export(sd15, family="sd2-v")
    assert (flat["v2"], flat["v_parameterization"]) == (True, True) and "clip_skip" in flat
    _, flat, _ = _export(sd15, family="sd2")
    assert (flat["v2"], flat["v_parameterization"]) == (True, False)
    with pytest.raises(LoratuiError, match="--family sd3: unknown: use one of sd15, sd2, sd2-v, sdxl"):
        _export(sd15, family="sd3")


def test_auto_values_are_resolved(sd15):
    config = sd15.load()
    assert resolve_keep_tokens(config) == 1
    config.concepts[0].trigger = "rishi, naruto"
    assert resolve_keep_tokens(config) == 2
    config.concepts[0].trigger = ""
    assert resolve_keep_tokens(config) == 0
    config.training.keep_tokens = 3
    assert resolve_keep_tokens(config) == 3
    config.training.mixed_precision = "fp16"
    config.training.cache_latents = "disk"
    config.training.noise_offset = 0.05
    config.training.min_snr_gamma = 5
    config.training.save_every_n_epochs = 0
    config.training.gpus = 2
    config.project.output_name = "rishi"
    sd15.save(config)
    _, flat, text = _export(sd15)
    assert (flat["keep_tokens"], flat["mixed_precision"]) == (3, "fp16")
    assert "# auto" not in text  # comments explain only values loratui worked out
    assert (flat["cache_latents"], flat["cache_latents_to_disk"]) == (True, True)
    assert (flat["noise_offset"], flat["min_snr_gamma"]) == (0.05, 5.0)
    assert "save_every_n_epochs" not in flat and flat["output_name"] == "rishi"
    assert "accelerate launch --num_cpu_threads_per_process 2 --multi_gpu --num_processes 2 train_network.py" in text


def test_an_uncached_hub_id_takes_the_preset_family(tmp_path):
    project = _project(tmp_path, "someone/some-model")
    result = kohya_config(project, project.load(), project.root / "k.toml")
    assert result.values()["pretrained_model_name_or_path"] == "someone/some-model"
    assert result.family == "sd15" and "hub id is not downloaded yet" in result.family_from
    config = project.load()
    config.project.preset = "sdxl-character"
    assert kohya_config(project, config, project.root / "k.toml").family == "sdxl"


def test_missing_or_unsupported_base_models_fail_with_one_line(tmp_path, capsys):
    project = _project(tmp_path, "")
    with pytest.raises(LoratuiError, match="project.base_model: not set"):
        _export(project)
    config = project.load()
    config.project.base_model = str(tmp_path / "gone.safetensors")
    project.save(config)
    assert main(["export-kohya", str(project.root)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"loratui: {tmp_path / 'gone.safetensors'}: not found: check the path"
    (tmp_path / "m.ckpt").write_bytes(b"pickle")
    config.project.base_model = str(tmp_path / "m.ckpt")
    project.save(config)
    with pytest.raises(LoratuiError, match="pickle checkpoint .* refused"):
        _export(project)
    assert not (project.root / "kohya-config.toml").exists()  # a refused export writes nothing
    _, flat, _ = _export(project, family="sd15")  # named family: nothing is unpickled, kohya loads it itself
    assert flat["pretrained_model_name_or_path"] == str((tmp_path / "m.ckpt").resolve())


def test_the_command_writes_where_asked_and_warns_about_stale_folders(sd15, tmp_path, capsys):
    config = sd15.load()
    (sd15.dataset_dir / "3_old").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(sd15.dataset_dir / "3_old" / "x.png")
    assert main(["export-kohya", str(sd15.root), "--output", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    out = out.splitlines()
    target = (tmp_path / "kohya-config.toml").resolve()
    assert out[0] == f"Wrote {target}  (family sd15, detected from the model)"
    assert err.startswith("warning: dataset: dataset/3_old: matches no concept: kohya would train it too")
    assert out[1:] == ["Run it from your sd-scripts folder:",
                        f"  accelerate launch --num_cpu_threads_per_process 2 train_network.py --config_file {target}"]
    assert tomllib.loads(target.read_text(encoding="utf-8"))["saving_arguments"]["output_name"] == "proj"
    assert config == sd15.load()  # loratui.toml untouched


@pytest.mark.parametrize("value", ["plain", 'quote " and \\ back', "tab\tnew\nline", "del\x7f", "ünï 字"])
def test_strings_survive_toml(value):
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value
