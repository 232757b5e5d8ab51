"""The run facts a LoRA file records and kohya's `ss_*` / `modelspec.*` / `sshs_*` metadata made from them."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loratui.config import Config
from loratui.dataset.captions import caption_path, decode_caption
from loratui.dataset.image_scan import dataset_pictures
from loratui.safetensors_header import read_safetensors_header

# family -> (ss_base_model_version, ss_v2, modelspec.architecture, prediction type)
FAMILIES: dict[str, tuple[str, bool, str, str]] = {
    "sd15": ("sd_v1", False, "stable-diffusion-v1/lora", "epsilon"),
    "sd2": ("sd_v2", True, "stable-diffusion-v2-512/lora", "epsilon"),
    "sd2-v": ("sd_v2_v", True, "stable-diffusion-v2-768-v/lora", "v"),
    "sdxl": ("sdxl_base_v1-0", False, "stable-diffusion-xl-v1-base/lora", "epsilon"),
}

# What kohya records as ss_optimizer (`module.Class`) for each optimizer loratui offers.
OPTIMIZER_CLASSES = {
    "AdamW": "torch.optim.adamw.AdamW",
    "AdamW8bit": "bitsandbytes.optim.adamw.AdamW8bit",
    "Lion": "lion_pytorch.lion_pytorch.Lion",
    "Prodigy": "prodigyopt.prodigy.Prodigy",
}

MODELSPEC_VERSION = "1.0.1"
# kohya reads 0x10000 bytes at 1 MiB for the old AddNet hash (empty for smaller files, as in kohya).
_LEGACY_HASH_OFFSET = 0x100000
_LEGACY_HASH_LENGTH = 0x10000


@dataclass(frozen=True)
class DatasetDir:
    """One kohya image folder: its name (`5_rishi`, as in ss_dataset_dirs), repeats and picture count."""

    name: str
    repeats: int
    img_count: int


@dataclass
class TrainFacts:
    """Everything about a run that its LoRA files record; the loop fills it once and saves with it every epoch.

    `mixed_precision` and `keep_tokens` are the values the loop resolved (the config may say "auto").
    """

    family: str
    config: Config
    output_name: str
    base_model_name: str
    dataset_dirs: list[DatasetDir]
    num_batches_per_epoch: int
    max_train_steps: int
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)
    bucket_info: dict | None = None
    mixed_precision: str = "no"
    keep_tokens: int = 0
    num_processes: int = 1
    optimizer: str | None = None
    training_comment: str | None = None
    num_reg_images: int = 0
    session_id: int = field(default_factory=lambda: random.randint(0, 2**32))
    started_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}; expected one of {', '.join(FAMILIES)}")

    @property
    def num_train_images(self) -> int:
        """Images x repeats, as kohya counts them."""
        return sum(d.img_count * d.repeats for d in self.dataset_dirs)


def sd_model_name(base_model: str) -> str:
    """kohya's ss_sd_model_name: a local file's or folder's base name, a hub id as it is."""
    path = Path(base_model).expanduser()
    return path.name if path.exists() else base_model


def dataset_dir_facts(folders: list[Path]) -> tuple[list[DatasetDir], dict[str, dict[str, int]]]:
    """ss_dataset_dirs and ss_tag_frequency of kohya folders (`{repeats}_{name}`), computed as kohya does.

    Tags: each caption split on ",", stripped, lower-cased, counted once per occurrence (not times repeats);
    a picture without a caption counts the folder's class token, as kohya uses it as the caption.
    """
    dirs: list[DatasetDir] = []
    frequency: dict[str, dict[str, int]] = {}
    for folder in folders:
        repeats_text, _, class_tokens = folder.name.partition("_")
        pictures = dataset_pictures(folder)
        dirs.append(DatasetDir(folder.name, int(repeats_text) if repeats_text.isdigit() else 1, len(pictures)))
        counts: dict[str, int] = {}
        for picture in pictures:
            caption = caption_path(picture)
            text = decode_caption(caption.read_bytes())[0] if caption.is_file() else class_tokens
            for tag in text.split(","):
                tag = tag.strip().lower()
                if tag:
                    counts[tag] = counts.get(tag, 0) + 1
        frequency[folder.name] = counts
    return dirs, frequency


