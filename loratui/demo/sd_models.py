"""Offline, deterministic builders of tiny Stable Diffusion 1.5 and SDXL pipelines with real module names."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
from transformers.utils import logging as transformers_logging

from loratui.demo.tokenizer import write_clip_tokenizer
from loratui.training.clip_tokenizer import EOS_TOKEN, MODEL_MAX_LENGTH, OPENCLIP_PAD_TOKEN

SD15_VAE_SCALING_FACTOR = 0.18215
SDXL_VAE_SCALING_FACTOR = 0.13025
TEXT_HIDDEN_SIZE = 32
# Unlike the hidden width, so a transposed MLP weight fails on its shape instead of loading silently.
TEXT_INTERMEDIATE_SIZE = 37
SDXL_TIME_EMBED_DIM = 8
# The image size the tiny models are made for: 64 px -> 8x8 latents through the 8x VAE.
TINY_IMAGE_SIZE = 64

# Distinct seed offsets so that no two components draw from the same random stream.
_SEED_OFFSETS = {"unet": 0, "vae": 1, "text_encoder": 2, "text_encoder_2": 3}

_T = TypeVar("_T")


def _seeded(seed: int, component: str, build: Callable[[], _T]) -> _T:
    """Build a component from its own seed without disturbing the caller's global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * len(_SEED_OFFSETS) + _SEED_OFFSETS[component])
        return build()


def load_tiny_tokenizer(pad_token: str = EOS_TOKEN) -> CLIPTokenizer:
    """The demo tokenizer, loaded from its files exactly like a real SD repo's tokenizer folder."""
    with tempfile.TemporaryDirectory(prefix="loratui-tokenizer-") as tmp:
        return CLIPTokenizer.from_pretrained(str(write_clip_tokenizer(Path(tmp), pad_token=pad_token)))


def _text_config(tokenizer: CLIPTokenizer, hidden_act: str) -> CLIPTextConfig:
    # The pooled output looks up eos_token_id, so it must be the tokenizer's real id.
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN_SIZE,
        intermediate_size=TEXT_INTERMEDIATE_SIZE,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MODEL_MAX_LENGTH,
        projection_dim=TEXT_HIDDEN_SIZE,
        hidden_act=hidden_act,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def tiny_text_encoder(tokenizer: CLIPTokenizer, seed: int) -> CLIPTextModel:
    """CLIP ViT-L-shaped text encoder (quick_gelu), 2 layers of width 32."""
    return _seeded(seed, "text_encoder", lambda: CLIPTextModel(_text_config(tokenizer, "quick_gelu")))


def tiny_text_encoder_2(tokenizer: CLIPTokenizer, seed: int) -> CLIPTextModelWithProjection:
    """OpenCLIP bigG-shaped SDXL second text encoder (gelu, with projection)."""
    config = _text_config(tokenizer, "gelu")
    return _seeded(seed, "text_encoder_2", lambda: CLIPTextModelWithProjection(config))


def tiny_vae(seed: int, scaling_factor: float = SD15_VAE_SCALING_FACTOR) -> AutoencoderKL:
    """SD's VAE layout (4 blocks, 8x downscale, 4 latent channels), narrow."""
    return _seeded(
        seed,
        "vae",
        lambda: AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            sample_size=TINY_IMAGE_SIZE,
            block_out_channels=(32, 32, 64, 64),
            layers_per_block=2,
            norm_num_groups=32,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            scaling_factor=scaling_factor,
            force_upcast=True,
        ),
    )


def tiny_sd15_unet(seed: int) -> UNet2DConditionModel:
    """SD1.5's UNet block layout (4 levels, 2 layers per block, attention in levels 0-2), narrow."""
    return _seeded(
        seed,
        "unet",
        lambda: UNet2DConditionModel(
            sample_size=TINY_IMAGE_SIZE // 8,
            in_channels=4,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(32, 32, 64, 64),
            norm_num_groups=32,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=TEXT_HIDDEN_SIZE,
            attention_head_dim=2,
        ),
    )


