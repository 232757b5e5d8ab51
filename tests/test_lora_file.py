"""kohya-format LoRA files: targets, golden key lists, alpha, dtypes, metadata, diffusers reload, atomic save."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before diffusers/huggingface_hub are imported

import numpy as np
import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_save

from loratui.config import Concept, Config
from loratui.errors import LoratuiError
from loratui.lora import paths as lora_paths
from loratui.lora.file import LoraNetwork, add_lora_adapters, kohya_state_dict, save_lora
from loratui.lora.keys import kohya_module_name, sdxl_unet_path
from loratui.lora.metadata import (
    DatasetDir,
    TrainFacts,
    addnet_legacy_hash,
    addnet_model_hash,
    dataset_dir_facts,
)
from loratui.lora.paths import (
    checkpoint_path,
    epoch_file_name,
    final_file_name,
    is_checkpoint_epoch,
    list_checkpoints,
)
from loratui.lora.read import read_lora

GOLDEN = Path(__file__).parent / "golden"
PROMPT = "a photo of 1girl, solo, smile, red hair, blue eyes"
SIZE = 64
RANK, ALPHA = 4, 2.0


# --- helpers -----------------------------------------------------------------------------------


def _render(pipe: StableDiffusionPipeline | StableDiffusionXLPipeline) -> np.ndarray:
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    result = pipe(
        PROMPT,
        num_inference_steps=2,
        height=SIZE,
        width=SIZE,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    )
    return result.images[0]


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def _randomise(network: LoraNetwork, seed: int = 0, std: float = 0.2) -> None:
    """Give the up weights (zeros at init) values, so a loaded LoRA visibly changes renders.

    Every LoRA weight is then rounded through fp16, so the fp16 file holds exactly the in-memory numbers:
    random tiny models amplify fp16 rounding, which would otherwise blur what the comparison checks.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for model in network.models.values():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * std)
                if "lora_" in name:
                    param.copy_(param.half().float())


def _config(output_name: str = "rishi", **training: object) -> Config:
    config = Config()
    config.project.output_name = output_name
    config.concepts = [Concept(name="rishi", source="src", repeats=5, trigger="rishi")]
    config.training.network_dim = RANK
    config.training.network_alpha = ALPHA
    for key, value in training.items():
        setattr(config.training, key, value)
    return config


def _facts(family: str = "sd15", **training: object) -> TrainFacts:
    config = _config(**training)
    if family == "sdxl":
        config.dataset.resolution = 1024
    return TrainFacts(
        family=family,
        config=config,
        output_name="rishi",
        base_model_name="tiny-sd15",
        dataset_dirs=[DatasetDir("5_rishi", 5, 12), DatasetDir("3_style", 3, 4)],
        num_batches_per_epoch=72,
        max_train_steps=720,
        tag_frequency={"5_rishi": {"rishi": 12, "smile": 3}, "3_style": {"style": 4}},
        bucket_info={"buckets": {"0": {"resolution": [512, 512], "count": 72}}, "mean_img_ar_error": 0.0},
        mixed_precision="bf16",
        keep_tokens=1,
        session_id=1234,
        started_at=1_700_000_000.5,
    )


def _golden(name: str) -> list[str]:
    return (GOLDEN / name).read_text(encoding="utf-8").splitlines()


def _keys_and_shapes(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [f"{key} {'x'.join(map(str, tensors[key].shape)) or 'scalar'}" for key in sorted(tensors)]


def _file_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sd15_base_render(tiny_sd15_dir: Path) -> np.ndarray:
    return _render(StableDiffusionPipeline.from_pretrained(tiny_sd15_dir, local_files_only=True))


@pytest.fixture(scope="module")
def sd15_trained(tiny_sd15_dir: Path) -> tuple[StableDiffusionPipeline, LoraNetwork]:
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd15_dir, local_files_only=True)
    network = add_lora_adapters(pipe, RANK, ALPHA)
    _randomise(network)
    return pipe, network


@pytest.fixture(scope="module")
def sd15_lora_render(sd15_trained) -> np.ndarray:
    """The in-memory adapted model's render: what the saved file must reproduce."""
    return _render(sd15_trained[0])