def kohya_metadata(facts: TrainFacts, *, epoch: int, step: int, finished_at: float | None = None) -> dict[str, str]:
    """The `__metadata__` kohya's train_network.py writes (legacy folder mode), every value a string."""
    training, dataset = facts.config.training, facts.config.dataset
    version, v2, _, _ = FAMILIES[facts.family]
    finished_at = time.time() if finished_at is None else finished_at
    sdxl = facts.family == "sdxl"
    values: dict[str, object] = {
        "ss_session_id": facts.session_id,
        "ss_training_started_at": facts.started_at,
        "ss_output_name": facts.output_name,
        "ss_learning_rate": training.unet_lr,
        "ss_text_encoder_lr": training.text_encoder_lr if training.train_text_encoder else None,
        "ss_unet_lr": training.unet_lr,
        "ss_num_train_images": facts.num_train_images,
        "ss_num_reg_images": facts.num_reg_images,
        "ss_num_validation_images": 0,
        "ss_num_batches_per_epoch": facts.num_batches_per_epoch,
        "ss_num_epochs": training.epochs,
        "ss_gradient_checkpointing": training.gradient_checkpointing,
        "ss_gradient_accumulation_steps": training.gradient_accumulation_steps,
        "ss_max_train_steps": facts.max_train_steps,
        "ss_lr_warmup_steps": training.lr_warmup_steps,
        "ss_lr_scheduler": training.lr_scheduler,
        "ss_network_module": "networks.lora",
        "ss_network_dim": training.network_dim,
        "ss_network_alpha": training.network_alpha,
        "ss_network_dropout": None,
        "ss_mixed_precision": facts.mixed_precision,
        "ss_full_fp16": False,
        "ss_v2": v2,
        "ss_base_model_version": version,
        # clip_skip has no effect on SDXL; kohya records None there.
        "ss_clip_skip": None if sdxl else training.clip_skip,
        "ss_max_token_length": None,
        "ss_cache_latents": training.cache_latents != "no",
        "ss_seed": training.seed,
        "ss_lowram": False,
        # kohya's off value for these is None, loratui's is 0.
        "ss_noise_offset": training.noise_offset or None,
        "ss_multires_noise_iterations": None,
        "ss_multires_noise_discount": 0.3,
        "ss_adaptive_noise_scale": None,
        "ss_zero_terminal_snr": False,
        "ss_min_snr_gamma": training.min_snr_gamma or None,
        "ss_scale_weight_norms": None,
        "ss_ip_noise_gamma": None,
        "ss_debiased_estimation": False,
        "ss_prior_loss_weight": 1.0,
        "ss_max_grad_norm": training.max_grad_norm,
        "ss_loss_type": "l2",
        "ss_caption_dropout_rate": training.caption_dropout_rate,
        "ss_caption_dropout_every_n_epochs": 0,
        "ss_caption_tag_dropout_rate": training.caption_tag_dropout_rate,
        "ss_face_crop_aug_range": None,
        "ss_optimizer": facts.optimizer or OPTIMIZER_CLASSES.get(training.optimizer, training.optimizer),
        "ss_training_comment": facts.training_comment,
        "ss_sd_model_name": facts.base_model_name,
        "ss_resolution": (dataset.resolution, dataset.resolution),
        "ss_batch_size_per_device": training.batch_size,
        "ss_total_batch_size": training.batch_size * facts.num_processes * training.gradient_accumulation_steps,
        "ss_color_aug": False,
        "ss_flip_aug": training.flip_aug,
        "ss_random_crop": False,
        "ss_shuffle_caption": training.shuffle_caption,
        "ss_keep_tokens": facts.keep_tokens,
        "ss_enable_bucket": dataset.enable_bucket,
        "ss_bucket_no_upscale": dataset.bucket_no_upscale,
        "ss_min_bucket_reso": dataset.min_bucket_reso,
        "ss_max_bucket_reso": dataset.max_bucket_reso,
        "ss_dataset_dirs": json.dumps(_dataset_dirs_json(facts.dataset_dirs)),
        "ss_reg_dataset_dirs": json.dumps({}),
        "ss_tag_frequency": json.dumps(facts.tag_frequency),
        "ss_epoch": epoch,
        "ss_steps": step,
        "ss_training_finished_at": finished_at,
    }
    if facts.bucket_info is not None:
        values["ss_bucket_info"] = json.dumps(facts.bucket_info)
    metadata = {key: str(value) for key, value in values.items()}
    metadata.update(modelspec_metadata(facts, finished_at))
    return metadata


