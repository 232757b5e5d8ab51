"""Base models: family detection from configs and headers, pickle refusal, offline loading, bundled config folders."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loratui.config import Config
from loratui.errors import LoratuiError
from loratui.project import check_project, create_project
from loratui.training.config_folders import CACHE_ENV, bundled_config_dir, bundled_families
from loratui.training.model_family import FAMILIES, detect_base_model, detect_family

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
SD1_TEXT = "cond_stage_model.transformer.text_model.final_layer_norm.bias"
SD2_TEXT = "cond_stage_model.model.ln_final.bias"
SD2_PROBE = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
SDXL_TEXT_1 = "conditioner.embedders.0.transformer.text_model.final_layer_norm.bias"
SDXL_TEXT_2 = "conditioner.embedders.1.model.ln_final.bias"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Bundled config folders are written to a per-session cache, never to the user's."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "loratui-cache"))


def write_checkpoint(path: Path, keys: dict, metadata: dict | None = None) -> Path:
    """A small safetensors file with real SD key names; values are tensors or shapes (filled with zeros)."""
    import torch
    from safetensors.torch import save_file

    tensors = {key: value if isinstance(value, torch.Tensor) else torch.zeros(value) for key, value in keys.items()}
    save_file(tensors, str(path), metadata=metadata)
    return path


def detect(path: Path, **options):
    return detect_base_model(str(path), path.parent, **options)


def sd2_keys(probe=None) -> dict:
    keys = {UNET_IN: (8, 4, 3, 3), SD2_TEXT: (4,)}
    if probe is not None:
        keys[SD2_PROBE] = probe
    return keys


# --- detection ------------------------------------------------------------------------------------------------


def test_the_tiny_fixtures_are_told_apart(tiny_sd15_dir, tiny_sdxl_dir, tiny_single_file):
    sd15, sdxl = detect(tiny_sd15_dir), detect(tiny_sdxl_dir)
    single = detect_family(tiny_single_file.checkpoint)
    assert (sd15.kind, sd15.family) == ("diffusers", "sd15")
    assert (sdxl.kind, sdxl.family) == ("diffusers", "sdxl")
    # Its keys have SD1.5's names at a fraction of the sizes: detection goes by names, not widths.
    assert (single.kind, single.family) == ("single_file", "sd15")
    assert single.describe() == f"sd15 (A1111 single file {tiny_single_file.checkpoint})"


def test_a_diffusers_folder_by_its_configs(tmp_path, tiny_sd15_dir):
    folder = tmp_path / "sd21"
    for file in ("model_index.json", "unet/config.json", "scheduler/scheduler_config.json"):
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny_sd15_dir / file, folder / file)
    unet = json.loads((folder / "unet/config.json").read_text())
    (folder / "unet/config.json").write_text(json.dumps({**unet, "cross_attention_dim": 1024}))
    assert detect(folder).family == "sd2"
    scheduler = json.loads((folder / "scheduler/scheduler_config.json").read_text())
    (folder / "scheduler/scheduler_config.json").write_text(json.dumps({**scheduler,
                                                                        "prediction_type": "v_prediction"}))
    assert detect(folder).family == "sd2-v"
    (folder / "unet/config.json").write_text(json.dumps({**unet, "cross_attention_dim": 768}))
    assert detect(folder).family == "sd15"


def test_sdxl_single_file_by_its_second_text_encoder(tmp_path):
    path = write_checkpoint(tmp_path / "xl.safetensors", {UNET_IN: (8, 4, 3, 3), SDXL_TEXT_1: (4,), SDXL_TEXT_2: (4,)})
    assert (detect(path).kind, detect(path).family) == ("single_file", "sdxl")


def test_sd2_prediction_from_the_weights_as_comfyui_does(tmp_path):
    import torch

    generator = torch.Generator().manual_seed(0)
    spread = torch.randn(320, generator=generator)
    v_model = write_checkpoint(tmp_path / "v.safetensors", sd2_keys(spread * 0.2))
    eps_model = write_checkpoint(tmp_path / "eps.safetensors", sd2_keys(spread * 0.03))
    bf16_model = write_checkpoint(tmp_path / "bf16.safetensors", sd2_keys((spread * 0.2).to(torch.bfloat16)))
    assert detect(v_model).family == "sd2-v"
    assert detect(eps_model).family == "sd2"
    assert detect(bf16_model).family == "sd2-v"
    assert "guessed from the weights" in detect(eps_model).note
    # The user's word wins over the guess.
    assert detect(eps_model, prediction="v_prediction").family == "sd2-v"
    assert detect(v_model, prediction="epsilon").family == "sd2"


def test_sd2_prediction_declared_by_the_file_and_the_fallback(tmp_path):
    declared = write_checkpoint(tmp_path / "declared.safetensors", sd2_keys(torch_randn(0.2)),
                                metadata={"modelspec.prediction_type": "epsilon"})
    marked = write_checkpoint(tmp_path / "marked.safetensors", {**sd2_keys(torch_randn(0.01)), "v_pred": ()})
    bare = write_checkpoint(tmp_path / "bare.safetensors", sd2_keys())
    assert detect(declared).family == "sd2"
    assert detect(marked).family == "sd2-v"
    assert detect(bare).family == "sd2-v" and "assumed" in detect(bare).note


def torch_randn(scale: float):
    import torch

    return torch.randn(320, generator=torch.Generator().manual_seed(1)) * scale


@pytest.mark.parametrize(("keys", "reason"), [
    ({"lora_unet_x.lora_down.weight": (4, 8)}, "this is a LoRA file, not a base model"),
    ({UNET_IN: (8, 9, 3, 3), SD1_TEXT: (4,)}, "an inpainting model"),
    ({UNET_IN: (8, 4, 3, 3), "model.diffusion_model.label_emb.0.0.weight": (8, 2560),
      "conditioner.embedders.0.model.ln_final.bias": (4,)}, "an SDXL refiner"),
    ({UNET_IN: (8, 4, 3, 3), "conditioner.embedders.0.model.ln_final.bias": (4,)}, "an SD2 checkpoint in SGM layout"),
    ({UNET_IN: (8, 4, 3, 3)}, "no text encoder weights"),
    ({"first_stage_model.decoder.conv_in.bias": (4,)}, "no Stable Diffusion UNet weights"),
])
def test_files_that_are_not_trainable_base_models(tmp_path, keys, reason):
    found = detect(write_checkpoint(tmp_path / "m.safetensors", keys))
    assert found.family is None and found.note.startswith(reason)


def test_a_damaged_safetensors_file_is_one_line(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\xff" * 20)
    with pytest.raises(LoratuiError, match=r"broken.safetensors: not a safetensors file \(.*\): re-download") as err:
        detect(path)
    assert "\n" not in str(err.value)
    header = b'{"model.diffusion_model.out.2.bias": 5}'
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(LoratuiError, match=r"broken.safetensors: not a safetensors file \(malformed header\)"):
        detect(path)


def test_missing_paths_and_hub_ids(tmp_path):
    for missing in ("models/none.safetensors", "./x", "/nowhere/model"):
        with pytest.raises(LoratuiError, match=f"^{missing}: not found: check the path$"):
            detect_base_model(missing, tmp_path)
    found = detect_base_model("someone/not-cached-model", tmp_path)
    assert (found.kind, found.family, found.note) == ("hub", None, "unknown until downloaded")


def test_a_cached_hub_model_is_detected_from_its_configs(tmp_path, tiny_sdxl_dir, monkeypatch):
    import huggingface_hub.constants

    snapshot = tmp_path / "hub" / "models--someone--tiny-xl" / "snapshots" / ("0" * 40)
    for file in ("model_index.json", "unet/config.json", "scheduler/scheduler_config.json"):
        (snapshot / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny_sdxl_dir / file, snapshot / file)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    found = detect_base_model("someone/tiny-xl", tmp_path)
    assert (found.kind, found.family) == ("hub", "sdxl")


# --- pickle files ---------------------------------------------------------------------------------------------


class RunsACommand:
    """A pickle payload: unpickling it calls os.system (what a malicious .ckpt does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_files_are_refused_unless_allowed(tmp_path):
    import torch

    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {UNET_IN: torch.zeros(8, 4, 3, 3), SD1_TEXT: torch.zeros(4)}}, path)
    with pytest.raises(LoratuiError, match=r"model.ckpt: a pickle checkpoint \(.ckpt\) can run code") as err:
        detect(path)
    assert "\n" not in str(err.value)
    found = detect(path, allow_pickle=True)
    assert (found.kind, found.family) == ("pickle", "sd15")


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, zip_format):
    import torch

    marker, path = tmp_path / "pwned", tmp_path / "model.ckpt"
    payload = {"state_dict": {UNET_IN: torch.zeros(1), "evil": RunsACommand(marker)}}
    if zip_format:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(LoratuiError, match="model.ckpt: refused: not plain tensors") as err:
        detect(path, allow_pickle=True)
    assert "\n" not in str(err.value)
    assert not marker.exists()