@pytest.fixture(scope="module")
def sd15_file(sd15_trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lora") / "rishi-000002.safetensors"
    save_lora(path, sd15_trained[1], _facts(), epoch=2, step=144, finished_at=1_700_000_100.25)
    return path


@pytest.fixture(scope="module")
def sdxl_trained(tiny_sdxl_dir: Path) -> tuple[StableDiffusionXLPipeline, LoraNetwork]:
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl_dir, local_files_only=True)
    network = add_lora_adapters(pipe, RANK, ALPHA)
    _randomise(network, seed=1)
    return pipe, network


# --- targets and key names ---------------------------------------------------------------------


def test_sd15_adapters_cover_kohyas_default_targets(sd15_trained) -> None:
    pipe, network = sd15_trained
    # SD1.5's 16 Transformer2DModels x 12 wrapped layers, as kohya prints for the real model; 2 CLIP layers x 6.
    assert network.module_counts == {"unet": 192, "text_encoder": 12}
    assert network.summary() == ["create LoRA for U-Net: 192 modules.", "create LoRA for Text Encoder: 12 modules."]
    assert not network.sdxl
    trainable = [p for model in network.models.values() for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    per_component = [p for component in network.models for p in network.parameters(component)]
    assert len(per_component) == len(trainable) == 2 * (192 + 12)
    # The base weights stay frozen.
    assert not pipe.unet.conv_in.weight.requires_grad
    assert not pipe.vae.encoder.conv_in.weight.requires_grad


def test_fresh_adapters_start_as_kohya_does() -> None:
    from loratui.demo.sd_models import tiny_sd15_pipeline

    pipe = tiny_sd15_pipeline(0).to(torch.float16)  # frozen weights in half precision, as mixed precision has them
    network = add_lora_adapters(pipe, RANK, ALPHA, text_encoders=False)
    assert network.module_counts == {"unet": 192}
    assert not any(p.requires_grad for p in pipe.text_encoder.parameters())  # UNet-only: the TE stays frozen
    assert {p.dtype for p in network.parameters("unet")} == {torch.float32}
    assert pipe.unet.conv_in.weight.dtype == torch.float16
    tensors = kohya_state_dict(network, "float")
    ups = [t for k, t in tensors.items() if k.endswith(".lora_up.weight")]
    downs = [t for k, t in tensors.items() if k.endswith(".lora_down.weight")]
    assert ups and all(not t.any() for t in ups)  # up starts at zero: the LoRA does nothing before training
    assert all(t.abs().max() > 0 for t in downs)  # down is kaiming-uniform


def test_sd15_keys_equal_the_golden_list(sd15_trained) -> None:
    assert _keys_and_shapes(kohya_state_dict(sd15_trained[1])) == _golden("lora_keys_sd15.txt")


def test_sdxl_keys_equal_the_golden_list(sdxl_trained) -> None:
    network = sdxl_trained[1]
    assert network.sdxl
    assert network.module_counts == {"unet": 192, "text_encoder": 12, "text_encoder_2": 12}
    assert _keys_and_shapes(kohya_state_dict(network)) == _golden("lora_keys_sdxl.txt")


@pytest.mark.parametrize(
    ("golden", "expected"),
    [
        (
            "lora_keys_sd15.txt",
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight 4x32",
        ),
        ("lora_keys_sd15.txt", "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight 4x32x1x1"),
        ("lora_keys_sd15.txt", "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight 32x4x1x1"),
        ("lora_keys_sd15.txt", "lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj.alpha scalar"),
        (
            "lora_keys_sd15.txt",
            "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_out_0.lora_up.weight 32x4",
        ),
        ("lora_keys_sd15.txt", "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight 4x32"),
        ("lora_keys_sd15.txt", "lora_te_text_model_encoder_layers_1_mlp_fc1.lora_up.weight 37x4"),
        ("lora_keys_sdxl.txt", "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight 4x64"),
        ("lora_keys_sdxl.txt", "lora_unet_input_blocks_8_1_transformer_blocks_1_attn2_to_k.lora_down.weight 4x64"),
        ("lora_keys_sdxl.txt", "lora_unet_middle_block_1_transformer_blocks_1_ff_net_2.lora_up.weight 64x4"),
        ("lora_keys_sdxl.txt", "lora_unet_output_blocks_0_1_proj_in.lora_down.weight 4x64"),
        ("lora_keys_sdxl.txt", "lora_unet_output_blocks_5_1_proj_out.alpha scalar"),
        ("lora_keys_sdxl.txt", "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight 4x32"),
        ("lora_keys_sdxl.txt", "lora_te2_text_model_encoder_layers_1_mlp_fc2.lora_up.weight 32x4"),
    ],
)
def test_golden_lists_hold_kohyas_names(golden: str, expected: str) -> None:
    # Hand-checked against kohya.md §1.1; guards the golden files themselves.
    assert expected in _golden(golden)


def test_golden_lists_have_no_diffusers_only_names() -> None:
    sd15, sdxl = _golden("lora_keys_sd15.txt"), _golden("lora_keys_sdxl.txt")
    assert not any("lora_te1_" in line or "lora_te_encoder_" in line for line in sd15)
    assert not any(
        token in line for line in sdxl for token in ("down_blocks", "up_blocks", "mid_block", "lora_te_", "te1_encoder")
    )
    # Three tensors per module.
    assert len(sd15) == 3 * (192 + 12) and len(sdxl) == 3 * (192 + 12 + 12)


@pytest.mark.parametrize(
    ("diffusers", "sgm"),
    [
        ("down_blocks.1.attentions.0.proj_in", "input_blocks.4.1.proj_in"),
        ("down_blocks.1.attentions.1.proj_in", "input_blocks.5.1.proj_in"),
        (
            "down_blocks.2.attentions.0.transformer_blocks.9.attn1.to_q",
            "input_blocks.7.1.transformer_blocks.9.attn1.to_q",
        ),
        ("down_blocks.2.attentions.1.proj_out", "input_blocks.8.1.proj_out"),
        ("mid_block.attentions.0.transformer_blocks.0.ff.net.2", "middle_block.1.transformer_blocks.0.ff.net.2"),
        ("up_blocks.0.attentions.2.proj_out", "output_blocks.2.1.proj_out"),
        ("up_blocks.1.attentions.0.proj_in", "output_blocks.3.1.proj_in"),
        ("up_blocks.1.attentions.2.proj_in", "output_blocks.5.1.proj_in"),
    ],
)
def test_sdxl_unet_paths_follow_kohyas_conversion_table(diffusers: str, sgm: str) -> None:
    assert sdxl_unet_path(diffusers) == sgm


def test_text_encoder_names_get_text_model_back() -> None:
    assert (
        kohya_module_name("text_encoder", "encoder.layers.0.self_attn.q_proj", sdxl=False)
        == "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    )
    assert (
        kohya_module_name("text_encoder_2", "text_model.encoder.layers.3.mlp.fc2", sdxl=True)
        == "lora_te2_text_model_encoder_layers_3_mlp_fc2"
    )


# --- file contents -----------------------------------------------------------------------------


def test_file_stores_configured_alpha_and_fp16_weights(sd15_file: Path) -> None:
    tensors = _file_tensors(sd15_file)
    alphas = {k: t for k, t in tensors.items() if k.endswith(".alpha")}
    weights = {k: t for k, t in tensors.items() if not k.endswith(".alpha")}
    assert len(alphas) == 192 + 12
    # alpha 2 with rank 4: scale 1/2, not diffusers' alpha = rank.
    assert all(t.dim() == 0 and t.item() == ALPHA for t in alphas.values())
    # kohya's --save_precision casts every tensor, alpha included.
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    assert all(t.is_contiguous() for t in weights.values())
    assert any(t.any() for k, t in weights.items() if k.endswith("lora_up.weight"))


@pytest.mark.parametrize(("precision", "dtype"), [("bf16", torch.bfloat16), ("float", torch.float32)])
def test_save_precision_sets_every_dtype(sd15_trained, tmp_path: Path, precision: str, dtype: torch.dtype) -> None:
    path = tmp_path / "x.safetensors"
    save_lora(path, sd15_trained[1], _facts(save_precision=precision), epoch=1, step=1)
    assert {t.dtype for t in _file_tensors(path).values()} == {dtype}
    assert read_lora(path).alpha == ALPHA


def test_metadata_round_trips_as_strings(sd15_file: Path) -> None:
    with safe_open(str(sd15_file), framework="pt") as handle:
        metadata = handle.metadata()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    expected = {
        "ss_session_id": "1234",
        "ss_training_started_at": "1700000000.5",
        "ss_training_finished_at": "1700000100.25",
        "ss_output_name": "rishi",
        "ss_network_module": "networks.lora",
        "ss_network_dim": "4",
        "ss_network_alpha": "2.0",
        "ss_network_dropout": "None",
        "ss_base_model_version": "sd_v1",
        "ss_v2": "False",
        "ss_sd_model_name": "tiny-sd15",
        "ss_resolution": "(512, 512)",
        "ss_num_train_images": "72",  # 12 x 5 + 4 x 3
        "ss_num_reg_images": "0",
        "ss_num_batches_per_epoch": "72",
        "ss_num_epochs": "10",
        "ss_epoch": "2",
        "ss_steps": "144",
        "ss_max_train_steps": "720",
        "ss_learning_rate": "0.0001",
        "ss_unet_lr": "0.0001",
        "ss_text_encoder_lr": "1e-05",
        "ss_mixed_precision": "bf16",
        "ss_clip_skip": "2",
        "ss_keep_tokens": "1",
        "ss_noise_offset": "None",
        "ss_min_snr_gamma": "None",
        "ss_optimizer": "torch.optim.adamw.AdamW",
        "ss_batch_size_per_device": "1",
        "ss_total_batch_size": "1",
        "ss_seed": "1337",
        "ss_cache_latents": "True",
        "ss_enable_bucket": "True",
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": "rishi",
        "modelspec.resolution": "512x512",
        "modelspec.prediction_type": "epsilon",
        "modelspec.encoder_layer": "2",
        "modelspec.trigger_phrase": "rishi",
    }
    assert {k: metadata.get(k) for k in expected} == expected
    assert json.loads(metadata["ss_dataset_dirs"]) == {
        "5_rishi": {"n_repeats": 5, "img_count": 12},
        "3_style": {"n_repeats": 3, "img_count": 4},
    }
    assert json.loads(metadata["ss_tag_frequency"])["5_rishi"] == {"rishi": 12, "smile": 3}
    assert json.loads(metadata["ss_bucket_info"])["buckets"]["0"]["count"] == 72
    assert metadata["modelspec.date"].startswith("2023-11-1")


def test_sdxl_metadata_names_the_sdxl_base(sdxl_trained, tmp_path: Path) -> None:
    path = tmp_path / "xl.safetensors"
    saved = save_lora(path, sdxl_trained[1], _facts("sdxl"), epoch=1, step=10)
    metadata = read_lora(path).metadata
    assert metadata == saved.metadata
    # A1111 files a LoRA under SDXL only when this starts with "sdxl_".
    assert metadata["ss_base_model_version"] == "sdxl_base_v1-0"
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert metadata["modelspec.resolution"] == "1024x1024"
    assert metadata["ss_clip_skip"] == "None"
    assert "modelspec.encoder_layer" not in metadata


def test_addnet_hashes_are_kohyas(sd15_file: Path) -> None:
    tensors = _file_tensors(sd15_file)
    metadata = read_lora(sd15_file).metadata
    ss_only = safetensors_save(tensors, {k: v for k, v in metadata.items() if k.startswith("ss_")})
    data = sd15_file.read_bytes()
    header = int.from_bytes(data[:8], "little")
    import hashlib

    # The payload does not depend on metadata, so the hash equals the saved file's payload hash.
    assert metadata["sshs_model_hash"] == hashlib.sha256(data[8 + header :]).hexdigest() == addnet_model_hash(ss_only)
    assert metadata["sshs_legacy_hash"] == addnet_legacy_hash(ss_only)
    assert len(metadata["sshs_legacy_hash"]) == 8


# --- reload in diffusers -----------------------------------------------------------------------


def test_diffusers_renders_the_file_like_the_in_memory_model(
    sd15_lora_render: np.ndarray, sd15_file: Path, sd15_base_render: np.ndarray, tiny_sd15_dir: Path
) -> None:
    expected = sd15_lora_render
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd15_dir, local_files_only=True)
    pipe.load_lora_weights(str(sd15_file), adapter_name="rishi")

    assert pipe.get_list_adapters() == {"unet": ["rishi"], "text_encoder": ["rishi"]}
    loaded = _render(pipe)
    assert _max_diff(expected, sd15_base_render) > 0.05  # the LoRA really changes the picture
    assert _max_diff(loaded, expected) < 1e-2

    pipe.set_adapters(["rishi"], adapter_weights=[0.0])
    assert np.array_equal(_render(pipe), sd15_base_render)


def test_a_file_with_alpha_equal_to_rank_renders_differently(
    sd15_lora_render: np.ndarray, sd15_file: Path, tiny_sd15_dir: Path, tmp_path: Path
) -> None:
    """What diffusers' own converter writes (alpha = rank); proves the render test can see a wrong alpha."""
    tensors = {
        k: (torch.tensor(float(RANK), dtype=t.dtype) if k.endswith(".alpha") else t)
        for k, t in _file_tensors(sd15_file).items()
    }
    wrong = tmp_path / "wrong.safetensors"
    wrong.write_bytes(safetensors_save(tensors))
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd15_dir, local_files_only=True)
    pipe.load_lora_weights(str(wrong), adapter_name="wrong")

    assert _max_diff(_render(pipe), sd15_lora_render) > 1e-2


