"""Conversion of diffusers SD1.x weights to an A1111/LDM single-file checkpoint, and the tiny one built offline."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save

from loratui.demo.sd_models import save_tiny_pipeline, tiny_sd15_pipeline
from loratui.fsutil import atomic_write_bytes

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."
# What `from_single_file(config=...)` reads: JSON configs and tokenizer files, never weights.
CONFIG_SUFFIXES = (".json", ".txt")

# Inner names of a diffusers ResnetBlock2D -> LDM ResBlock (UNet) / ResnetBlock (VAE).
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_TEXT_ENCODER_PARTS = ("embeddings.", "encoder.layers.", "final_layer_norm.")


class UnmappedKeyError(ValueError):
    """A diffusers weight has no LDM name: the converter does not know this layout (a bug, not user input)."""

    def __init__(self, component: str, key: str) -> None:
        super().__init__(f"no LDM name for {component} weight {key!r}: the SD1.x single-file converter lacks a rule")


@dataclass(frozen=True)
class _Rule:
    """Diffusers key prefix -> LDM key prefix; `inner` (if set) must rename the next name after the prefix."""

    ldm_prefix: str
    inner: Mapping[str, str] | None = None


@dataclass(frozen=True)
class SingleFileModel:
    """An A1111-style checkpoint and the config-only diffusers folder that loads it offline."""

    checkpoint: Path
    config_dir: Path


def _layers_per_block(config: Mapping[str, Any]) -> int:
    layers = config["layers_per_block"]
    if not isinstance(layers, int):
        raise ValueError(f"SD1.x UNets have one layers_per_block for all levels, got {layers!r}")
    return layers


def _unet_rules(config: Mapping[str, Any]) -> dict[str, _Rule]:
    """LDM's flat input_blocks/output_blocks numbering, derived from the block layout in the config."""
    per_level = _layers_per_block(config) + 1  # resnets plus the down/upsampler slot
    rules = {
        "time_embedding.linear_1.": _Rule("time_embed.0."),
        "time_embedding.linear_2.": _Rule("time_embed.2."),
        "conv_in.": _Rule("input_blocks.0.0."),
        "mid_block.resnets.0.": _Rule("middle_block.0.", _UNET_RESNET),
        "mid_block.attentions.0.": _Rule("middle_block.1."),
        "mid_block.resnets.1.": _Rule("middle_block.2.", _UNET_RESNET),
        "conv_norm_out.": _Rule("out.0."),
        "conv_out.": _Rule("out.2."),
    }
    for level in range(len(config["down_block_types"])):
        for layer in range(per_level - 1):
            block = 1 + level * per_level + layer
            rules[f"down_blocks.{level}.resnets.{layer}."] = _Rule(f"input_blocks.{block}.0.", _UNET_RESNET)
            rules[f"down_blocks.{level}.attentions.{layer}."] = _Rule(f"input_blocks.{block}.1.")
        rules[f"down_blocks.{level}.downsamplers.0.conv."] = _Rule(f"input_blocks.{(level + 1) * per_level}.0.op.")
    for level, block_type in enumerate(config["up_block_types"]):
        for layer in range(per_level):
            block = level * per_level + layer
            rules[f"up_blocks.{level}.resnets.{layer}."] = _Rule(f"output_blocks.{block}.0.", _UNET_RESNET)
            rules[f"up_blocks.{level}.attentions.{layer}."] = _Rule(f"output_blocks.{block}.1.")
        # The upsampler follows the last resnet, and its attention when the level has one.
        slot = 2 if "CrossAttn" in block_type else 1
        rules[f"up_blocks.{level}.upsamplers.0."] = _Rule(f"output_blocks.{level * per_level + per_level - 1}.{slot}.")
    return rules


def _vae_rules(config: Mapping[str, Any]) -> dict[str, _Rule]:
    """LDM's encoder.down.N / decoder.up.N (numbered bottom-up, the reverse of diffusers' up_blocks)."""
    levels = len(config["down_block_types"])
    rules: dict[str, _Rule] = {"quant_conv.": _Rule("quant_conv."), "post_quant_conv.": _Rule("post_quant_conv.")}
    for part in ("encoder", "decoder"):
        rules[f"{part}.conv_in."] = _Rule(f"{part}.conv_in.")
        rules[f"{part}.conv_norm_out."] = _Rule(f"{part}.norm_out.")
        rules[f"{part}.conv_out."] = _Rule(f"{part}.conv_out.")
        rules[f"{part}.mid_block.resnets.0."] = _Rule(f"{part}.mid.block_1.", _VAE_RESNET)
        rules[f"{part}.mid_block.resnets.1."] = _Rule(f"{part}.mid.block_2.", _VAE_RESNET)
        rules[f"{part}.mid_block.attentions.0."] = _Rule(f"{part}.mid.attn_1.", _VAE_ATTENTION)
    for level in range(levels):
        up = levels - 1 - level
        rules[f"encoder.down_blocks.{level}.downsamplers.0."] = _Rule(f"encoder.down.{level}.downsample.")
        rules[f"decoder.up_blocks.{level}.upsamplers.0."] = _Rule(f"decoder.up.{up}.upsample.")
        # The decoder has one resnet more per level than the encoder.
        for layer in range(config["layers_per_block"] + 1):
            encoder_block, decoder_block = f"encoder.down.{level}.block.{layer}.", f"decoder.up.{up}.block.{layer}."
            rules[f"encoder.down_blocks.{level}.resnets.{layer}."] = _Rule(encoder_block, _VAE_RESNET)
            rules[f"decoder.up_blocks.{level}.resnets.{layer}."] = _Rule(decoder_block, _VAE_RESNET)
    return rules


