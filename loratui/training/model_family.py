"""Which base model a project names and its family (sd15, sd2, sd2-v, sdxl), read from configs or file headers only."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loratui.errors import LoratuiError
from loratui.safetensors_header import SafetensorsHeaderError, read_safetensors_header

SAFETENSORS_SUFFIX = ".safetensors"
# Pickle files can run code when loaded: refused unless the user allows them, then read weights-only.
PICKLE_SUFFIXES = (".ckpt", ".pt", ".bin", ".pth")
MODEL_SUFFIXES = (SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES)

DIFFUSERS = "diffusers"
SINGLE_FILE = "single_file"
PICKLE = "pickle"
HUB = "hub"
KIND_LABELS = {DIFFUSERS: "diffusers folder", SINGLE_FILE: "A1111 single file", PICKLE: "pickle checkpoint",
               HUB: "hub id"}

EPSILON = "epsilon"
V_PREDICTION = "v_prediction"

# ComfyUI's rule for SD2 checkpoints (model_detection / supported_models.SD20.model_type): the spread of this
# LayerNorm bias separates the 768-v model (std about 0.2) from the 512 epsilon model (about 0.05).
_SD2_V_PROBE = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
_SD2_V_STD_THRESHOLD = 0.09
_SAFETENSORS_FLOAT = {"F16": "e", "F32": "f", "F64": "d", "BF16": "bf16"}


@dataclass(frozen=True)
class FamilyInfo:
    """What the rest of loratui needs to know about one model family."""

    name: str
    label: str
    pipeline_class: str
    prediction_type: str
    resolution: int
    # kohya's ss_base_model_version and SAI's modelspec.architecture (prefix; "/lora" is appended for LoRAs).
    kohya_version: str
    modelspec_architecture: str

    @property
    def is_sdxl(self) -> bool:
        return self.name == "sdxl"

    @property
    def v_prediction(self) -> bool:
        return self.prediction_type == V_PREDICTION


FAMILIES: dict[str, FamilyInfo] = {
    info.name: info
    for info in (
        FamilyInfo("sd15", "Stable Diffusion 1.x", "StableDiffusionPipeline", EPSILON, 512, "sd_v1",
                   "stable-diffusion-v1"),
        FamilyInfo("sd2", "Stable Diffusion 2.x 512 (epsilon)", "StableDiffusionPipeline", EPSILON, 512, "sd_v2",
                   "stable-diffusion-v2-512"),
        FamilyInfo("sd2-v", "Stable Diffusion 2.x 768 (v-prediction)", "StableDiffusionPipeline", V_PREDICTION, 768,
                   "sd_v2_v", "stable-diffusion-v2-768-v"),
        FamilyInfo("sdxl", "Stable Diffusion XL", "StableDiffusionXLPipeline", EPSILON, 1024, "sdxl_base_v1-0",
                   "stable-diffusion-xl-v1-base"),
    )
}


@dataclass(frozen=True)
class ModelDetection:
    """A base model as found: where it is, what kind of source, its family (None: unknown) and how it was told."""

    kind: str
    location: str
    family: str | None
    note: str = ""

    @property
    def path(self) -> Path | None:
        return None if self.kind == HUB else Path(self.location)

    @property
    def info(self) -> FamilyInfo | None:
        return FAMILIES.get(self.family) if self.family else None

    def describe(self) -> str:
        """One line for people: "sd15 (A1111 single file /models/x.safetensors)"."""
        family = self.family or "family unknown"
        text = f"{family} ({KIND_LABELS[self.kind]} {self.location})"
        return f"{text}: {self.note}" if self.note else text


def resolve_base_model(base_model: str, project_root: Path) -> tuple[str, Path | str]:
    """("local", path) for a file or folder that exists, ("hub", repo id) for an id; a missing path is refused.

    Relative paths are relative to the project. Something with one slash that does not exist locally and has
    no model suffix is taken for a hub id, as diffusers does.
    """
    if not base_model:
        raise LoratuiError("project.base_model: not set: give a diffusers folder, an A1111 .safetensors file or a "
                           "hub id (loratui new ... --base-model PATH)")
    path = Path(base_model).expanduser()
    path = path if path.is_absolute() else Path(project_root) / path
    if path.exists():
        return "local", path
    looks_local = (base_model.startswith(("/", ".", "~")) or base_model.lower().endswith(MODEL_SUFFIXES)
                   or base_model.count("/") != 1)
    if looks_local:
        raise LoratuiError(f"{base_model}: not found: check the path")
    return HUB, base_model


def detect_base_model(base_model: str, project_root: Path, *, allow_pickle: bool = False,
                      prediction: str | None = None) -> ModelDetection:
    """Find the base model a project names and tell its family without loading any weights.

    ``prediction`` ("epsilon" or "v_prediction") overrides the guess for SD2 models, which cannot always be
    told apart from their keys.
    """
    if prediction not in (None, EPSILON, V_PREDICTION):
        raise LoratuiError(f"prediction: {prediction!r} is not one of epsilon, v_prediction")
    kind, where = resolve_base_model(base_model, project_root)
    if kind == HUB:
        return _override(_detect_hub(str(where)), prediction)
    path = Path(where)
    if path.is_dir():
        detection = _detect_folder(path)
    elif path.suffix.lower() == SAFETENSORS_SUFFIX:
        detection = _detect_safetensors(path)
    elif path.suffix.lower() in PICKLE_SUFFIXES:
        detection = _detect_pickle(path, allow_pickle)
    else:
        raise LoratuiError(f"{path}: not a model: give a diffusers folder, a .safetensors file or a hub id")
    return _override(detection, prediction)


def detect_family(source: str | Path, *, allow_pickle: bool = False, prediction: str | None = None) -> ModelDetection:
    """:func:`detect_base_model` for a path or hub id given on its own (relative paths: the current folder)."""
    return detect_base_model(str(source), Path.cwd(), allow_pickle=allow_pickle, prediction=prediction)


def _override(detection: ModelDetection, prediction: str | None) -> ModelDetection:
    if prediction is None or detection.family not in ("sd2", "sd2-v"):
        return detection
    family = "sd2-v" if prediction == V_PREDICTION else "sd2"
    return ModelDetection(detection.kind, detection.location, family, f"{prediction} as asked")


# --- diffusers folders and hub ids: read model_index.json and the component configs -------------------------


def _detect_folder(folder: Path) -> ModelDetection:
    if not (folder / "model_index.json").is_file():
        raise LoratuiError(f"{folder}: not a diffusers folder (no model_index.json): give the model's folder, "
                           "a .safetensors file or a hub id")

    def read(relative: str) -> dict[str, Any] | None:
        file = folder / relative
        return _read_json(file) if file.is_file() else None

    family, note = family_from_configs(read, str(folder))
    return ModelDetection(DIFFUSERS, str(folder), family, note)


def _detect_hub(repo: str) -> ModelDetection:
    """A hub id's family from the copy in the local hub cache, if there is one; nothing is downloaded."""
    from huggingface_hub import try_to_load_from_cache

    def read(relative: str) -> dict[str, Any] | None:
        try:
            cached = try_to_load_from_cache(repo, relative)
        except ValueError:  # not a valid repo id
            raise LoratuiError(f"{repo}: not found, and not a valid hub id: check project.base_model") from None
        return _read_json(Path(cached)) if isinstance(cached, str) else None

    if read("model_index.json") is None:
        return ModelDetection(HUB, repo, None, "unknown until downloaded")
    family, note = family_from_configs(read, repo)
    return ModelDetection(HUB, repo, family, note or "from the hub cache")


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoratuiError(f"{file}: cannot be read as JSON ({exc}): re-download the model") from None
    if not isinstance(data, dict):
        raise LoratuiError(f"{file}: not a JSON object: re-download the model")
    return data