# --- loading --------------------------------------------------------------------------------------------------


def test_the_tiny_single_file_loads_offline_with_its_config_folder(tmp_path, tiny_single_file):
    from loratui.training.models import load_base_model

    config = Config()
    config.project.base_model = str(tiny_single_file.checkpoint)
    config.project.base_model_config = str(tiny_single_file.config_dir)
    model = load_base_model(config, tmp_path)
    assert (model.family, model.detection.kind, model.prediction_type) == ("sd15", "single_file", "epsilon")
    assert type(model.noise_scheduler).__name__ == "DDPMScheduler"
    assert model.noise_scheduler.config.num_train_timesteps == 1000
    assert len(model.tokenizers) == len(model.text_encoders) == 1
    assert model.unet.dtype.is_floating_point and str(model.unet.device) == "cpu"
    ids = model.tokenizers[0]("a photo of sks dog").input_ids
    assert len(ids) == 7  # start, one token per word of the demo vocabulary, end


def test_a_diffusers_folder_loads_with_both_sdxl_text_encoders(tmp_path, tiny_sdxl_dir):
    import torch

    from loratui.training.models import load_base_model

    config = Config()
    config.project.base_model = str(tiny_sdxl_dir)
    model = load_base_model(config, tmp_path, dtype=torch.bfloat16, prediction="v_prediction")
    assert model.family == "sdxl" and model.prediction_type == "epsilon"  # the SD2 override leaves SDXL alone
    assert len(model.tokenizers) == len(model.text_encoders) == 2
    assert model.unet.dtype == torch.bfloat16
    assert model.tokenizers[1].pad_token == "!"


