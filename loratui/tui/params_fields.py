"""The fields of step 4 Parameters (design §4.4, §5): which setting each one edits, its label and group, and how
a typed text becomes a value for the engine to judge. Plain data and plain Python: no widgets here."""

from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, fields
from typing import Any

from loratui.config import AUTO, SECTIONS, Config, help_for

# A concept's own settings are edited per concept: "concepts.repeats" with the concept's index.
CONCEPTS = "concepts"
FAMILY_NAMES = {"sd15": "SD1.5", "sd2": "SD2", "sd2-v": "SD2-768", "sdxl": "SDXL"}

# Expert view groups, in the order of §5; "Basics" is the beginner view's own fields.
BASICS = "Basics"
GROUPS = ("Basics", "Network", "Learning", "Quality", "Captions", "Pictures", "Memory", "Saving", "Tagger",
          "Preview")


@dataclass(frozen=True)
class FieldSpec:
    """One row of the form. ``setting`` is "section.key" (``concepts.repeats`` for each concept)."""

    setting: str
    label: str
    group: str
    beginner: bool = False
    unit: str = ""  # shown after the value: "epochs"
    set_in: str = ""  # read-only here, edited on another step ("Crop"): the row says where
    path: bool = False  # ^o browses for it

    @property
    def section(self) -> str:
        return self.setting.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.setting.split(".", 1)[1]

    @property
    def readonly(self) -> bool:
        return bool(self.set_in)

    def help(self) -> str:
        return help_for(self.section, self.key)

    def hint(self) -> Any:
        """The field's Python type (int, float, str, bool, list[float], int | str for an "auto" one)."""
        return typing.get_type_hints(SECTIONS[self.section])[self.key]

    def meta(self) -> dict[str, Any]:
        return next(f.metadata for f in fields(SECTIONS[self.section]) if f.name == self.key)

    @property
    def choices(self) -> tuple[str, ...] | None:
        return self.meta()["choices"]

    @property
    def is_bool(self) -> bool:
        return self.hint() is bool


def _f(setting: str, label: str, group: str, **kw: Any) -> FieldSpec:
    return FieldSpec(setting, label, group, **kw)