def family_from_configs(read: Callable[[str], dict[str, Any] | None], where: str) -> tuple[str | None, str]:
    """(family, note) from a diffusers layout's model_index.json, unet/config.json and scheduler config."""
    index = read("model_index.json") or {}
    unet = read("unet/config.json")
    if unet is None:
        return None, f"no unet/config.json in {where}"
    scheduler = read("scheduler/scheduler_config.json") or {}
    pipeline = str(index.get("_class_name", ""))
    if "XL" in pipeline or unet.get("addition_embed_type") == "text_time":
        return "sdxl", ""
    if pipeline and pipeline not in ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"):
        return None, f"{pipeline} is not a Stable Diffusion 1/2/XL pipeline"
    if unet.get("in_channels", 4) != 4:
        return None, "an inpainting model (the UNet takes extra channels): train on the base model instead"
    v_prediction = scheduler.get("prediction_type") == V_PREDICTION
    cross = unet.get("cross_attention_dim")
    if cross == 768:
        return "sd15", ""
    if cross == 1024:
        return ("sd2-v" if v_prediction else "sd2"), ""
    # Non-standard widths (the tiny test models): OpenAI CLIP uses quick_gelu, SD2's OpenCLIP plain gelu.
    text_encoder = read("text_encoder/config.json") or {}
    if text_encoder.get("hidden_act") == "gelu":
        return ("sd2-v" if v_prediction else "sd2"), "judged by the text encoder (non-standard sizes)"
    return "sd15", "judged by the text encoder (non-standard sizes)"


