"""Tests of the demo's offline tokenizer, tiny SD1.5/SDXL pipelines and tiny single-file checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before diffusers/huggingface_hub are imported

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    infer_diffusers_model_type,
)
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from safetensors import safe_open
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from loratui.demo.sd_models import build_tiny_sd15, build_tiny_sdxl, tiny_sd15_pipeline
from loratui.demo.single_file import (
    UnmappedKeyError,
    build_tiny_sd15_single_file,
    sd1_pipeline_to_ldm,
    text_encoder_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
)
from loratui.demo.tokenizer import DEMO_WORDS, clip_pretokens, write_clip_tokenizer
from loratui.training.clip_tokenizer import EOS_TOKEN, OPENCLIP_PAD_TOKEN, TOKENIZER_FILES

PROMPT = "a photo of 1girl, solo, smile, red hair, blue eyes, zebra"
SIZE = 64


def _render(pipe: StableDiffusionPipeline | StableDiffusionXLPipeline) -> np.ndarray:
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    result = pipe(
        PROMPT,
        num_inference_steps=3,
        height=SIZE,
        width=SIZE,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    )
    return result.images[0]


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _weight_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.safetensors"))}


@pytest.fixture(scope="module")
def sd15_pipe(tiny_sd15_dir: Path) -> StableDiffusionPipeline:
    return StableDiffusionPipeline.from_pretrained(tiny_sd15_dir, local_files_only=True)


@pytest.fixture(scope="module")
def sd15_render(sd15_pipe: StableDiffusionPipeline) -> np.ndarray:
    return _render(sd15_pipe)


# --- tokenizer ---------------------------------------------------------------------------------


def test_tokenizer_folder_has_exactly_the_sd_repo_files(tmp_path: Path) -> None:
    folder = write_clip_tokenizer(tmp_path / "tokenizer")
    assert _files(folder) == set(TOKENIZER_FILES)
    assert (folder / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["model_max_length"] == 77
    assert config["tokenizer_class"] == "CLIPTokenizer"


def test_tokenizer_gives_one_token_per_known_word(tmp_path: Path) -> None:
    folder = write_clip_tokenizer(tmp_path / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))

    ids = tokenizer("a photo of").input_ids

    assert ids == [tokenizer.bos_token_id, vocab["a</w>"], vocab["photo</w>"], vocab["of</w>"], tokenizer.eos_token_id]
    # Real CLIP's byte-level ids carry over: "a</w>" is 320 there too.
    assert vocab["a</w>"] == 320
    for word in DEMO_WORDS:
        for pretoken in clip_pretokens(word):
            assert tokenizer.tokenize(pretoken) == [pretoken + "</w>"], word


def test_tokenizer_vocab_size_and_special_ids(tmp_path: Path) -> None:
    folder = write_clip_tokenizer(tmp_path / "tokenizer", words=["photo", "cat"])
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]

    # p-h, ph-o, pho-t, phot-o</w>; c-a, ca-t</w>
    assert len(merges) == 6
    assert len(tokenizer) == 256 + 256 + 6 + 2
    assert tokenizer.bos_token_id == len(tokenizer) - 2
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == tokenizer.unk_token_id == len(tokenizer) - 1
    assert tokenizer.model_max_length == 77


def test_tokenizer_byte_fallback_keeps_any_text(tmp_path: Path) -> None:
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp_path / "tokenizer"))
    text = "zebra ñ 東京 on_the-beach"

    ids = tokenizer(text).input_ids

    assert tokenizer.unk_token_id not in ids[1:-1]
    # CLIP splits "on_the-beach" at punctuation and decodes each word followed by a space.
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == "zebra ñ 東京 on _ the - beach"


def test_sdxl_second_tokenizer_pads_with_bang(tmp_path: Path) -> None:
    folder = write_clip_tokenizer(tmp_path / "tokenizer_2", pad_token=OPENCLIP_PAD_TOKEN)
    tokenizer = CLIPTokenizer.from_pretrained(folder)

    ids = tokenizer("a cat", padding="max_length", max_length=8).input_ids

    assert tokenizer.pad_token == "!"
    assert tokenizer.eos_token == EOS_TOKEN
    assert ids[-4:] == [tokenizer.convert_tokens_to_ids("!")] * 4
    assert ids[3] == tokenizer.eos_token_id


# --- tiny SD1.5 --------------------------------------------------------------------------------


def test_sd15_folder_loads_offline_and_renders(sd15_render: np.ndarray) -> None:
    assert sd15_render.shape == (SIZE, SIZE, 3)
    assert np.isfinite(sd15_render).all()
    assert sd15_render.std() > 0


def test_sd15_folder_files_and_model_index(tiny_sd15_dir: Path) -> None:
    assert _files(tiny_sd15_dir) == {
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        *(f"tokenizer/{name}" for name in TOKENIZER_FILES),
    }
    index = json.loads((tiny_sd15_dir / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None]
    assert index["feature_extractor"] == [None, None]
    assert index["requires_safety_checker"] is False
    assert index["scheduler"] == ["diffusers", "DDPMScheduler"]


def test_sd15_configs_match_sd15(sd15_pipe: StableDiffusionPipeline) -> None:
    assert sd15_pipe.vae.config.scaling_factor == 0.18215
    assert len(sd15_pipe.vae.config.down_block_types) == 4  # 8x downscale
    scheduler = sd15_pipe.scheduler.config
    assert (scheduler.beta_start, scheduler.beta_end, scheduler.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert (scheduler.num_train_timesteps, scheduler.steps_offset, scheduler.clip_sample) == (1000, 1, False)
    text = sd15_pipe.text_encoder.config
    tokenizer = sd15_pipe.tokenizer
    assert text.hidden_act == "quick_gelu"
    assert (text.bos_token_id, text.eos_token_id, text.pad_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    assert sd15_pipe.unet.config.cross_attention_dim == text.hidden_size


def test_sd15_unet_has_sd15_attention_layout(sd15_pipe: StableDiffusionPipeline) -> None:
    paths = {name for name, module in sd15_pipe.unet.named_modules() if isinstance(module, Transformer2DModel)}
    expected = (
        {f"down_blocks.{b}.attentions.{a}" for b in (0, 1, 2) for a in (0, 1)}
        | {"mid_block.attentions.0"}
        | {f"up_blocks.{b}.attentions.{a}" for b in (1, 2, 3) for a in (0, 1, 2)}
    )
    assert len(expected) == 16
    assert paths == expected


def test_sd15_text_encoder_has_clip_module_names(sd15_pipe: StableDiffusionPipeline) -> None:
    names = {name for name, _ in sd15_pipe.text_encoder.named_modules()}
    for layer in (0, 1):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            assert f"encoder.layers.{layer}.self_attn.{proj}" in names
        assert f"encoder.layers.{layer}.mlp.fc1" in names
        assert f"encoder.layers.{layer}.mlp.fc2" in names
    assert "encoder.layers.2.self_attn.q_proj" not in names


# --- single file -------------------------------------------------------------------------------


def _assert_same_state(reference: dict[str, torch.Tensor], converted: dict[str, torch.Tensor]) -> None:
    assert set(converted) - set(reference) == set(), "extra keys"
    assert set(reference) - set(converted) == set(), "missing keys"
    mismatched = [k for k in reference if not torch.equal(reference[k], converted[k].reshape(reference[k].shape))]
    assert mismatched == []


def test_single_file_round_trips_through_diffusers_converters() -> None:
    pipe = tiny_sd15_pipeline(seed=0)
    ldm = sd1_pipeline_to_ldm(pipe, dtype=torch.float32)

    unet = convert_ldm_unet_checkpoint(ldm, dict(pipe.unet.config))
    vae = convert_ldm_vae_checkpoint(ldm, dict(pipe.vae.config))
    text = {k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(ldm).items()}

    _assert_same_state(pipe.unet.state_dict(), unet)
    _assert_same_state(pipe.vae.state_dict(), vae)
    _assert_same_state(pipe.text_encoder.state_dict(), text)
    assert len(ldm) == len(unet) + len(vae) + len(text)
    assert infer_diffusers_model_type(ldm) == "v1"


def test_converter_gives_real_sd15_names_and_shapes() -> None:
    """At SD1.5's real sizes (meta tensors, no memory) the names and shapes are those of A1111 files."""
    with torch.device("meta"):
        unet = UNet2DConditionModel(
            sample_size=64, block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            sample_size=512,
        )
        text = CLIPTextModel(
            CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
        )
    ldm = {
        **unet_to_ldm(unet.state_dict(), unet.config),
        **vae_to_ldm(vae.state_dict(), vae.config),
        **text_encoder_to_ldm(text.state_dict()),
    }
    shapes = {k: tuple(v.shape) for k, v in ldm.items()}

    assert shapes["model.diffusion_model.time_embed.0.weight"] == (1280, 320)
    assert shapes["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (320, 768)
    assert shapes["model.diffusion_model.input_blocks.3.0.op.weight"] == (320, 320, 3, 3)
    assert shapes["model.diffusion_model.input_blocks.4.0.skip_connection.weight"] == (640, 320, 1, 1)
    assert shapes["model.diffusion_model.middle_block.1.proj_in.weight"] == (1280, 1280, 1, 1)
    assert shapes["model.diffusion_model.output_blocks.2.1.conv.weight"] == (1280, 1280, 3, 3)
    assert shapes["model.diffusion_model.output_blocks.5.2.conv.weight"] == (1280, 1280, 3, 3)
    assert shapes["model.diffusion_model.output_blocks.11.1.proj_out.weight"] == (320, 320, 1, 1)
    assert shapes["model.diffusion_model.out.2.weight"] == (4, 320, 3, 3)
    assert shapes["first_stage_model.encoder.down.1.block.0.nin_shortcut.weight"] == (256, 128, 1, 1)
    assert shapes["first_stage_model.encoder.mid.attn_1.q.weight"] == (512, 512, 1, 1)
    assert shapes["first_stage_model.decoder.up.3.block.0.conv1.weight"] == (512, 512, 3, 3)
    assert shapes["first_stage_model.decoder.up.0.block.0.nin_shortcut.weight"] == (128, 256, 1, 1)
    assert shapes["cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight"] == (768, 3072)
    # SD1.5's v1-5-pruned files: 686 UNet, 248 VAE and 196 text encoder weights (position_ids aside).
    assert sum(k.startswith("model.diffusion_model.") for k in ldm) == 686
    assert sum(k.startswith("first_stage_model.") for k in ldm) == 248
    assert sum(k.startswith("cond_stage_model.") for k in ldm) == 196


def test_converter_rejects_unknown_keys() -> None:
    config = {"layers_per_block": 2, "down_block_types": ["DownBlock2D"] * 2, "up_block_types": ["UpBlock2D"] * 2}
    weight = torch.zeros(1)
    with pytest.raises(UnmappedKeyError, match="add_embedding.linear_1.weight"):
        unet_to_ldm({"add_embedding.linear_1.weight": weight}, config)
    with pytest.raises(UnmappedKeyError, match="down_blocks.0.resnets.0.mystery.weight"):
        unet_to_ldm({"down_blocks.0.resnets.0.mystery.weight": weight}, config)
    with pytest.raises(UnmappedKeyError, match="encoder.mid_block.attentions.0.to_x.weight"):
        vae_to_ldm({"encoder.mid_block.attentions.0.to_x.weight": weight}, {**config, "down_block_types": ["x"] * 2})
    with pytest.raises(UnmappedKeyError, match="text_projection.weight"):
        text_encoder_to_ldm({"text_projection.weight": weight})


def test_single_file_is_fp16_with_a1111_metadata(tiny_single_file) -> None:
    with safe_open(str(tiny_single_file.checkpoint), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        keys = list(f.keys())
        dtypes = {f.get_slice(k).get_dtype() for k in keys}
    assert dtypes == {"F16"}
    prefixes = {k.split(".")[0] for k in keys}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert all(k.startswith("cond_stage_model.transformer.text_model.") for k in keys if k.startswith("cond_stage"))


def test_config_only_folder_holds_no_weights(tiny_single_file) -> None:
    assert _files(tiny_single_file.config_dir) == {
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "unet/config.json",
        "vae/config.json",
        *(f"tokenizer/{name}" for name in TOKENIZER_FILES),
    }


def _round_through_fp16(pipe: StableDiffusionPipeline) -> StableDiffusionPipeline:
    with torch.no_grad():
        for name in ("unet", "vae", "text_encoder"):
            for tensor in getattr(pipe, name).state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(tensor.half().float())
    return pipe


def test_single_file_loads_offline_and_matches_folder_render(tiny_single_file, tiny_sd15_dir: Path) -> None:
    """The single file loads as exactly the folder's weights rounded to fp16, and renders the same.

    The reference is rounded too because a random tiny model amplifies fp16 rounding: with CFG 7.5 its
    render moves by up to ~0.1 for some prompts, which says nothing about the converter.
    """
    pipe = StableDiffusionPipeline.from_single_file(
        str(tiny_single_file.checkpoint), config=str(tiny_single_file.config_dir), local_files_only=True
    )
    reference = _round_through_fp16(StableDiffusionPipeline.from_pretrained(tiny_sd15_dir, local_files_only=True))

    for name in ("unet", "vae", "text_encoder"):
        loaded, expected = getattr(pipe, name).state_dict(), getattr(reference, name).state_dict()
        assert set(loaded) == set(expected), name
        assert all(torch.equal(loaded[k].reshape(expected[k].shape), expected[k]) for k in expected), name
    image, expected_image = _render(pipe), _render(reference)
    assert image.shape == (SIZE, SIZE, 3)
    assert float(np.abs(image - expected_image).max()) < 1e-3


# --- tiny SDXL ---------------------------------------------------------------------------------


def test_sdxl_folder_loads_offline_and_renders(tiny_sdxl_dir: Path) -> None:
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl_dir, local_files_only=True)

    image = _render(pipe)

    assert image.shape == (SIZE, SIZE, 3)
    assert np.isfinite(image).all()
    assert pipe.tokenizer_2.pad_token == "!"
    assert pipe.vae.config.scaling_factor == 0.13025
    assert pipe.vae.config.force_upcast is True
    assert type(pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert pipe.unet.config.addition_embed_type == "text_time"
    assert _files(tiny_sdxl_dir / "tokenizer_2") == set(TOKENIZER_FILES)


def test_sdxl_unet_has_sdxl_attention_layout(tiny_sdxl_dir: Path) -> None:
    unet = UNet2DConditionModel.from_pretrained(tiny_sdxl_dir, subfolder="unet", local_files_only=True)
    depth = {
        name: len(module.transformer_blocks)
        for name, module in unet.named_modules()
        if isinstance(module, Transformer2DModel)
    }
    expected = (
        {f"down_blocks.{b}.attentions.{a}": b for b in (1, 2) for a in (0, 1)}
        | {"mid_block.attentions.0": 2}
        | {f"up_blocks.{b}.attentions.{a}": 2 - b for b in (0, 1) for a in (0, 1, 2)}
    )
    assert depth == expected


# --- determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize(("build", "fixture"), [(build_tiny_sd15, "tiny_sd15_dir"), (build_tiny_sdxl, "tiny_sdxl_dir")])
def test_builders_are_deterministic(build, fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    reference = _weight_bytes(request.getfixturevalue(fixture))

    same = _weight_bytes(build(tmp_path / "same", seed=0))
    other = _weight_bytes(build(tmp_path / "other", seed=1))

    assert len(reference) >= 3
    assert same == reference
    assert set(other) == set(reference)
    assert all(other[name] != reference[name] for name in reference)


def test_single_file_builder_is_deterministic(tiny_single_file, tmp_path: Path) -> None:
    same = build_tiny_sd15_single_file(tmp_path / "same.safetensors", tmp_path / "same-config", seed=0)
    other = build_tiny_sd15_single_file(tmp_path / "other.safetensors", tmp_path / "other-config", seed=1)

    assert same.checkpoint.read_bytes() == tiny_single_file.checkpoint.read_bytes()
    assert other.checkpoint.read_bytes() != tiny_single_file.checkpoint.read_bytes()


def test_builders_leave_the_global_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(1234)
    expected = torch.rand(4)
    torch.manual_seed(1234)
    build_tiny_sd15(tmp_path / "model", seed=3)
    assert torch.equal(torch.rand(4), expected)