def test_sdxl_file_loads_into_unet_and_both_text_encoders(sdxl_trained, tiny_sdxl_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "xl.safetensors"
    save_lora(path, sdxl_trained[1], _facts("sdxl"), epoch=1, step=10)
    expected = _render(sdxl_trained[0])
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl_dir, local_files_only=True)
    base = _render(pipe)
    pipe.load_lora_weights(str(path), adapter_name="xl")

    assert pipe.get_list_adapters() == {"unet": ["xl"], "text_encoder": ["xl"], "text_encoder_2": ["xl"]}
    # Every module landed on its own layer: the SGM names mapped back to the same diffusers blocks.
    from peft.tuners.lora import LoraLayer

    for name in ("unet", "text_encoder", "text_encoder_2"):
        count = sum(isinstance(m, LoraLayer) for m in getattr(pipe, name).modules())
        assert count == sdxl_trained[1].module_counts[name], name
    assert _max_diff(expected, base) > 0.05
    assert _max_diff(_render(pipe), expected) < 1e-2


# --- reading files -----------------------------------------------------------------------------


def test_read_lora_reports_rank_alpha_family_and_metadata(sd15_file: Path) -> None:
    info = read_lora(sd15_file)
    assert (info.rank, info.alpha, info.family, info.dtype) == (RANK, ALPHA, "sd15", "F16")
    assert info.module_counts == {"unet": 192, "te": 12}
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj" in info.modules
    assert info.output_name == "rishi"
    assert info.metadata["ss_network_alpha"] == "2.0"


