"""Read a LoRA `.safetensors` file's header without torch: modules, rank, alpha, family and metadata."""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from loratui.errors import LoratuiError
from loratui.safetensors_header import read_safetensors_header

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
_DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight")
_SCALAR_FORMATS = {"F16": "<e", "F32": "<f", "F64": "<d"}
_SDXL_MARKERS = (
    "lora_te1_",
    "lora_te2_",
    "lora_unet_input_blocks_",
    "lora_unet_middle_block_",
    "lora_unet_output_blocks_",
)
_PART_ORDER = ("unet", "te", "te1", "te2")
# ss_base_model_version -> loratui family
_VERSION_FAMILIES = {"sd_v1": "sd15", "sd_v2": "sd2", "sd_v2_v": "sd2-v", "sd_v1_v": "sd15"}
# The text width that tells SD2's OpenCLIP-H (1024) from SD1's CLIP ViT-L (768) by key shapes alone.
_SD2_TEXT_WIDTH = 1024


@dataclass
class LoraInfo:
    """What a LoRA file holds, read from its header (weights are never loaded)."""

    path: Path
    modules: list[str]
    rank: int
    alpha: float
    family: str | None
    dtype: str
    metadata: dict[str, str] = field(repr=False)
    module_counts: dict[str, int] = field(default_factory=dict)

    @property
    def output_name(self) -> str:
        """The name A1111 shows for it: ss_output_name, else the file's stem."""
        return self.metadata.get("ss_output_name") or self.path.stem


def read_lora(path: Path) -> LoraInfo:
    """Read a LoRA file's header; refuse pickle files and anything that is not a LoRA with one-line errors."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise LoratuiError(
            f"{path}: a pickle file ({path.suffix}) can run code when opened; loratui reads LoRA files in "
            ".safetensors only (convert it with kohya's tools first)"
        )
    try:
        with path.open("rb") as handle:
            header, data_start = read_safetensors_header(handle, path)
            _check_tensors(handle, header, data_start, path)
            downs = {k: v for k, v in header.items() if k != "__metadata__" and k.endswith(_DOWN_SUFFIXES)}
            if not downs:
                raise LoratuiError(
                    f"{path}: not a LoRA file (no lora_down/lora_up weights); is it a base model or another "
                    "kind of network?"
                )
            alphas = _read_alphas(handle, header, data_start, path)
    except FileNotFoundError:
        raise LoratuiError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoratuiError(f"{path}: is a folder, not a LoRA .safetensors file") from None
    except OSError as exc:
        raise LoratuiError(f"{path}: cannot read: {exc.strerror or exc}") from None
    metadata = {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}
    modules = sorted(_module_name(k) for k in downs)
    ranks = Counter(int(v["shape"][0]) for v in downs.values())
    rank = ranks.most_common(1)[0][0]
    alpha_values = Counter(alphas.values())
    alpha = alpha_values.most_common(1)[0][0] if alpha_values else float(rank)  # no alpha key: scale 1, as kohya
    dtype = Counter(str(v["dtype"]) for v in downs.values()).most_common(1)[0][0]
    return LoraInfo(
        path=path,
        modules=modules,
        rank=rank,
        alpha=alpha,
        family=guess_family(modules, metadata, downs),
        dtype=dtype,
        metadata=metadata,
        module_counts=_module_counts(modules),
    )


def guess_family(modules: list[str], metadata: dict[str, str], downs: dict[str, dict] | None = None) -> str | None:
    """sd15, sd2, sd2-v or sdxl: from ss_base_model_version when present, else from key names and shapes."""
    version = metadata.get("ss_base_model_version", "")
    if version.startswith("sdxl_"):
        return "sdxl"
    if version in _VERSION_FAMILIES:
        return _VERSION_FAMILIES[version]
    if any(m.startswith(_SDXL_MARKERS) for m in modules):
        return "sdxl"
    for key, entry in (downs or {}).items():
        if key.startswith("lora_te_") and key.endswith("q_proj.lora_down.weight"):
            return "sd2" if int(entry["shape"][1]) == _SD2_TEXT_WIDTH else "sd15"
    return "sd15" if any(m.startswith(("lora_unet_", "lora_te_")) for m in modules) else None


def _module_counts(modules: list[str]) -> dict[str, int]:
    """Modules per part (`unet`, `te`, `te1`, `te2`; `other` for names outside kohya's prefixes), UNet first."""
    counts = Counter(m.split("_", 2)[1] if m.startswith("lora_") else "other" for m in modules)
    order = {part: i for i, part in enumerate(_PART_ORDER)}
    return dict(sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def _module_name(key: str) -> str:
    for suffix in _DOWN_SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def _check_tensors(handle: BinaryIO, header: dict, data_start: int, path: Path) -> None:
    handle.seek(0, 2)
    payload = handle.tell() - data_start
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not offsets or len(offsets) != 2 or not isinstance(entry.get("shape"), list) or offsets[1] > payload:
            raise LoratuiError(f"{path}: truncated or damaged .safetensors file (tensor {key} is incomplete)")


def _read_alphas(handle: BinaryIO, header: dict, start: int, path: Path) -> dict[str, float]:
    alphas: dict[str, float] = {}
    for key, entry in header.items():
        if key == "__metadata__" or not key.endswith(".alpha"):
            continue
        begin, end = entry["data_offsets"]
        handle.seek(start + begin)
        alphas[key[: -len(".alpha")]] = _scalar(handle.read(end - begin), str(entry["dtype"]), path, key)
    return alphas


def _scalar(data: bytes, dtype: str, path: Path, key: str) -> float:
    if dtype == "BF16" and len(data) == 2:
        # bfloat16 is the upper half of a float32.
        return struct.unpack("<f", b"\x00\x00" + data)[0]
    fmt = _SCALAR_FORMATS.get(dtype)
    if fmt is None or len(data) != struct.calcsize(fmt):
        raise LoratuiError(f"{path}: {key} is not a scalar alpha ({dtype}, {len(data)} bytes)")
    return float(struct.unpack(fmt, data)[0])