def test_sd2_v_gets_a_v_prediction_training_scheduler():
    from loratui.training.models import training_scheduler

    config = json.loads((bundled_config_dir("sd2-v") / "scheduler" / "scheduler_config.json").read_text())
    scheduler = training_scheduler(config, FAMILIES["sd2-v"].prediction_type)
    assert (type(scheduler).__name__, scheduler.config.prediction_type) == ("DDPMScheduler", "v_prediction")
    assert scheduler.config.beta_schedule == "scaled_linear"


def test_input_errors_come_before_any_heavy_import(tmp_path):
    lora = write_checkpoint(tmp_path / "lora.safetensors", {"lora_unet_x.lora_down.weight": (4, 8)})
    probe = (
        "import sys\nfrom pathlib import Path\nfrom loratui.config import Config\n"
        "from loratui.errors import LoratuiError\nfrom loratui.training.models import load_base_model\n"
        f"for name in ('missing.safetensors', 'model.ckpt', {str(lora)!r}):\n"
        "    config = Config(); config.project.base_model = name\n"
        "    try:\n        load_base_model(config, Path(sys.argv[1]))\n"
        "    except LoratuiError as exc:\n        print(exc)\n"
        "print([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules])\n"
    )
    (tmp_path / "model.ckpt").write_bytes(b"x")
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "missing.safetensors: not found: check the path"
    assert "model.ckpt: a pickle checkpoint (.ckpt) can run code when loaded, so it is refused" in lines[1]
    assert lines[2] == f"{lora}: cannot train on it: this is a LoRA file, not a base model"
    assert lines[3] == "[]"


def test_an_offline_hub_id_is_one_line(tmp_path, monkeypatch):
    from loratui.training.models import load_base_model

    config = Config()
    config.project.base_model = "someone/not-cached-model"
    with pytest.raises(LoratuiError, match=r"^someone/not-cached-model: cannot be fetched from the model hub .*: "
                                           "download it while online, or set project.base_model to a local"):
        load_base_model(config, tmp_path)


def test_a_bad_config_folder_is_named(tmp_path, tiny_single_file):
    from loratui.training.models import load_base_model

    config = Config()
    config.project.base_model = str(tiny_single_file.checkpoint)
    config.project.base_model_config = "nowhere"
    with pytest.raises(LoratuiError, match="^project.base_model_config: nowhere: not a diffusers config folder"):
        load_base_model(config, tmp_path)


# --- bundled config folders -----------------------------------------------------------------------------------