def test_read_lora_guesses_sdxl_from_keys_without_metadata(sdxl_trained, tmp_path: Path) -> None:
    path = tmp_path / "bare.safetensors"
    path.write_bytes(safetensors_save(kohya_state_dict(sdxl_trained[1], "bf16")))
    info = read_lora(path)
    assert (info.family, info.rank, info.alpha, info.dtype) == ("sdxl", RANK, ALPHA, "BF16")
    assert info.output_name == "bare"


def test_read_lora_refuses_pickles_models_and_broken_files(
    sd15_file: Path, tiny_sd15_dir: Path, tmp_path: Path
) -> None:
    pickle = tmp_path / "old.ckpt"
    pickle.write_bytes(b"\x80\x04not read")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(sd15_file.read_bytes()[:-100])
    garbage = tmp_path / "noise.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    cases = {
        pickle: "pickle file",
        tiny_sd15_dir / "unet" / "diffusion_pytorch_model.safetensors": "not a LoRA file",
        truncated: "truncated",
        garbage: "not a .safetensors file",
        tmp_path / "missing.safetensors": "no such file",
        tmp_path: "is a folder",
    }
    for path, words in cases.items():
        with pytest.raises(LoratuiError) as info:
            read_lora(path)
        message = str(info.value)
        assert words in message and str(path) in message and "\n" not in message, message