def _rename(key: str, rules: Mapping[str, _Rule], component: str) -> str:
    """The LDM name of `key` under the longest matching rule, or UnmappedKeyError."""
    for prefix in sorted((p for p in rules if key.startswith(p)), key=len, reverse=True):
        rule = rules[prefix]
        rest = key[len(prefix) :]
        if rule.inner is None:
            return rule.ldm_prefix + rest
        for name, ldm_name in rule.inner.items():
            if rest.startswith(name + "."):
                return rule.ldm_prefix + ldm_name + rest[len(name) :]
    raise UnmappedKeyError(component, key)


def unet_to_ldm(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """SD1.x `UNet2DConditionModel` weights -> `model.diffusion_model.*`."""
    rules = _unet_rules(config)
    return {UNET_PREFIX + _rename(key, rules, "unet"): value for key, value in state_dict.items()}


def vae_to_ldm(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """`AutoencoderKL` weights -> `first_stage_model.*`; LDM's VAE attention uses 1x1 convs, not linears."""
    rules = _vae_rules(config)
    converted = {}
    for key, value in state_dict.items():
        ldm_key = _rename(key, rules, "vae")
        if ".mid.attn_1." in ldm_key and value.ndim == 2:
            value = value[:, :, None, None]
        converted[VAE_PREFIX + ldm_key] = value
    return converted


def text_encoder_to_ldm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`CLIPTextModel` weights -> `cond_stage_model.transformer.text_model.*`.

    transformers >= 5.6 dropped the `text_model.` level from CLIPTextModel; LDM files always have it.
    """
    converted = {}
    for key, value in state_dict.items():
        inner = key.removeprefix("text_model.")
        if not inner.startswith(_TEXT_ENCODER_PARTS):
            raise UnmappedKeyError("text_encoder", key)
        converted[TEXT_ENCODER_PREFIX + "text_model." + inner] = value
    return converted


def sd1_pipeline_to_ldm(pipe: StableDiffusionPipeline, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """The whole single-file state dict of an SD1.x pipeline, cast to `dtype`."""
    state_dict = {
        **unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config),
        **vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config),
        **text_encoder_to_ldm(pipe.text_encoder.state_dict()),
    }
    return {key: value.detach().to(dtype).contiguous() for key, value in state_dict.items()}


def save_single_file(state_dict: Mapping[str, torch.Tensor], out_file: Path) -> Path:
    """Write a checkpoint as A1111 does: safetensors with metadata {"format": "pt"}."""
    out_file = Path(out_file)
    atomic_write_bytes(out_file, save(dict(state_dict), metadata={"format": "pt"}))
    return out_file


def copy_config_only(pipeline_dir: Path, config_dir: Path) -> Path:
    """Copy a diffusers folder's JSON configs and tokenizer files (no weights) to `config_dir`."""
    pipeline_dir, config_dir = Path(pipeline_dir), Path(config_dir)
    for source in sorted(pipeline_dir.rglob("*")):
        if source.is_file() and source.suffix in CONFIG_SUFFIXES:
            target = config_dir / source.relative_to(pipeline_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return config_dir


def build_tiny_sd15_single_file(out_file: Path, config_dir: Path, seed: int = 0) -> SingleFileModel:
    """Write the tiny SD1.5 model as one fp16 A1111-style `.safetensors` and its config-only folder.

    Load it offline with `StableDiffusionPipeline.from_single_file(out_file, config=config_dir,
    local_files_only=True)`.
    """
    pipe = tiny_sd15_pipeline(seed)
    with tempfile.TemporaryDirectory(prefix="loratui-sd15-") as tmp:
        copy_config_only(save_tiny_pipeline(pipe, Path(tmp)), config_dir)
    checkpoint = save_single_file(sd1_pipeline_to_ldm(pipe), out_file)
    return SingleFileModel(checkpoint=checkpoint, config_dir=Path(config_dir))
