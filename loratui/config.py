"""Every setting of a loratui project as dataclasses, with defaults, limits and the help line for each field.

The defaults follow the beginner workflow (lora-scripts' beginner page and kohya's train_network.py), so a
project made without a preset trains an SD1.5 character LoRA the way the source article does, with one exception:
the optimizer is plain AdamW, not AdamW8bit, because AdamW8bit needs bitsandbytes (a CUDA-only extra) and a default
must work on a fresh install. For a LoRA the 8-bit optimizer saves little memory (its states are the LoRA's size).
Reading, validating and writing ``loratui.toml`` lives in :mod:`loratui.config_io`.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

# "auto" stands in for a value loratui works out itself (keep_tokens from the trigger word, preview size from
# the training resolution); fields that accept it say so with ``auto=True``.
AUTO = "auto"

CROP_MODES = ("focal", "center", "none")
MERGE_MODES = ("overwrite", "append", "skip")
OPTIMIZERS = ("AdamW", "AdamW8bit", "Lion", "Prodigy")
# Optimizers that live in optional packages: the package they import and how to install it.
OPTIMIZER_PACKAGES = {
    "AdamW8bit": ("bitsandbytes", "pip install bitsandbytes (CUDA only)"),
    "Prodigy": ("prodigyopt", "pip install prodigyopt"),
}
SCHEDULERS = ("constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial")
MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")
LATENT_CACHES = ("off", "memory", "disk")
SAVE_PRECISIONS = ("fp16", "bf16", "float")
SAMPLERS = ("euler_a", "euler", "dpmpp_2m", "ddim")


def setting(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    auto: bool = False,
    multiple_of: int | None = None,
    required: bool = False,
) -> Any:
    """A dataclass field carrying the limits that :mod:`loratui.config_io` checks and the help the UI shows."""
    meta = {
        "help": help,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
        "auto": auto,
        "multiple_of": multiple_of,
        "required": required,
    }
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ProjectSettings:
    name: str = setting(
        "", "A name for this project. `loratui install` starts the LoRA's card (its WebUI description) with it; "
        "empty: the project folder's name."
    )
    base_model: str = setting(
        "",
        "The model the LoRA is trained on: a diffusers folder, an A1111 .safetensors file or a hub id. "
        "Use the one you draw with, or a plain base like SD1.5 so it also works on mixes.",
    )
    base_model_config: str = setting(
        "",
        "Only for a single-file base model: a diffusers folder with its configs (JSON and tokenizer files). "
        "Leave empty to use the one loratui ships for the model's family.",
    )
    vae: str = setting(
        "", "A separate VAE to encode pictures with. Leave empty to use the one inside the base model."
    )
    output_name: str = setting(
        "",
        "File name of your LoRA (rishi.safetensors, checkpoints rishi-000002...). Letters, digits, - and _. "
        "In A1111 you call it <lora:rishi:0.8>. Empty: the project folder's name.",
    )
    preset: str = setting(
        "", "The preset this project started from (loratui new --preset). Only a record: changing it changes no "
        "setting; while the base model's family is unknown, estimates use the preset's."
    )


@dataclass
class Concept:
    name: str = setting(
        "", "What you are training (a character, a style): the name in the dataset folder 5_NAME.", required=True
    )
    source: str = setting("", "The folder of your own pictures. loratui never changes files there.", required=True)
    repeats: int = setting(
        5,
        "How often each picture is shown per epoch (the 5 in 5_RishiNaruto). 5-8 is usual; raise it for a "
        "small set, lower it for a big one.",
        minimum=1,
        maximum=1000,
    )
    trigger: str = setting(
        "", "The word that calls up your LoRA in a prompt. It goes first in every caption.",
    )
    recursive: bool = setting(False, "Also look for pictures in the source folder's subfolders.")
    exclude: list[str] = setting(
        [], "Pictures of the source folder left out of training (paths relative to the source folder)."
    )


@dataclass
class DatasetSettings:
    resolution: int = setting(
        512,
        "Size the pictures are trained at, a multiple of 64: 512 for SD1.5, 768 for SD2-768, 1024 for SDXL. "
        "Bigger = more detail, slower, more memory.",
        minimum=64,
        maximum=4096,
        multiple_of=64,
    )
    crop: str = setting(
        "focal",
        "focal: a square crop around the face and details; center: a square from the middle; none: keep the "
        "whole picture and train in aspect-ratio buckets.",
        choices=CROP_MODES,
    )
    enable_bucket: bool = setting(
        True, "Train pictures of different shapes in buckets of similar aspect ratio instead of squashing them."
    )
    min_bucket_reso: int = setting(
        256,
        "Smallest side when pictures keep their shape (crop mode none). Leave it unless your pictures are very "
        "wide or very tall.",
        minimum=64,
        maximum=4096,
    )
    max_bucket_reso: int = setting(
        1024,
        "Largest side when pictures keep their shape (crop mode none). Leave it unless your pictures are very "
        "wide or very tall.",
        minimum=64,
        maximum=8192,
    )
    bucket_reso_steps: int = setting(
        64, "Bucket sides are multiples of this. 64 is safe everywhere; SDXL can use 32.", minimum=8, maximum=256,
        multiple_of=8,
    )
    bucket_no_upscale: bool = setting(
        True, "Never enlarge a small picture to fill its bucket: it goes to a smaller bucket instead."
    )
    crop_boxes: dict[str, list[int]] = setting(
        {},
        "Crop boxes you placed by hand, as \"concept/picture\" = [left, top, right, bottom] in the source "
        "picture's pixels. They override the automatic crop.",
    )


@dataclass
class TaggingSettings:
    model: str = setting(
        "SmilingWolf/wd-swinv2-tagger-v3",
        "The WD14 tagger: a hub id (downloaded once) or a local folder with model.onnx and selected_tags.csv.",
    )
    general_threshold: float = setting(
        0.35,
        "How sure the tagger must be to write a tag. Lower = more tags (and more wrong ones); 0.35 is the usual.",
        minimum=0.0,
        maximum=1.0,
    )
    character_threshold: float = setting(
        0.85,
        "How sure the tagger must be to name a known character. Keep it high: a wrong name sticks to your LoRA.",
        minimum=0.0,
        maximum=1.0,
    )
    mcut: bool = setting(
        False, "Let the tagger pick its own cut-off per picture (MCut) instead of the thresholds above."
    )
    merge: str = setting(
        "append",
        "What to do with captions a picture already has: append the new tags (keeps captions you brought), "
        "overwrite them (to re-tag with new thresholds), or skip the picture. Rewrites are backed up.",
        choices=MERGE_MODES,
    )
    write_rating: bool = setting(False, "Also write the rating tag (general, sensitive, ...) into captions.")
    batch_size: int = setting(8, "Pictures tagged together. Higher is faster on a GPU.", minimum=1, maximum=256)
    fast_decode: bool = setting(
        False,
        "Decode large JPEGs about 2.6x faster for the tagger (JPEG draft, scale, then pad). The tagger then sees "
        "other pixels (a mean of 1.6 of 255 apart on 1000x1500 photos), which moved tag probabilities by up to "
        "0.012 and carried 2 of 473 tags across the threshold in bench/tagger_decode.py; off: the reference "
        "decode.",
    )
    deleted_tags: list[str] = setting(
        [],
        "Tags removed from every caption: the ones your trigger word should carry (hair colour, eye colour, "
        "outfit) and junk (watermark, signature).",
    )


@dataclass
class TrainingSettings:
    epochs: int = setting(
        10,
        "How many full passes over the pictures. More epochs = more steps and more checkpoints to compare; set "
        "it so total steps land in 1500-5000.",
        minimum=1,
        maximum=10000,
    )
    batch_size: int = setting(
        1,
        "Pictures learned together in one step. 1 on small GPUs, 2-6 with 12 GB or more. Faster per epoch, but "
        "more memory and fewer steps.",
        minimum=1,
        maximum=256,
    )
    gradient_accumulation_steps: int = setting(
        1,
        "Adds up N steps before learning from them, like a bigger batch on a small GPU. Divides the number of "
        "steps by N.",
        minimum=1,
        maximum=1024,
    )
    network_dim: int = setting(
        32,
        "How much the LoRA can hold. 8-32 is plenty for one character, 32-128 for styles. Bigger = larger file, "
        "slower, more risk of copying the pictures.",
        minimum=1,
        maximum=1024,
    )
    network_alpha: float = setting(
        16.0,
        "Damps the LoRA's updates. Half of the size (or a quarter) is a safe start; with a lower alpha, raise the "
        "learning rate to make up for it.",
        minimum=0.001,
        maximum=1024,
    )
    unet_lr: float = setting(
        1e-4,
        "How big each learning step is. 1e-4 is the usual start. Too high fries the LoRA (noise, black "
        "pictures); too low and nothing sticks.",
        minimum=1e-8,
        maximum=10.0,
    )
    text_encoder_lr: float = setting(
        1e-5,
        "Step size for the prompt reader; keep it 2-10x below the learning rate. Lower it if the LoRA starts "
        "ignoring other words in your prompt.",
        minimum=0.0,
        maximum=10.0,
    )
    train_text_encoder: bool = setting(
        True,
        "Also teaches the prompt reader your trigger word. Keep on for SD1.5; turn off for SDXL, or to save "
        "memory and time.",
    )
    optimizer: str = setting(
        "AdamW",
        "How each step is applied. AdamW is the safe pick and works everywhere. AdamW8bit saves a little memory "
        "but needs bitsandbytes (pip install bitsandbytes, CUDA only). Prodigy finds its own rate (set rates to 1; "
        "pip install prodigyopt); Lion wants 3-10x lower rates.",
        choices=OPTIMIZERS,
    )
    lr_scheduler: str = setting(
        "cosine_with_restarts",
        "How the rate changes during the run. cosine eases off towards the end (good default); constant keeps "
        "it flat; restarts bump it back up.",
        choices=SCHEDULERS,
    )
    lr_warmup_steps: int = setting(
        0,
        "Steps at the start that raise the rate gently. 5-10% of total steps avoids early blow-ups. Not allowed "
        "with the constant scheduler.",
        minimum=0,
        maximum=1_000_000,
    )
    lr_scheduler_num_cycles: int = setting(
        1,
        "With cosine_with_restarts: how many times the rate jumps back up. 1-4 is enough; more rarely helps.",
        minimum=1,
        maximum=100,
    )
    mixed_precision: str = setting(
        "auto",
        "Number format while training. bf16 on RTX 30/40 and newer (fewer NaN and black results); fp16 on older "
        "cards; 'no' is slow and big. auto picks bf16 where the GPU has it, else fp16.",
        choices=MIXED_PRECISIONS,
    )
    no_half_vae: bool = setting(
        False,
        "Runs the picture encoder in full precision. Fixes NaN loss and black pictures with SDXL in fp16, for a "
        "little more memory.",
    )
    gradient_checkpointing: bool = setting(
        False,
        "Saves a lot of GPU memory at some cost in speed. Turn it on when you run out of memory at your batch "
        "size or resolution.",
    )
    clip_skip: int = setting(
        2,
        "Which layer of the prompt reader is used. 2 for anime (NAI-based) models, 1 for photo SD1.5; generate "
        "with the same value. No effect on SDXL.",
        minimum=1,
        maximum=12,
    )
    noise_offset: float = setting(
        0.0,
        "Helps the LoRA draw very dark or very bright scenes. 0.05-0.1 if your pictures have deep blacks or "
        "glowing light; train a bit longer then.",
        minimum=0.0,
        maximum=1.0,
    )
    min_snr_gamma: float = setting(
        0.0,
        "Evens out easy and hard noise levels so training settles sooner. 5 is the usual value; 0 turns it off.",
        minimum=0.0,
        maximum=100.0,
    )
    shuffle_caption: bool = setting(
        True,
        "Mixes the tag order at every step so no position matters. Keep on; the trigger word stays first (see "
        "Keep first tags).",
    )
    keep_tokens: int | str = setting(
        AUTO,
        "How many leading tags are never shuffled or dropped. auto keeps the trigger word first.",
        minimum=0,
        maximum=100,
        auto=True,
    )
    caption_dropout_rate: float = setting(
        0.0,
        "Share of steps that see no caption at all. 0.05-0.1 can help a style work without prompts; leave 0 for "
        "characters.",
        minimum=0.0,
        maximum=1.0,
    )
    caption_tag_dropout_rate: float = setting(
        0.0,
        "Chance to leave out each tag in a step. 0.2-0.5 helps styles generalise; leave 0 for characters.",
        minimum=0.0,
        maximum=1.0,
    )
    flip_aug: bool = setting(
        False,
        "Also learns from mirrored copies: more variety, but it breaks one-sided details (a scar on one cheek, a "
        "hair parting, text).",
    )
    cache_latents: str = setting(
        "memory",
        "Encodes each picture once instead of at every step: much faster, less GPU memory. 'disk' also reuses it "
        "on the next run. Keep on.",
        choices=LATENT_CACHES,
    )
    max_grad_norm: float = setting(
        1.0, "Caps the size of one update so a bad batch cannot wreck the LoRA. 1.0 is kohya's default; 0 = off.",
        minimum=0.0,
        maximum=1000.0,
    )
    seed: int = setting(
        1337,
        "Makes a run repeatable. Change it only to get a different run from the same settings.",
        minimum=0,
        maximum=2**32 - 1,
    )
    save_every_n_epochs: int = setting(
        2,
        "How often a checkpoint is kept for Preview to compare. 20 epochs with 2 gives 10 files; 0 keeps only "
        "the final file.",
        minimum=0,
        maximum=10000,
    )
    save_precision: str = setting(
        "fp16",
        "Number format of the saved file. fp16 is what every WebUI expects; float doubles the size for no "
        "visible gain.",
        choices=SAVE_PRECISIONS,
    )
    save_state: bool = setting(
        True,
        "Saves the training state with each checkpoint so Stop then Resume carries on exactly. Costs disk: "
        "several times the LoRA's size.",
    )
    tensorboard: bool = setting(
        False,
        "Also writes TensorBoard logs (kohya's tags) to logs/tensorboard/; view them with tensorboard --logdir "
        "logs/tensorboard. The live log does not need it.",
    )
    gpus: int = setting(
        1,
        "How many GPUs of this machine to use. Each takes a share of every epoch, so each does fewer steps.",
        minimum=1,
        maximum=64,
    )


@dataclass
class PreviewSettings:
    prompt: str = setting(
        "{trigger}, smile",
        "What every cell draws. Start with your trigger word and add something your pictures never show (smile) "
        "to test that the LoRA bends. {trigger} is replaced by the trigger word.",
    )
    negative_prompt: str = setting(
        "lowres, bad anatomy, bad hands, text, error, worst quality, low quality, jpeg artifacts, blurry",
        "What every cell should avoid.",
    )
    weights: list[float] = setting(
        [0.6, 0.7, 0.8, 0.9, 1.0],
        "How strongly the LoRA is applied, one column each. The guide compares 0.6-1.0; the best cell is often "
        "below 1.0.",
        minimum=-2.0,
        maximum=2.0,
    )
    seed: int = setting(
        1337, "The same seed for every cell, so only the checkpoint and weight change.", minimum=0,
        maximum=2**32 - 1,
    )
    steps: int = setting(24, "Sampling steps per cell; 20-30 is enough to judge.", minimum=1, maximum=150)
    cfg_scale: float = setting(
        7.0, "How closely each cell follows the prompt. 5-8 is usual.", minimum=1.0, maximum=30.0
    )
    sampler: str = setting("euler_a", "The sampler every cell uses.", choices=SAMPLERS)
    width: int | str = setting(
        AUTO,
        "Cell width in pixels (a multiple of 8); auto follows the training resolution and aspect ratio.",
        minimum=64,
        maximum=4096,
        auto=True,
        multiple_of=8,
    )
    height: int | str = setting(
        AUTO,
        "Cell height in pixels (a multiple of 8); auto follows the training resolution and aspect ratio.",
        minimum=64,
        maximum=4096,
        auto=True,
        multiple_of=8,
    )


@dataclass
class Config:
    """A whole ``loratui.toml``: one section per dataclass above, concepts as an array of tables."""

    project: ProjectSettings = field(default_factory=ProjectSettings)
    concepts: list[Concept] = field(default_factory=list)
    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    tagging: TaggingSettings = field(default_factory=TaggingSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    preview: PreviewSettings = field(default_factory=PreviewSettings)


# Section name -> dataclass, in file order. ``concepts`` is the one array of tables.
SECTIONS: dict[str, type] = {
    "project": ProjectSettings,
    "concepts": Concept,
    "dataset": DatasetSettings,
    "tagging": TaggingSettings,
    "training": TrainingSettings,
    "preview": PreviewSettings,
}

# What a preset may hold: settings only, never the paths of one machine or one dataset.
PRESET_SECTIONS = ("dataset", "tagging", "training", "preview")
PRESET_EXCLUDED_KEYS = {("dataset", "crop_boxes")}


def help_for(section: str, key: str) -> str:
    """The help line of one setting, e.g. ``help_for("training", "epochs")``."""
    for f in fields(SECTIONS[section]):
        if f.name == key:
            return f.metadata["help"]
    raise KeyError(f"{section}.{key}")


def default_of(section: str, key: str) -> Any:
    """The built-in default of one setting (a fresh copy for lists and dicts)."""
    for f in fields(SECTIONS[section]):
        if f.name == key:
            return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
    raise KeyError(f"{section}.{key}")
