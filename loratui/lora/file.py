"""kohya-format LoRA files: add peft adapters with kohya's targets, export their weights under kohya keys, save."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import save as safetensors_save

from loratui.lora.keys import (
    ALPHA_SUFFIX,
    COMPONENT_LABELS,
    COMPONENTS,
    DOWN_SUFFIX,
    TEXT_ENCODER_TARGET_MODULES,
    UNET,
    UNET_TARGET_MODULES,
    UP_SUFFIX,
    kohya_module_name,
)
from loratui.lora.metadata import TrainFacts, kohya_metadata, with_addnet_hashes
from loratui.lora.paths import write_lora_bytes

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

ADAPTER_NAME = "default"

SAVE_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32}

# Wrappers that training adds around a module and that must not leak into key names.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "base_model.model.")


@dataclass
class LoraNetwork:
    """The LoRA adapters added to a pipeline's models: what the loop trains and what :func:`save_lora` writes."""

    rank: int
    alpha: float
    models: dict[str, torch.nn.Module]
    module_counts: dict[str, int]
    sdxl: bool
    layers_per_block: int = 2
    adapter_name: str = ADAPTER_NAME

    def summary(self) -> list[str]:
        """One line per component, as kohya prints them: `create LoRA for U-Net: 192 modules.`"""
        return [f"create LoRA for {COMPONENT_LABELS[name]}: {n} modules." for name, n in self.module_counts.items()]

    def parameters(self, component: str) -> list[torch.nn.Parameter]:
        """The trainable LoRA parameters of one component (the loop gives UNet and text encoders their own lr)."""
        return [p for p in self.models[component].parameters() if p.requires_grad]

    @property
    def total_modules(self) -> int:
        return sum(self.module_counts.values())


def lora_config(rank: int, alpha: float, targets: tuple[str, ...]) -> LoraConfig:
    """peft's LoraConfig with kohya's semantics: scale alpha/rank, down kaiming-uniform, up zeros (peft's `True`)."""
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=True, lora_dropout=0.0)


def add_lora_adapters(
    pipe: DiffusionPipeline | Mapping[str, torch.nn.Module],
    rank: int,
    alpha: float,
    *,
    text_encoders: bool = True,
    adapter_name: str = ADAPTER_NAME,
) -> LoraNetwork:
    """Add kohya's default LoRA (LierLa) to the UNet and, unless `text_encoders` is False, to the text encoder(s).

    `pipe` is a diffusers pipeline or a mapping of component name to model. Base weights are frozen; LoRA
    weights are float32 whatever the base dtype, as kohya trains them (mixed precision only autocasts).
    peft's own injector is used for every model: transformers' `add_adapter` refuses some peft versions.
    """
    models = _components(pipe)
    if UNET not in models:
        raise ValueError("add_lora_adapters needs a UNet")
    unet_config = getattr(models[UNET], "config", {})
    sdxl = _config_get(unet_config, "addition_embed_type") == "text_time"
    layers_per_block = int(_config_get(unet_config, "layers_per_block") or 2)
    # Only LoRA weights train: the VAE and a text encoder left without LoRA stay frozen too.
    for model in (*models.values(), getattr(pipe, "vae", None)):
        if isinstance(model, torch.nn.Module):
            model.requires_grad_(False)
    wrapped: dict[str, torch.nn.Module] = {}
    counts: dict[str, int] = {}
    for name in COMPONENTS:
        model = models.get(name)
        if model is None or (name != UNET and not text_encoders):
            continue
        targets = UNET_TARGET_MODULES if name == UNET else TEXT_ENCODER_TARGET_MODULES
        inject_adapter_in_model(lora_config(rank, alpha, targets), model, adapter_name=adapter_name)
        layers = _lora_layers(model, adapter_name)
        for layer in layers.values():
            for part in (layer.lora_A[adapter_name], layer.lora_B[adapter_name]):
                part.to(torch.float32).requires_grad_(True)
        wrapped[name] = model
        counts[name] = len(layers)
    return LoraNetwork(rank, float(alpha), wrapped, counts, sdxl, layers_per_block, adapter_name)


def kohya_state_dict(network: LoraNetwork, save_precision: str = "fp16") -> dict[str, torch.Tensor]:
    """The network's weights under kohya keys: `<lora_name>.lora_down.weight`, `.lora_up.weight`, 0-dim `.alpha`.

    Every tensor, alpha included, is cast to the save precision, as kohya's `--save_precision` does; each
    module's alpha is the one it was configured with (diffusers' own converter writes alpha = rank instead).
    """
    dtype = save_dtype(save_precision)
    tensors: dict[str, torch.Tensor] = {}
    for component, model in network.models.items():
        for path, layer in _lora_layers(model, network.adapter_name).items():
            name = kohya_module_name(component, path, sdxl=network.sdxl, layers_per_block=network.layers_per_block)
            if name + DOWN_SUFFIX in tensors:
                raise ValueError(f"two modules map to the same LoRA key {name}")
            down = layer.lora_A[network.adapter_name].weight
            up = layer.lora_B[network.adapter_name].weight
            tensors[name + DOWN_SUFFIX] = _to_file(down, dtype)
            tensors[name + UP_SUFFIX] = _to_file(up, dtype)
            tensors[name + ALPHA_SUFFIX] = torch.tensor(float(layer.lora_alpha[network.adapter_name]), dtype=dtype)
    return tensors