def test_every_family_has_a_bundled_folder():
    assert bundled_families() == sorted(FAMILIES)


def test_bundled_configs_have_the_public_parameter_counts():
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    expected = {  # UNet, VAE, text encoder(s): SD1.5, SD2.1 and SDXL base 1.0 as published
        "sd15": (859_520_964, 83_653_863, [123_060_480]),
        "sd2": (865_910_724, 83_653_863, [340_387_840]),
        "sd2-v": (865_910_724, 83_653_863, [340_387_840]),
        "sdxl": (2_567_463_684, 83_653_863, [123_060_480, 694_659_840]),
    }
    for family, (unet, vae, text) in expected.items():
        folder = bundled_config_dir(family)
        with torch.device("meta"):  # architecture only: no memory for the weights
            assert count(UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))) == unet
            assert count(AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))) == vae
            encoders = [(CLIPTextModel, "text_encoder"), (CLIPTextModelWithProjection, "text_encoder_2")]
            counts = [count(cls(CLIPTextConfig.from_pretrained(folder / sub))) for cls, sub in encoders[:len(text)]]
            assert counts == text, family


def test_bundled_folders_are_complete_with_real_clip_tokenizers():
    from diffusers import DiffusionPipeline
    from transformers import CLIPTokenizer

    pads = {"sd15": ["<|endoftext|>"], "sd2": ["!"], "sd2-v": ["!"], "sdxl": ["<|endoftext|>", "!"]}
    for family, pad_tokens in pads.items():
        folder = bundled_config_dir(family)
        index = DiffusionPipeline.load_config(folder)
        assert index["_class_name"] == FAMILIES[family].pipeline_class
        for component, spec in index.items():
            if isinstance(spec, list) and spec[0] is not None:
                assert any((folder / component).iterdir()), (family, component)
        for sub, pad in zip(("tokenizer", "tokenizer_2"), pad_tokens, strict=False):
            tokenizer = CLIPTokenizer.from_pretrained(folder / sub)
            # The ids of openai/clip-vit-large-patch14's tokenizer.
            assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
            assert (len(tokenizer), tokenizer.pad_token, tokenizer.model_max_length) == (49408, pad, 77)


def test_the_bundled_folder_is_written_once(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    first = bundled_config_dir("sd15")
    stamp = (first / "tokenizer" / "vocab.json").stat().st_mtime_ns
    assert bundled_config_dir("sd15") == first
    assert (first / "tokenizer" / "vocab.json").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "model-configs").iterdir()] == [first.name]  # no staging folders left


# --- loratui check --------------------------------------------------------------------------------------------


def _project_with(tmp_path: Path, base_model: str, base_model_config: str = "") -> Path:
    (tmp_path / "pics").mkdir(exist_ok=True)
    (tmp_path / "pics" / "a.png").write_bytes(b"")  # `check` refuses a source with no pictures
    project, config = create_project(tmp_path / "proj", tmp_path / "pics", "x")
    config.project.base_model, config.project.base_model_config = base_model, base_model_config
    project.save(config)
    return project.root


def test_check_accepts_a_single_file_of_a_known_family(tmp_path, tiny_single_file):
    from loratui.project import base_model_detection

    root = _project_with(tmp_path, str(tiny_single_file.checkpoint))
    assert check_project(root) == []
    assert base_model_detection(root).family == "sd15"


@pytest.mark.parametrize(("name", "expected"), [
    ("model.ckpt", "model.ckpt: a pickle checkpoint (.ckpt) can run code when loaded, so it is refused"),
    ("lora.safetensors", "lora.safetensors: cannot train on it: this is a LoRA file, not a base model"),
])
def test_check_reports_pickles_and_untrainable_files(tmp_path, name, expected):
    import torch

    torch.save({}, tmp_path / "model.ckpt")
    write_checkpoint(tmp_path / "lora.safetensors", {"lora_te_x.lora_up.weight": (8, 4)})
    root = _project_with(tmp_path, str(tmp_path / name))
    [problem] = check_project(root)
    assert problem.key == "project.base_model" and problem.message.startswith(f"{tmp_path / expected}")


def test_check_names_a_config_folder_that_is_not_one(tmp_path, tiny_single_file):
    root = _project_with(tmp_path, str(tiny_single_file.checkpoint), base_model_config="configs")
    [problem] = check_project(root)
    assert (problem.key, problem.message) == ("project.base_model_config",
                                              "configs: not a diffusers config folder (no model_index.json)")
