"""The same run as an sd-scripts `--config_file` TOML: loratui.toml translated into kohya's argument names."""

from __future__ import annotations

import json
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loratui.config import AUTO, Config
from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_text
from loratui.project import Project

CONFIG_FILE_NAME = "kohya-config.toml"
SD_SCRIPT = "train_network.py"
SDXL_SCRIPT = "sdxl_train_network.py"
# lora-scripts' launch (kohya.md §2.2); 2 CPU threads per process is its choice for datasets up to 200 images.
LAUNCH = "accelerate launch --num_cpu_threads_per_process 2"
# kohya's own default for mixed precision "auto": bf16 has fp32's range, so fewer NaN losses and black results.
AUTO_MIXED_PRECISION = "bf16"
# sdxl_train_network.py asserts bucket sides divisible by 32 (kohya.md §1.3).
SDXL_BUCKET_STEP = 32
_FAMILIES = ("sd15", "sd2", "sd2-v", "sdxl")


@dataclass(frozen=True)
class Entry:
    """One `key = value` line of the TOML, with an optional trailing comment saying where the value came from."""

    key: str
    value: bool | int | float | str
    comment: str = ""


@dataclass
class KohyaConfig:
    """An sd-scripts config for a project: its sections, the script that runs it and what the user should know."""

    family: str
    family_from: str
    config_file: Path
    sections: dict[str, list[Entry]]
    gpus: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def script(self) -> str:
        return SDXL_SCRIPT if self.family == "sdxl" else SD_SCRIPT

    @property
    def launch_line(self) -> str:
        multi = f" --multi_gpu --num_processes {self.gpus}" if self.gpus > 1 else ""
        return f"{LAUNCH}{multi} {self.script} --config_file {shlex.quote(str(self.config_file))}"

    def values(self) -> dict[str, Any]:
        """Every argument flattened, as sd-scripts reads the file (section names do not matter to it)."""
        return {entry.key: entry.value for entries in self.sections.values() for entry in entries}

    def render(self, header: list[str]) -> str:
        lines = [f"# {line}".rstrip() for line in header]
        for name, entries in self.sections.items():
            if not entries:
                continue
            lines += ["", f"[{name}]"]
            for entry in entries:
                text = f"{entry.key} = {toml_value(entry.value)}"
                lines.append(f"{text}  # {entry.comment}" if entry.comment else text)
        return "\n".join(lines) + "\n"


def resolve_keep_tokens(config: Config) -> int:
    """``keep_tokens = "auto"``: every concept's trigger tags stay first, by the loop's own rule per concept.

    kohya has one keep_tokens for the whole dataset, so the longest trigger wins; no trigger keeps nothing.
    """
    from loratui.training.data import resolve_keep_tokens as per_concept

    value = config.training.keep_tokens
    if value != AUTO:
        return int(value)
    return max((per_concept(value, c.trigger) for c in config.concepts), default=0)


def resolve_mixed_precision(value: str) -> str:
    return AUTO_MIXED_PRECISION if value == AUTO else value