def modelspec_metadata(facts: TrainFacts, timestamp: float) -> dict[str, str]:
    """SAI ModelSpec 1.0.1 keys as kohya's sai_model_spec.py writes them for a LoRA (only the known fields)."""
    _, _, architecture, prediction = FAMILIES[facts.family]
    sdxl = facts.family == "sdxl"
    resolution = facts.config.dataset.resolution
    spec = {
        "modelspec.sai_model_spec": MODELSPEC_VERSION,
        "modelspec.architecture": architecture,
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models" if sdxl else "diffusers",
        "modelspec.title": facts.output_name,
        "modelspec.resolution": f"{resolution}x{resolution}",
        "modelspec.date": datetime.datetime.fromtimestamp(int(timestamp)).isoformat(),
        "modelspec.prediction_type": prediction,
    }
    clip_skip = facts.config.training.clip_skip
    if not sdxl and clip_skip != 1:
        spec["modelspec.encoder_layer"] = str(clip_skip)
    triggers = [c.trigger for c in facts.config.concepts if c.trigger]
    if triggers:
        spec["modelspec.trigger_phrase"] = ", ".join(dict.fromkeys(triggers))
    return spec


def with_addnet_hashes(metadata: dict[str, str], serialise: Callable[[dict[str, str]], bytes]) -> dict[str, str]:
    """Add kohya's `sshs_model_hash` / `sshs_legacy_hash`: hashes of the file as saved with only its `ss_*` keys.

    `serialise(metadata)` must return the safetensors bytes of the same tensors with that metadata.
    """
    data = serialise({k: v for k, v in metadata.items() if k.startswith("ss_")})
    return {**metadata, "sshs_model_hash": addnet_model_hash(data), "sshs_legacy_hash": addnet_legacy_hash(data)}


def addnet_model_hash(data: bytes) -> str:
    """sd-webui-additional-networks' hash: sha256 of the tensor payload after the safetensors header."""
    _, data_start = read_safetensors_header(io.BytesIO(data), "the LoRA file being saved")
    return hashlib.sha256(data[data_start:]).hexdigest()


def addnet_legacy_hash(data: bytes) -> str:
    """The old AddNet hash: sha256 of the 64 KiB at 1 MiB into the file, first 8 hex digits."""
    return hashlib.sha256(data[_LEGACY_HASH_OFFSET : _LEGACY_HASH_OFFSET + _LEGACY_HASH_LENGTH]).hexdigest()[:8]


def _dataset_dirs_json(dirs: list[DatasetDir]) -> dict[str, dict[str, int]]:
    # kohya appends " (2)", " (3)" when two folders share a name.
    result: dict[str, dict[str, int]] = {}
    for d in dirs:
        name, n = d.name, 1
        while name in result:
            n += 1
            name = f"{d.name} ({n})"
        result[name] = {"n_repeats": d.repeats, "img_count": d.img_count}
    return result