@dataclass
class SavedLora:
    """What one save wrote: where, how many tensors and bytes, and the metadata (for the `checkpoint` event)."""

    path: Path
    tensors: int
    size: int
    metadata: dict[str, str] = field(repr=False)


def lora_file_bytes(
    network: LoraNetwork, facts: TrainFacts, *, epoch: int, step: int, finished_at: float | None = None
) -> tuple[bytes, dict[str, torch.Tensor], dict[str, str]]:
    """The whole `.safetensors` file in memory (with kohya's metadata and AddNet hashes), its tensors and metadata."""
    tensors = kohya_state_dict(network, facts.config.training.save_precision)
    metadata = kohya_metadata(facts, epoch=epoch, step=step, finished_at=finished_at)
    metadata = with_addnet_hashes(metadata, lambda ss_only: safetensors_save(tensors, ss_only))
    return safetensors_save(tensors, metadata), tensors, metadata


def save_lora(
    path: Path, network: LoraNetwork, facts: TrainFacts, *, epoch: int, step: int, finished_at: float | None = None
) -> SavedLora:
    """Write a kohya-format LoRA file atomically: a reader sees the previous file or the whole new one."""
    data, tensors, metadata = lora_file_bytes(network, facts, epoch=epoch, step=step, finished_at=finished_at)
    write_lora_bytes(Path(path), data)
    return SavedLora(Path(path), len(tensors), len(data), metadata)


def load_kohya_weights(network: LoraNetwork, path: Path) -> int:
    """Copy a kohya LoRA file's weights into `network` (to resume or continue from a checkpoint); returns modules.

    The file must have been made for the same model, rank and alpha: anything else is refused with one line,
    because a silently partial or rescaled load would train on from the wrong place.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from loratui.errors import LoratuiError

    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise LoratuiError(f"{path}: cannot read this LoRA file ({exc})") from None
    expected = set()
    with torch.no_grad():
        for component, model in network.models.items():
            for module_path, layer in _lora_layers(model, network.adapter_name).items():
                name = kohya_module_name(
                    component, module_path, sdxl=network.sdxl, layers_per_block=network.layers_per_block
                )
                expected |= {name + DOWN_SUFFIX, name + UP_SUFFIX, name + ALPHA_SUFFIX}
                _copy_module(path, name, tensors, layer, network)
    extra = sorted(set(tensors) - expected)
    if extra:
        raise LoratuiError(f"{path}: has {len(extra)} keys this model has no layer for (first: {extra[0]})")
    return network.total_modules


def _copy_module(
    path: Path, name: str, tensors: dict[str, torch.Tensor], layer: LoraLayer, network: LoraNetwork
) -> None:
    from loratui.errors import LoratuiError

    adapter = network.adapter_name
    for suffix, part in ((DOWN_SUFFIX, layer.lora_A[adapter]), (UP_SUFFIX, layer.lora_B[adapter])):
        tensor = tensors.get(name + suffix)
        if tensor is None:
            raise LoratuiError(f"{path}: {name + suffix} is missing; was it made for another model?")
        if tensor.shape != part.weight.shape:
            raise LoratuiError(
                f"{path}: {name + suffix} has shape {tuple(tensor.shape)}, this network {tuple(part.weight.shape)}: "
                "was it trained with another network_dim or model?"
            )
        part.weight.copy_(tensor.to(part.weight.dtype))
    alpha = tensors.get(name + ALPHA_SUFFIX)
    configured = float(layer.lora_alpha[adapter])
    # Compare at the file's precision: an fp16 file stores alpha rounded.
    if alpha is not None and alpha.item() != torch.tensor(configured, dtype=alpha.dtype).item():
        raise LoratuiError(f"{path}: alpha {alpha.item():g} differs from network_alpha {configured:g}")


def save_dtype(save_precision: str) -> torch.dtype:
    try:
        return SAVE_DTYPES[save_precision]
    except KeyError:
        raise ValueError(f"save_precision must be one of {', '.join(SAVE_DTYPES)}, not {save_precision!r}") from None


def _to_file(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return weight.detach().to("cpu", dtype).contiguous()


def _lora_layers(model: torch.nn.Module, adapter_name: str) -> dict[str, LoraLayer]:
    layers: dict[str, LoraLayer] = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and adapter_name in module.lora_A:
            layers[_strip_wrappers(name)] = module
    return layers


def _strip_wrappers(name: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix) :], True
    return name


def _components(pipe: Any) -> dict[str, torch.nn.Module]:
    if isinstance(pipe, Mapping):
        return {name: model for name, model in pipe.items() if name in COMPONENTS and model is not None}
    return {name: getattr(pipe, name) for name in COMPONENTS if getattr(pipe, name, None) is not None}


def _config_get(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)