# --- single files: keys (and, for SD2, one small tensor) from the header --------------------------------------


@dataclass(frozen=True)
class CheckpointKeys:
    """Key -> shape of a checkpoint, its metadata, and a reader for one small tensor's values."""

    shapes: Mapping[str, tuple[int, ...]]
    metadata: Mapping[str, str]
    values: Callable[[str], list[float]]


def _detect_safetensors(path: Path) -> ModelDetection:
    return _detection_from_checkpoint(SINGLE_FILE, path, _read_safetensors(path))


def _read_safetensors(path: Path) -> CheckpointKeys:
    try:
        header, data_start = read_safetensors_header(path)
    except SafetensorsHeaderError as exc:
        raise LoratuiError(f"{path}: not a safetensors file ({exc.reason}): re-download or re-save it") from None
    metadata = header.pop("__metadata__", None)
    try:
        shapes = {key: tuple(int(n) for n in entry.get("shape", ())) for key, entry in header.items()}
        metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
    except (AttributeError, TypeError, ValueError):
        raise LoratuiError(f"{path}: not a safetensors file (malformed header): re-download or re-save it") from None

    def values(key: str) -> list[float]:
        """One small tensor's values, read from its bytes; [] when it cannot be (then no guess is made)."""
        try:
            entry = header[key]
            begin, end = entry["data_offsets"]
            kind = _SAFETENSORS_FLOAT.get(entry["dtype"])
            if kind is None or not 0 <= end - begin <= 1 << 20:
                return []
            with open(path, "rb") as handle:
                handle.seek(data_start + begin)
                raw = handle.read(end - begin)
            if kind == "bf16":  # bfloat16 is the top half of a float32
                return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw) - 1, 2)]
            return list(struct.unpack(f"<{len(raw) // struct.calcsize(kind)}{kind}", raw))
        except (KeyError, TypeError, ValueError, OSError, struct.error):
            return []

    return CheckpointKeys(shapes, metadata, values)


def _detect_pickle(path: Path, allow_pickle: bool) -> ModelDetection:
    if not allow_pickle:
        raise LoratuiError(f"{path}: a pickle checkpoint ({path.suffix}) can run code when loaded, so it is refused: "
                           "use a .safetensors copy, or allow pickle (--allow-pickle) to read it weights-only")
    state = load_pickle_weights_only(path)
    shapes = {key: tuple(value.shape) for key, value in state.items() if hasattr(value, "shape")}
    return _detection_from_checkpoint(PICKLE, path, CheckpointKeys(
        shapes, {}, lambda key: [float(x) for x in state[key].float().flatten().tolist()]))


