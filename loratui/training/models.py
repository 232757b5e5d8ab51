"""Loading the base model a project trains on: diffusers folder, A1111 single file (offline) or hub id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loratui.config import Config
from loratui.errors import LoratuiError
from loratui.training.model_family import (
    DIFFUSERS,
    HUB,
    PICKLE,
    SINGLE_FILE,
    FamilyInfo,
    ModelDetection,
    detect_base_model,
)

if TYPE_CHECKING:
    import torch


@dataclass
class BaseModel:
    """A loaded base model: the pipeline (for previews), its parts (for training) and a training noise scheduler."""

    detection: ModelDetection
    info: FamilyInfo
    pipeline: Any
    # DDPMScheduler built from the pipeline's scheduler config, with the family's prediction type.
    noise_scheduler: Any

    @property
    def family(self) -> str:
        return self.info.name

    @property
    def prediction_type(self) -> str:
        return self.noise_scheduler.config.prediction_type

    @property
    def unet(self) -> Any:
        return self.pipeline.unet

    @property
    def vae(self) -> Any:
        return self.pipeline.vae

    @property
    def tokenizers(self) -> list[Any]:
        """One tokenizer for SD1/2, two for SDXL (CLIP-L, then OpenCLIP bigG)."""
        return [t for t in (self.pipeline.tokenizer, getattr(self.pipeline, "tokenizer_2", None)) if t is not None]

    @property
    def text_encoders(self) -> list[Any]:
        """The text encoders, in the order of :attr:`tokenizers`."""
        encoders = (self.pipeline.text_encoder, getattr(self.pipeline, "text_encoder_2", None))
        return [e for e in encoders if e is not None]

    def describe(self) -> str:
        return f"{self.info.label}: {self.detection.describe()}"


def load_base_model(
    config: Config,
    project_root: Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    prediction: str | None = None,
    allow_pickle: bool = False,
) -> BaseModel:
    """Load ``config.project.base_model`` with every weight on ``device`` in ``dtype`` (default float32).

    Everything that can be wrong with the input (a missing file, a pickle, an unknown family, no config folder)
    is refused with one line before torch or diffusers is imported. ``prediction`` overrides the SD2 guess.
    """
    detection = detect_base_model(config.project.base_model, project_root, allow_pickle=allow_pickle,
                                  prediction=prediction)
    if detection.kind != HUB and detection.info is None:
        raise LoratuiError(f"{detection.location}: cannot train on it: {detection.note or 'unknown model family'}")
    config_dir = None
    if detection.kind in (SINGLE_FILE, PICKLE):
        config_dir = single_file_config_dir(config, project_root, detection)

    from loratui.hf_logging import quiet_hf_libraries

    quiet_hf_libraries()
    import diffusers
    import torch

    info = detection.info
    pipeline_class = getattr(diffusers, info.pipeline_class if info else "DiffusionPipeline")
    _quiet_progress_bars()
    options: dict[str, Any] = {"dtype": dtype or torch.float32}
    if info is None or not info.is_sdxl:
        # Real SD1/2 repos list a safety checker; training and previews never use it, so do not load it.
        options.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if detection.kind == HUB:
        pipeline = _from_hub(pipeline_class, detection.location, options)
        detection = _detection_after_download(detection, pipeline, prediction)
        info = detection.info
        if info is None:
            raise LoratuiError(f"{detection.location}: cannot train on it: {detection.note}")
    elif detection.kind == DIFFUSERS:
        pipeline = _guarded(detection, lambda: pipeline_class.from_pretrained(
            detection.location, local_files_only=True, **options))
    else:
        pipeline = _guarded(detection, lambda: pipeline_class.from_single_file(
            detection.location, config=str(config_dir), local_files_only=True, **options))
    pipeline.to(device)
    return BaseModel(detection, info, pipeline, training_scheduler(pipeline.scheduler.config, info.prediction_type))


def single_file_config_dir(config: Config, project_root: Path, detection: ModelDetection) -> Path:
    """project.base_model_config when set, else the bundled folder of the detected family."""
    from loratui.training.config_folders import bundled_config_dir

    configured = config.project.base_model_config
    if configured:
        folder = Path(configured).expanduser()
        folder = folder if folder.is_absolute() else Path(project_root) / folder
        if not (folder / "model_index.json").is_file():
            raise LoratuiError(f"project.base_model_config: {configured}: not a diffusers config folder (no "
                               "model_index.json): point it at one, or leave it empty to use loratui's own")
        return folder
    if detection.family is None:
        raise LoratuiError(f"{detection.location}: cannot tell its model family ({detection.note}): set "
                           "project.base_model_config to a diffusers folder with its configs")
    return bundled_config_dir(detection.family)


def training_scheduler(scheduler_config: Any, prediction_type: str) -> Any:
    """The DDPM noise scheduler training adds noise with, from the model's own schedule (as kohya uses)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler_config, prediction_type=prediction_type, clip_sample=False)


def _guarded(detection: ModelDetection, load: Any) -> Any:
    """Run a diffusers loader; a damaged or mismatched model file becomes one line naming it."""
    try:
        return load()
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        reason = _first_line(exc)
        family = detection.family or "a Stable Diffusion"
        raise LoratuiError(f"{detection.location}: cannot be loaded as {family} model ({reason}): check the file, "
                           "or set project.base_model_config to the configs that match it") from None


def _from_hub(pipeline_class: Any, repo: str, options: dict[str, Any]) -> Any:
    try:
        return pipeline_class.from_pretrained(repo, **options)
    except (OSError, ValueError) as exc:  # huggingface_hub's offline/not-found errors are OSErrors
        raise LoratuiError(f"{repo}: cannot be fetched from the model hub ({_first_line(exc)}): download it "
                           "while online, or set project.base_model to a local diffusers folder or .safetensors "
                           "file") from None


def _detection_after_download(detection: ModelDetection, pipeline: Any, prediction: str | None) -> ModelDetection:
    """A hub model's family, now that its configs are on disk."""
    from loratui.training.model_family import family_from_configs

    configs = {
        "model_index.json": {"_class_name": type(pipeline).__name__},
        "unet/config.json": dict(pipeline.unet.config),
        "scheduler/scheduler_config.json": dict(pipeline.scheduler.config),
        "text_encoder/config.json": pipeline.text_encoder.config.to_dict(),
    }
    family, note = family_from_configs(configs.get, detection.location)
    if family in ("sd2", "sd2-v") and prediction:
        family = "sd2-v" if prediction == "v_prediction" else "sd2"
    return ModelDetection(HUB, detection.location, family, note)


def _quiet_progress_bars() -> None:
    """Loading bars mean nothing in an events log or a wizard; loratui reports its own progress."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200] if text else type(exc).__name__)