def toml_value(value: bool | int | float | str) -> str:
    """A TOML literal: JSON's string escapes are TOML's, except DEL, which TOML also wants escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def kohya_config(project: Project, config: Config, config_file: Path, *, family: str | None = None,
                 allow_pickle: bool = False) -> KohyaConfig:
    """The sd-scripts arguments for ``project``'s run; the base model's family decides the script and v2 flags."""
    model, family, family_from = _base_model(project, config, family, allow_pickle)
    t, d = config.training, config.dataset
    root = project.root.resolve()
    keep_tokens = resolve_keep_tokens(config)
    precision = resolve_mixed_precision(t.mixed_precision)
    sdxl = family == "sdxl"

    model_args = [
        Entry("pretrained_model_name_or_path", model),
        Entry("v2", family in ("sd2", "sd2-v")),
        Entry("v_parameterization", family == "sd2-v"),
    ]
    if config.project.vae:
        model_args.append(Entry("vae", _local_or_id(config.project.vae, root)))
    dataset_args = [
        Entry("train_data_dir", str(project.dataset_dir.resolve()), "its N_name folders: N = repeats"),
        Entry("resolution", f"{d.resolution},{d.resolution}"),
        Entry("enable_bucket", d.enable_bucket),
        Entry("min_bucket_reso", d.min_bucket_reso),
        Entry("max_bucket_reso", d.max_bucket_reso),
        Entry("bucket_reso_steps", d.bucket_reso_steps),
        Entry("bucket_no_upscale", d.bucket_no_upscale),
        Entry("caption_extension", ".txt", "kohya's default is .caption"),
        Entry("shuffle_caption", t.shuffle_caption),
        Entry("keep_tokens", keep_tokens, "auto: the trigger word's tags stay first" if t.keep_tokens == AUTO else ""),
        Entry("caption_dropout_rate", float(t.caption_dropout_rate)),
        Entry("caption_tag_dropout_rate", float(t.caption_tag_dropout_rate)),
        Entry("flip_aug", t.flip_aug),
        Entry("cache_latents", t.cache_latents != "off"),
        Entry("cache_latents_to_disk", t.cache_latents == "disk"),
        Entry("max_token_length", 225),
    ]
    network_args = [
        Entry("network_module", "networks.lora"),
        Entry("network_dim", t.network_dim),
        # sd-scripts takes TOML values as they are typed, not through argparse's float(): an integer alpha would
        # be stored in the LoRA file as an int64 tensor, which some loaders mishandle. Floats stay floats.
        Entry("network_alpha", float(t.network_alpha)),
        Entry("network_train_unet_only", not t.train_text_encoder),
    ]
    optimizer_args = [
        Entry("optimizer_type", t.optimizer),
        Entry("learning_rate", float(t.unet_lr), "= unet_lr"),
        Entry("unet_lr", float(t.unet_lr)),
        Entry("text_encoder_lr", float(t.text_encoder_lr)),
        Entry("lr_scheduler", t.lr_scheduler),
        Entry("lr_warmup_steps", t.lr_warmup_steps),
        # lora-scripts' lr_restart_cycles is not an sd-scripts argument and is silently ignored (kohya.md §1.5).
        Entry("lr_scheduler_num_cycles", t.lr_scheduler_num_cycles),
        Entry("max_grad_norm", float(t.max_grad_norm)),
    ]
    training_args = [
        Entry("max_train_epochs", t.epochs),
        Entry("train_batch_size", t.batch_size),
        Entry("gradient_accumulation_steps", t.gradient_accumulation_steps),
        Entry("gradient_checkpointing", t.gradient_checkpointing),
        Entry("mixed_precision", precision,
              "auto: bf16 for RTX 30 and newer; use fp16 on older cards" if t.mixed_precision == AUTO else ""),
        Entry("no_half_vae", t.no_half_vae),
        Entry("sdpa", True, "PyTorch's attention: no xformers needed"),
        Entry("seed", t.seed),
    ]
    if not sdxl:  # sdxl_train_network.py has no clip_skip: SDXL always uses the penultimate layer
        training_args.insert(6, Entry("clip_skip", t.clip_skip))
    if t.noise_offset:
        training_args.append(Entry("noise_offset", float(t.noise_offset)))
    if t.min_snr_gamma:
        training_args.append(Entry("min_snr_gamma", float(t.min_snr_gamma)))
    saving_args = [
        Entry("output_dir", str(project.output_dir.resolve())),
        Entry("output_name", project.output_name(config)),
        Entry("save_model_as", "safetensors"),
        Entry("save_precision", t.save_precision),
    ]
    if t.save_every_n_epochs:
        saving_args.append(Entry("save_every_n_epochs", t.save_every_n_epochs))
    if t.save_state:
        saving_args.append(Entry("save_state", True, "NAME-000002-state folders: continue with --resume FOLDER"))
    others = [
        # kohya makes a timestamped TensorBoard folder per run: kept apart from loratui's logs/tensorboard.
        Entry("logging_dir", str((project.logs_dir / "kohya").resolve())),
        Entry("log_prefix", project.output_name(config)),
    ]
    result = KohyaConfig(family, family_from, config_file.resolve(), {
        "model_arguments": model_args, "dataset_arguments": dataset_args,
        "additional_network_arguments": network_args, "optimizer_arguments": optimizer_args,
        "training_arguments": training_args, "saving_arguments": saving_args, "others": others},
        gpus=t.gpus, notes=_notes(project, config, family))
    return result


def write_kohya_config(project: Project, config: Config, output: Path | None = None, *, family: str | None = None,
                       allow_pickle: bool = False) -> KohyaConfig:
    """Write the config (default ``DIR/kohya-config.toml``) atomically after checking that it reads back."""
    from loratui import __version__

    target = Path(output).expanduser() if output else project.root / CONFIG_FILE_NAME
    if target.is_dir():
        target = target / CONFIG_FILE_NAME
    result = kohya_config(project, config, target, family=family, allow_pickle=allow_pickle)
    text = result.render(_header(project, result, __version__))
    parsed = {key: value for section in tomllib.loads(text).values() for key, value in section.items()}
    expected = result.values()
    if parsed != expected:  # the writer and TOML disagree: a bug, never the user's input
        raise RuntimeError(f"kohya config does not read back: {sorted(set(parsed.items()) ^ set(expected.items()))}")
    atomic_write_text(target, text)
    return result


def _header(project: Project, result: KohyaConfig, version: str) -> list[str]:
    return [
        f"sd-scripts (kohya-ss) config for the loratui project {project.root.resolve()}",
        f"written by loratui {version} from loratui.toml; write it again after changing settings:",
        f"  loratui export-kohya {shlex.quote(str(project.root))}",
        "",
        f"Model family {result.family} ({result.family_from}): run {result.script} from your sd-scripts folder:",
        f"  {result.launch_line}",
        "",
        "Left out: what sd-scripts cannot express (loratui's preview grid; crop boxes and focal crops, which",
        "`loratui prepare` has already applied to the pictures in train_data_dir).",
    ]


def _base_model(project: Project, config: Config, family: str | None,
                allow_pickle: bool) -> tuple[str, str, str]:
    """(model for pretrained_model_name_or_path, family, where the family came from)."""
    from loratui.training.model_family import HUB, detect_base_model, resolve_base_model

    if family is not None and family not in _FAMILIES:
        raise LoratuiError(f"--family {family}: unknown: use one of {', '.join(_FAMILIES)}")
    if family is not None:
        # The user names the family: nothing needs reading, so a pickle file is fine too (kohya loads it).
        kind, where = resolve_base_model(config.project.base_model, project.root)
        return (str(where) if kind == HUB else str(Path(where).resolve())), family, "--family"
    detection = detect_base_model(config.project.base_model, project.root, allow_pickle=allow_pickle)
    model = detection.location if detection.kind == HUB else str(Path(detection.location).resolve())
    if detection.family is not None:
        return model, detection.family, f"detected from the {'hub cache' if detection.kind == HUB else 'model'}"
    if detection.kind != HUB:
        raise LoratuiError(f"project.base_model: {config.project.base_model}: cannot train on it: {detection.note}")
    from loratui.training.estimate import resolve_family

    guessed, source = resolve_family(config, None)
    return model, guessed, f"{source}: the hub id is not downloaded yet, so unchecked; --family F sets it"


def _local_or_id(value: str, root: Path) -> str:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else root / path
    return str(path.resolve()) if path.exists() else value


def _notes(project: Project, config: Config, family: str) -> list[str]:
    """What would go wrong when sd-scripts runs this: the dataset's problems, and SDXL's bucket step rule."""
    from loratui.project import check_dataset

    notes = [f"{p.key}: {p.message}" for p in check_dataset(project, config)]
    step = config.dataset.bucket_reso_steps
    if family == "sdxl" and step % SDXL_BUCKET_STEP:
        notes.append(f"dataset.bucket_reso_steps: {step}: sdxl_train_network.py needs a multiple of "
                     f"{SDXL_BUCKET_STEP}: set 32 or 64 in loratui.toml")
    return notes