def load_pickle_weights_only(path: Path) -> dict[str, Any]:
    """A pickle checkpoint's tensors through torch's weights-only unpickler; anything else is refused."""
    import pickle
    import zipfile

    import torch

    try:
        mmap = zipfile.is_zipfile(path)  # mmap works for the zip format only; it keeps a 4 GB file out of memory
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise LoratuiError(f"{path}: refused: not plain tensors, or damaged ({reason}); loratui never runs code "
                           "from a model file: get a .safetensors copy") from None
    except OSError as exc:
        raise LoratuiError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    # Lightning checkpoints keep the weights under "state_dict" (sometimes nested).
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise LoratuiError(f"{path}: holds a {type(state).__name__}, not a dictionary of weights")
    return state


def _detection_from_checkpoint(kind: str, path: Path, checkpoint: CheckpointKeys) -> ModelDetection:
    family, note = family_from_keys(checkpoint)
    return ModelDetection(kind, str(path), family, note)


def _has_prefix(keys: Mapping[str, Any], prefix: str) -> bool:
    return any(key.startswith(prefix) for key in keys)


def family_from_keys(checkpoint: CheckpointKeys) -> tuple[str | None, str]:
    """(family, note) of an LDM/A1111 checkpoint, by key names (sizes vary; the tiny test model is tiny)."""
    shapes = checkpoint.shapes
    if _has_prefix(shapes, "lora_") or any(".lora_down." in key or ".lora_A." in key for key in shapes):
        return None, "this is a LoRA file, not a base model"
    if not _has_prefix(shapes, "model.diffusion_model."):
        return None, "no Stable Diffusion UNet weights (model.diffusion_model.*)"
    in_shape = shapes.get("model.diffusion_model.input_blocks.0.0.weight", ())
    if len(in_shape) == 4 and in_shape[1] != 4:
        return None, "an inpainting model (the UNet takes extra channels): train on the base model instead"
    if _has_prefix(shapes, "conditioner.embedders.1."):
        return "sdxl", ""
    if _has_prefix(shapes, "conditioner.embedders.0.model."):
        if "model.diffusion_model.label_emb.0.0.weight" in shapes:
            return None, "an SDXL refiner: LoRAs are trained on the SDXL base model"
        return None, "an SD2 checkpoint in SGM layout (conditioner.embedders.0): use the usual LDM-layout file"
    if _has_prefix(shapes, "cond_stage_model.model."):
        return _sd2_family(checkpoint)
    if _has_prefix(shapes, "cond_stage_model.transformer."):
        return "sd15", ""
    return None, "no text encoder weights (cond_stage_model.* / conditioner.*): not a full checkpoint"


def _sd2_family(checkpoint: CheckpointKeys) -> tuple[str, str]:
    """SD2 768-v or 512-epsilon: the keys are identical, so use what the file says, else ComfyUI's weight rule."""
    if "v_pred" in checkpoint.shapes:  # the marker key ComfyUI and others save into v-prediction models
        return "sd2-v", "v-prediction (the file has a v_pred key)"
    declared = checkpoint.metadata.get("modelspec.prediction_type", "")
    if declared in ("v", V_PREDICTION):
        return "sd2-v", "v-prediction (from the file's modelspec.prediction_type)"
    if declared == EPSILON:
        return "sd2", "epsilon (from the file's modelspec.prediction_type)"
    spread = _std(checkpoint.values(_SD2_V_PROBE)) if _SD2_V_PROBE in checkpoint.shapes else None
    if spread is None:
        return "sd2-v", ("v-prediction assumed (most SD2 checkpoints are the 768-v kind); if yours is a 512 model, "
                         "train it with epsilon prediction")
    guess = ("sd2-v", "v-prediction") if spread > _SD2_V_STD_THRESHOLD else ("sd2", "epsilon")
    return guess[0], f"{guess[1]} guessed from the weights, as ComfyUI does; if wrong, set the prediction when training"


def _std(values: list[float]) -> float | None:
    if not values or not all(math.isfinite(v) for v in values):
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
