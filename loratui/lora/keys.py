"""kohya's LoRA targets and key names: which modules get a LoRA and what each one is called in the file."""

from __future__ import annotations

import re

# kohya's networks.lora wraps every Linear / 1x1 Conv2d inside a Transformer2DModel (UNet) and inside
# CLIPAttention / CLIPMLP (text encoders). In diffusers/transformers module names those are exactly these
# suffixes (peft matches a target against the end of a module's dotted name).
UNET_TARGET_MODULES: tuple[str, ...] = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
    "proj_in",
    "proj_out",
)
TEXT_ENCODER_TARGET_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")

UNET = "unet"
TEXT_ENCODER = "text_encoder"
TEXT_ENCODER_2 = "text_encoder_2"
COMPONENTS: tuple[str, ...] = (UNET, TEXT_ENCODER, TEXT_ENCODER_2)

# What kohya's trainer prints per component ("create LoRA for U-Net: 192 modules.").
COMPONENT_LABELS = {UNET: "U-Net", TEXT_ENCODER: "Text Encoder", TEXT_ENCODER_2: "Text Encoder 2"}

DOWN_SUFFIX = ".lora_down.weight"
UP_SUFFIX = ".lora_up.weight"
ALPHA_SUFFIX = ".alpha"

_DOWN_ATTENTION = re.compile(r"^down_blocks\.(\d+)\.attentions\.(\d+)\.")
_UP_ATTENTION = re.compile(r"^up_blocks\.(\d+)\.attentions\.(\d+)\.")
_MID_ATTENTION = "mid_block.attentions.0."


def kohya_prefix(component: str, sdxl: bool) -> str:
    """`lora_unet`, `lora_te` (SD1/2's one text encoder) or `lora_te1`/`lora_te2` (SDXL)."""
    if component == UNET:
        return "lora_unet"
    if component == TEXT_ENCODER:
        return "lora_te1" if sdxl else "lora_te"
    if component == TEXT_ENCODER_2:
        return "lora_te2"
    raise ValueError(f"unknown LoRA component {component!r}")


def text_encoder_path(module_path: str) -> str:
    """Put back the `text_model.` level that transformers >= 5.6 dropped from CLIPTextModel.

    Every LoRA reader (kohya, A1111, Forge, ComfyUI) maps `lora_te_text_model_encoder_…`; without the level
    A1111 and ComfyUI silently skip the text-encoder half of the LoRA while diffusers still loads it.
    """
    return module_path if module_path.startswith("text_model.") else f"text_model.{module_path}"


def sdxl_unet_path(module_path: str, layers_per_block: int = 2) -> str:
    """diffusers SDXL UNet names -> the SGM names kohya writes (`down_blocks.1.attentions.0` -> `input_blocks.4.1`).

    Each SGM input level holds `layers_per_block` resnet/attention pairs plus a downsampler, each output level
    one pair more than that, hence the stride `layers_per_block + 1` (3 for SDXL, giving kohya's 3i+j+1 / 3i+j).
    """
    stride = layers_per_block + 1
    match = _DOWN_ATTENTION.match(module_path)
    if match:
        i, j = int(match[1]), int(match[2])
        return f"input_blocks.{stride * i + j + 1}.1.{module_path[match.end() :]}"
    match = _UP_ATTENTION.match(module_path)
    if match:
        i, j = int(match[1]), int(match[2])
        return f"output_blocks.{stride * i + j}.1.{module_path[match.end() :]}"
    if module_path.startswith(_MID_ATTENTION):
        return f"middle_block.1.{module_path[len(_MID_ATTENTION) :]}"
    return module_path


def kohya_module_name(component: str, module_path: str, *, sdxl: bool, layers_per_block: int = 2) -> str:
    """kohya's `lora_name` of one wrapped module: `lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q`."""
    if component == UNET:
        path = sdxl_unet_path(module_path, layers_per_block) if sdxl else module_path
    else:
        path = text_encoder_path(module_path)
    return f"{kohya_prefix(component, sdxl)}_{path.replace('.', '_')}"