# --- saving ------------------------------------------------------------------------------------


def test_file_names_and_checkpoint_epochs(tmp_path: Path) -> None:
    assert epoch_file_name("rishi", 2) == "rishi-000002.safetensors"
    assert final_file_name("rishi") == "rishi.safetensors"
    assert checkpoint_path(tmp_path, "rishi", 12) == tmp_path / "rishi-000012.safetensors"
    assert checkpoint_path(tmp_path, "rishi") == tmp_path / "rishi.safetensors"
    # Every 2nd of 6 epochs: 2 and 4; the 6th is the final file.
    assert [e for e in range(1, 7) if is_checkpoint_epoch(e, 2, 6)] == [2, 4]
    assert not any(is_checkpoint_epoch(e, 0, 6) for e in range(1, 7))


def test_list_checkpoints_in_training_order(tmp_path: Path) -> None:
    for name in (
        "rishi-000010.safetensors",
        "rishi-000002.safetensors",
        "rishi.safetensors",
        "other-000004.safetensors",
        ".rishi-000012.safetensors.abc.tmp",
        "rishi-2.safetensors",
    ):
        (tmp_path / name).write_bytes(b"x")
    assert list_checkpoints(tmp_path, "rishi") == [
        (2, tmp_path / "rishi-000002.safetensors"),
        (10, tmp_path / "rishi-000010.safetensors"),
        (None, tmp_path / "rishi.safetensors"),
    ]
    assert list_checkpoints(tmp_path / "nothing", "rishi") == []