def tiny_sdxl_unet(seed: int) -> UNet2DConditionModel:
    """SDXL's UNet block layout (3 levels, no attention in level 0, deeper transformers lower down), narrow."""
    return _seeded(
        seed,
        "unet",
        lambda: UNet2DConditionModel(
            sample_size=TINY_IMAGE_SIZE // 8,
            in_channels=4,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(32, 64, 64),
            norm_num_groups=32,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 1, 2),
            attention_head_dim=(2, 4, 4),
            use_linear_projection=True,
            # SDXL conditions on both text encoders' hidden states side by side.
            cross_attention_dim=2 * TEXT_HIDDEN_SIZE,
            addition_embed_type="text_time",
            addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
            # TE2's pooled projection plus 6 micro-conditioning numbers (size, crop, target size).
            projection_class_embeddings_input_dim=TEXT_HIDDEN_SIZE + 6 * SDXL_TIME_EMBED_DIM,
        ),
    )


def sd15_train_scheduler() -> DDPMScheduler:
    """The noise schedule of SD1.5's training (stable-diffusion-v1-5/scheduler)."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="epsilon",
        steps_offset=1,
    )


def sdxl_scheduler() -> EulerDiscreteScheduler:
    """The scheduler of SDXL base 1.0's repo."""
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        steps_offset=1,
        timestep_spacing="leading",
        interpolation_type="linear",
        use_karras_sigmas=False,
    )


def tiny_sd15_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """An in-memory tiny SD1.5 pipeline with random weights drawn from `seed`."""
    tokenizer = load_tiny_tokenizer()
    pipe = StableDiffusionPipeline(
        vae=tiny_vae(seed),
        text_encoder=tiny_text_encoder(tokenizer, seed),
        tokenizer=tokenizer,
        unet=tiny_sd15_unet(seed),
        scheduler=sd15_train_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sdxl_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """An in-memory tiny SDXL pipeline with random weights drawn from `seed`."""
    tokenizer = load_tiny_tokenizer()
    tokenizer_2 = load_tiny_tokenizer(pad_token=OPENCLIP_PAD_TOKEN)
    pipe = StableDiffusionXLPipeline(
        vae=tiny_vae(seed, scaling_factor=SDXL_VAE_SCALING_FACTOR),
        text_encoder=tiny_text_encoder(tokenizer, seed),
        text_encoder_2=tiny_text_encoder_2(tokenizer_2, seed),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=tiny_sdxl_unet(seed),
        scheduler=sdxl_scheduler(),
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@contextmanager
def _no_transformers_progress_bars() -> Iterator[None]:
    # transformers draws a "Writing model shards" bar per text encoder; it is noise in `loratui demo`.
    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


def save_tiny_pipeline(pipe: DiffusionPipeline, out_dir: Path) -> Path:
    """`save_pretrained` (safetensors), with each tokenizer folder laid out like a real SD repo's.

    transformers 5 saves a tokenizer as tokenizer.json only; real SD repos ship vocab.json + merges.txt,
    and the product loads those, so the tiny folders do too. Meant for `tiny_sd15_pipeline` and
    `tiny_sdxl_pipeline` results: the tokenizer files are rewritten from the demo word list.
    """
    out_dir = Path(out_dir)
    with _no_transformers_progress_bars():
        pipe.save_pretrained(out_dir, safe_serialization=True)
    for name in ("tokenizer", "tokenizer_2"):
        tokenizer = getattr(pipe, name, None)
        if tokenizer is not None:
            shutil.rmtree(out_dir / name)
            write_clip_tokenizer(out_dir / name, pad_token=tokenizer.pad_token)
    return out_dir


def build_tiny_sd15(out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny SD1.5 `StableDiffusionPipeline` folder; the same seed gives byte-identical weights."""
    return save_tiny_pipeline(tiny_sd15_pipeline(seed), out_dir)


def build_tiny_sdxl(out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny `StableDiffusionXLPipeline` folder; the same seed gives byte-identical weights."""
    return save_tiny_pipeline(tiny_sdxl_pipeline(seed), out_dir)