FIELDS: tuple[FieldSpec, ...] = (
    # Beginner view (§4.4), top to bottom
    _f("project.base_model", "Base model", BASICS, beginner=True, path=True),
    _f("dataset.resolution", "Resolution", BASICS, beginner=True, set_in="Crop", unit="px"),
    _f("project.output_name", "Output name", BASICS, beginner=True),
    _f("concepts.repeats", "Repeats", BASICS, beginner=True),
    _f("training.epochs", "Epochs", BASICS, beginner=True),
    _f("training.batch_size", "Batch size", BASICS, beginner=True),
    _f("training.save_every_n_epochs", "Save every", BASICS, beginner=True, unit="epochs"),
    _f("concepts.trigger", "Trigger word", BASICS, beginner=True, set_in="Tags"),
    # Expert view (§5)
    _f("training.network_dim", "Network size (dim)", "Network"),
    _f("training.network_alpha", "Network alpha", "Network"),
    _f("training.train_text_encoder", "Train text encoder", "Network"),
    _f("training.unet_lr", "Learning rate", "Learning"),
    _f("training.text_encoder_lr", "Text encoder rate", "Learning"),
    _f("training.optimizer", "Optimizer", "Learning"),
    _f("training.lr_scheduler", "Scheduler", "Learning"),
    _f("training.lr_warmup_steps", "Warmup steps", "Learning"),
    _f("training.lr_scheduler_num_cycles", "Restart cycles", "Learning"),
    _f("training.gradient_accumulation_steps", "Grad. accumulation", "Learning"),
    _f("training.max_grad_norm", "Max grad norm", "Learning"),
    _f("training.noise_offset", "Noise offset", "Quality"),
    _f("training.min_snr_gamma", "Min-SNR gamma", "Quality"),
    _f("training.clip_skip", "Clip skip", "Quality"),
    _f("training.seed", "Seed", "Quality"),
    _f("training.shuffle_caption", "Shuffle tags", "Captions"),
    _f("training.keep_tokens", "Keep first tags", "Captions"),
    _f("training.caption_dropout_rate", "Caption dropout", "Captions"),
    _f("training.caption_tag_dropout_rate", "Tag dropout", "Captions"),
    _f("training.flip_aug", "Flip pictures", "Pictures"),
    _f("dataset.crop", "Crop mode", "Pictures", set_in="Crop"),
    _f("dataset.enable_bucket", "Buckets", "Pictures"),
    _f("dataset.min_bucket_reso", "Bucket side min", "Pictures"),
    _f("dataset.max_bucket_reso", "Bucket side max", "Pictures"),
    _f("dataset.bucket_reso_steps", "Bucket step", "Pictures"),
    _f("dataset.bucket_no_upscale", "No upscale", "Pictures"),
    _f("training.cache_latents", "Cache latents", "Pictures"),
    _f("training.mixed_precision", "Mixed precision", "Memory"),
    _f("training.no_half_vae", "Full-precision VAE", "Memory"),
    _f("training.gradient_checkpointing", "Grad. checkpointing", "Memory"),
    _f("training.gpus", "GPUs", "Memory"),
    _f("training.save_precision", "Save precision", "Saving"),
    _f("training.save_state", "Resumable state", "Saving"),
    _f("training.tensorboard", "TensorBoard logs", "Saving"),
    _f("project.vae", "VAE file", "Saving", path=True),
    _f("project.base_model_config", "Model configs", "Saving", path=True),
    _f("project.name", "Project name", "Saving"),
    _f("tagging.model", "Tagger model", "Tagger", path=True),
    _f("tagging.general_threshold", "Tag threshold", "Tagger"),
    _f("tagging.character_threshold", "Character thresh.", "Tagger"),
    _f("tagging.mcut", "MCut", "Tagger"),
    _f("tagging.merge", "Existing captions", "Tagger"),
    _f("tagging.write_rating", "Rating tag", "Tagger"),
    _f("tagging.batch_size", "Tagger batch", "Tagger"),
    _f("tagging.fast_decode", "Fast JPEG decode", "Tagger"),
    _f("preview.prompt", "Prompt", "Preview"),
    _f("preview.negative_prompt", "Negative prompt", "Preview"),
    _f("preview.weights", "Weights", "Preview"),
    _f("preview.seed", "Seed", "Preview"),
    _f("preview.steps", "Steps", "Preview"),
    _f("preview.cfg_scale", "CFG scale", "Preview"),
    _f("preview.sampler", "Sampler", "Preview"),
    _f("preview.width", "Width", "Preview"),
    _f("preview.height", "Height", "Preview"),
)
BEGINNER = tuple(spec for spec in FIELDS if spec.beginner)
# The settings edited on their own steps (names, folders, lists): the expert view shows them, read-only, and says
# where they are set, so it holds every setting of `loratui settings`.
ELSEWHERE = "Set on other steps"
ELSEWHERE_FIELDS: tuple[FieldSpec, ...] = (
    _f("concepts.name", "Concept", ELSEWHERE, set_in="Images"),
    _f("concepts.source", "Picture folder", ELSEWHERE, set_in="Images"),
    _f("concepts.recursive", "Subfolders too", ELSEWHERE, set_in="Images"),
    _f("concepts.exclude", "Left out", ELSEWHERE, set_in="Images"),
    _f("dataset.crop_boxes", "Crop boxes", ELSEWHERE, set_in="Crop"),
    _f("tagging.deleted_tags", "Deleted tags", ELSEWHERE, set_in="Tags"),
    _f("project.preset", "Preset", ELSEWHERE, set_in="Parameters, the Preset field above"),
)


def read(config: Config, spec: FieldSpec, concept: int = 0) -> Any:
    if spec.section == CONCEPTS:
        return getattr(config.concepts[concept], spec.key) if concept < len(config.concepts) else None
    return getattr(getattr(config, spec.section), spec.key)


def write(config: Config, spec: FieldSpec, value: Any, concept: int = 0) -> None:
    if spec.section == CONCEPTS:
        setattr(config.concepts[concept], spec.key, value)
    else:
        setattr(getattr(config, spec.section), spec.key, value)


def shown(value: Any) -> str:
    """A value as the form's text: 1e-4 stays short, lists are comma separated, floats lose a trailing .0."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        text = f"{value:g}"
        return text
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value)
    return str(value)


def parse(spec: FieldSpec, text: str) -> Any:
    """What the user typed as the setting's value. Text that is not a number stays text, so the engine's own
    check names it ('must be a whole number, not text ("abc")')."""
    hint = spec.hint()
    text = text.strip()
    if hint is str:
        return text
    if typing.get_origin(hint) is list:
        parts = [p for p in text.replace(",", " ").split() if p]
        return [_number(p) for p in parts]
    if spec.meta()["auto"] and text.lower() == AUTO:
        return AUTO
    return _number(text)


def _number(text: str) -> Any:
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        try:
            value = float(text)  # ".7" and "1." are numbers to a person, not to TOML
        except ValueError:
            return text
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text


def family_name(family: str | None) -> str:
    return FAMILY_NAMES.get(family or "", family or "unknown type")