def test_save_leaves_no_temp_file_and_replaces_the_old_one(sd15_trained, tmp_path: Path) -> None:
    path = tmp_path / "output" / "rishi.safetensors"
    first = save_lora(path, sd15_trained[1], _facts(), epoch=1, step=72)
    second = save_lora(path, sd15_trained[1], _facts(), epoch=2, step=144)
    assert sorted(p.name for p in path.parent.iterdir()) == ["rishi.safetensors"]
    assert second.size == path.stat().st_size and second.tensors == 3 * (192 + 12)
    assert read_lora(path).metadata["ss_epoch"] == "2" != first.metadata["ss_epoch"]


def test_a_write_that_fails_midway_keeps_the_old_file(sd15_trained, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "rishi.safetensors"
    save_lora(path, sd15_trained[1], _facts(), epoch=1, step=72)
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data: bytes) -> None:
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            raise KeyboardInterrupt  # the user's Ctrl+C (or a crash) halfway through the bytes

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        save_lora(path, sd15_trained[1], _facts(), epoch=2, step=144)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rishi.safetensors"]
    assert read_lora(path).metadata["ss_epoch"] == "1"


def test_a_process_killed_during_a_save_never_leaves_a_truncated_file(sd15_file: Path, tmp_path: Path) -> None:
    """A real SIGKILL between writing the bytes and the rename: the target keeps its old, whole contents."""
    path = tmp_path / "rishi.safetensors"
    path.write_bytes(b"old")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(sd15_file.read_bytes())
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from loratui.lora import paths as lora_paths\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        "lora_paths.write_lora_bytes(Path(sys.argv[1]), Path(sys.argv[2]).read_bytes())\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path), str(payload)], timeout=60)

    assert result.returncode == -9
    assert path.read_bytes() == b"old"
    assert "torch" not in lora_paths.__dict__  # the write path stays light enough for this test's subprocess
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".rishi.safetensors.")
    assert list_checkpoints(tmp_path, "rishi") == [(None, path)]


def test_write_refuses_other_suffixes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must end in .safetensors"):
        lora_paths.write_lora_bytes(tmp_path / "x.ckpt", b"")


# --- run facts ---------------------------------------------------------------------------------


def test_dataset_dir_facts_count_like_kohya(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "dataset" / "5_rishi"
    folder.mkdir(parents=True)
    for name, caption in (("a", "rishi, Smile, red hair"), ("b", "rishi,  smile ,"), ("c", None)):
        Image.new("RGB", (8, 8)).save(folder / f"{name}.png")
        if caption is not None:
            (folder / f"{name}.txt").write_text(caption, encoding="utf-8")

    dirs, frequency = dataset_dir_facts([folder])

    assert dirs == [DatasetDir("5_rishi", 5, 3)]
    # The picture without a caption counts the folder's class token, as kohya captions it.
    assert frequency == {"5_rishi": {"rishi": 3, "smile": 2, "red hair": 1}}
    facts = _facts()
    facts.dataset_dirs = dirs
    assert facts.num_train_images == 15


def test_sd_model_name_is_a_base_name_or_a_hub_id(tmp_path: Path) -> None:
    from loratui.lora.metadata import sd_model_name

    model = tmp_path / "models" / "anything-v5.safetensors"
    model.parent.mkdir()
    model.write_bytes(b"")
    assert sd_model_name(str(model)) == "anything-v5.safetensors"
    assert sd_model_name("stable-diffusion-v1-5/stable-diffusion-v1-5") == "stable-diffusion-v1-5/stable-diffusion-v1-5"


def test_train_facts_refuse_an_unknown_family() -> None:
    with pytest.raises(ValueError, match="unknown model family"):
        _facts("sd3")


# --- loratui lora-info -------------------------------------------------------------------------


def test_lora_info_prints_the_file_summary(sd15_file: Path, capsys) -> None:
    from loratui.cli import main

    assert main(["lora-info", str(sd15_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "rishi-000002.safetensors: LoRA for sd15, rank 4, alpha 2 (scale 0.5), 204 modules (unet 192, te 12), F16"
    )
    # ss_num_train_images counts the repeats already: the folders say how
    assert lines[1].startswith("trained: epoch 2 of 10, step 144 of 720, 72 images per epoch (12 pictures x 5 "
                               "repeats + 4 x 3), resolution ")
    assert "trigger: rishi" in lines
    assert "tags in 5_rishi: rishi 12, smile 3" in lines

    assert main(["lora-info", str(sd15_file), "--json", "--metadata"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["family"], data["rank"], data["alpha"], data["modules"]) == ("sd15", 4, 2.0, {"unet": 192, "te": 12})
    assert data["metadata"]["ss_output_name"] == "rishi"


def test_lora_info_refuses_a_pickle_with_one_line(tmp_path: Path, capsys) -> None:
    from loratui.cli import main

    model = tmp_path / "model.ckpt"
    model.write_bytes(b"\x80\x04")
    assert main(["lora-info", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pickle file" in err and str(model) in err


def test_lora_info_loads_no_heavy_library(sd15_file: Path) -> None:
    heavy = ("torch", "diffusers", "transformers", "peft", "onnxruntime", "accelerate", "safetensors.torch")
    probe = (
        "import contextlib, io, sys\nfrom loratui.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['lora-info', {str(sd15_file)!r}]) == 0\n"
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


# --- loading a checkpoint back -----------------------------------------------------------------


def test_load_kohya_weights_restores_a_saved_network(sd15_file: Path, sd15_trained) -> None:
    from loratui.demo.sd_models import tiny_sd15_pipeline
    from loratui.lora.file import load_kohya_weights

    fresh = add_lora_adapters(tiny_sd15_pipeline(0), RANK, ALPHA)
    assert load_kohya_weights(fresh, sd15_file) == 192 + 12
    restored, saved = kohya_state_dict(fresh, "float"), kohya_state_dict(sd15_trained[1], "float")
    assert restored.keys() == saved.keys()
    assert all(torch.equal(restored[k], saved[k]) for k in saved)


def test_load_kohya_weights_refuses_another_rank_or_alpha(sd15_file: Path) -> None:
    from loratui.demo.sd_models import tiny_sd15_pipeline, tiny_sdxl_pipeline
    from loratui.lora.file import load_kohya_weights

    cases = [
        (add_lora_adapters(tiny_sd15_pipeline(0), 8, ALPHA), "another network_dim"),
        (add_lora_adapters(tiny_sd15_pipeline(0), RANK, 1.0), "differs from network_alpha"),
        (add_lora_adapters(tiny_sd15_pipeline(0), RANK, ALPHA, text_encoders=False), "no layer for"),
        (add_lora_adapters(tiny_sdxl_pipeline(0), RANK, ALPHA), "is missing"),
    ]
    for network, words in cases:
        with pytest.raises(LoratuiError, match=words):
            load_kohya_weights(network, sd15_file)


def test_lora_info_counts_images_once_with_their_repeats() -> None:
    from loratui.commands.lora_info_cmd import _images

    one = {"ss_num_train_images": "48", "ss_dataset_dirs": '{"2_akari": {"n_repeats": 2, "img_count": 24}}'}
    assert _images(one) == "48 images per epoch (24 pictures x 2 repeats)"
    assert _images({"ss_num_train_images": "1", "ss_dataset_dirs": '{"1_a": {"n_repeats": 1, "img_count": 1}}'}) \
        == "1 image per epoch (1 picture x 1 repeat)"
    assert _images({"ss_num_train_images": "48", "ss_dataset_dirs": "not json"}) == \
        "48 images per epoch (pictures x repeats)"
