"""The checks before a run, without torch: settings, base model header, dataset, output folder, free disk,
optional packages and (with --resume) the saved run's settings. Bad input fails here in one line, in well under a
second, before anything heavy loads — in the foreground and before a detached start. The checks `loratui check`
makes too (an optimizer's package, a hub id offline, a concept's source) come from loratui.project, so both print
the same line."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from loratui.config import Config, TrainingSettings
from loratui.config_io import CONFIG_FILE
from loratui.dataset.image_scan import dataset_pictures
from loratui.errors import LoratuiError, Problem
from loratui.project import Project, hub_problem, optimizer_problem, source_problem
from loratui.training.data import TrainDataset
from loratui.training.estimate import Estimate, estimate
from loratui.training.model_family import HUB, ModelDetection, detect_base_model
from loratui.training.previous_run import PreviousRun, find_previous_run, refuse_to_overwrite
from loratui.training.run_position import RunPosition, check_resume, run_settings, state_folder

# A kohya LoRA file's size per unit of rank, in fp16 (UNet + text encoder): ~38 MB at dim 32 for SD1/2, ~217 MB
# for SDXL. The resumable state keeps fp32 weights and AdamW's two moments: ~6 files' worth.
BYTES_PER_RANK = {"sdxl": 6.8e6}
DEFAULT_BYTES_PER_RANK = 1.2e6
STATE_FILES_WORTH = 6
SPARE_BYTES = 64 * 1024 * 1024


@dataclass
class Preflight:
    """What the checks found: the model, the dataset, the step plan, a saved position, warnings worth an event."""

    detection: ModelDetection
    dataset: TrainDataset
    plan: Estimate
    settings: dict
    position: RunPosition | None = None
    warnings: list[str] = field(default_factory=list)


def preflight(project: Project, config: Config, *, allow_pickle: bool = False, gpus: int = 1,
              resume: bool = False, from_scratch: bool = False, where: str | None = None) -> Preflight:
    """Everything that can be wrong before a model is loaded (see the module docstring). Without ``resume`` or
    ``from_scratch``, an earlier run's files in output/ or its saved state are refused (``where``: the project
    folder as the user typed it, for the commands the message names)."""
    check_previous_run(project, config, resume=resume, from_scratch=from_scratch, where=where)
    detection = detect_base_model(config.project.base_model, project.root, allow_pickle=allow_pickle)
    if detection.kind != HUB and detection.info is None:
        raise LoratuiError(f"{detection.location}: cannot train on it: {detection.note or 'unknown model family'}")
    _refuse(hub_problem(detection, str(project.config_path)))
    warnings = check_optimizer(config.training, str(project.config_path))
    check_sources(project, config)
    dataset = TrainDataset.from_project(project, config)
    check_writable(project.output_dir, "the output folder")
    check_writable(project.state_dir, "the state folder")
    plan = estimate(project, config, gpus, family=detection.family or None)
    settings = run_settings(config, plan.steps.steps_per_epoch, gpus)
    position = check_resume(state_folder(project.state_dir), settings, project.root) if resume else None
    check_free_space(project, config, detection.family or "", len(dataset.pictures))
    if config.training.train_text_encoder and config.training.text_encoder_lr == 0:
        warnings.append("training.text_encoder_lr is 0: the text encoder is not trained (set a rate such as "
                        "1e-5, or turn train_text_encoder off)")
    return Preflight(detection, dataset, plan, settings, position, warnings)


def check_previous_run(project: Project, config: Config, *, resume: bool, from_scratch: bool,
                       where: str | None = None) -> None:
    """A new run must not overwrite an earlier one; a resume needs a run that is not finished."""
    where = where or str(project.root)
    if resume and from_scratch:
        raise LoratuiError("--resume and --from-scratch: choose one (continue the stopped run, or move it aside "
                           "and start over)")
    if from_scratch:
        return
    run = find_previous_run(project, project.output_name(config))
    if not resume:
        refuse_to_overwrite(run, project, where)
    elif run.finished:
        raise RunFinished(run, where)


class RunFinished(LoratuiError):
    """`--resume` after the run reached its end: nothing to do, which the CLI says and exits 0."""

    def __init__(self, run: PreviousRun, where: str):
        made = f": its LoRA is {run.final}" if run.final else ""
        super().__init__(f"The run is done{made}. Nothing to resume; to train again: "
                         f"loratui train {where} --from-scratch (the old files are kept in output/old-<time>/)")
        self.run = run


def _refuse(problem: Problem | None) -> None:
    """Stop on a problem `loratui check` also reports, in the very line it prints."""
    if problem is not None:
        raise LoratuiError(str(problem))


def check_sources(project: Project, config: Config) -> None:
    """A concept with nothing prepared yet whose source gives no pictures (missing, unreadable, empty): say that,
    not "run prepare", which would give nothing. A prepared concept trains from dataset/ and needs no source."""
    for index, concept in enumerate(config.concepts, start=1):
        if not dataset_pictures(project.concept_dir(concept)):
            _refuse(source_problem(project, concept, index))


def check_optimizer(training: TrainingSettings, file: str = CONFIG_FILE) -> list[str]:
    """Refuse (one line) an optimizer whose package is missing or a scheduler setting that cannot work;
    return warnings for settings that work but are probably a mistake."""
    name = training.optimizer
    _refuse(optimizer_problem(training, file))
    if training.lr_scheduler == "constant" and training.lr_warmup_steps > 0:
        raise LoratuiError(f"training.lr_warmup_steps = {training.lr_warmup_steps} does nothing with "
                           "lr_scheduler \"constant\": use \"constant_with_warmup\" or set the warmup to 0")
    warnings = []
    if name == "Prodigy" and training.unet_lr < 0.1:
        warnings.append(f"Prodigy finds its own step size and expects learning rates near 1 (unet_lr is "
                        f"{training.unet_lr:g}): set training.unet_lr and text_encoder_lr to 1")
    if name != "Prodigy" and training.unet_lr > 0.01:
        warnings.append(f"training.unet_lr {training.unet_lr:g} is very high for {name}: 1e-4 is the usual "
                        "start; expect noise or NaN")
    return warnings


def check_writable(folder: Path, label: str) -> None:
    """Create ``folder`` if needed and prove a file can be written there (a read-only mount fails here, not after
    an hour of training)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        raise LoratuiError(f"{folder}: {label} is not writable ({exc.strerror or exc}): fix its permissions or "
                           "free disk space") from None


@dataclass(frozen=True)
class SpaceNeeded:
    files: int
    file_bytes: float
    state_bytes: float
    latent_bytes: float

    @property
    def total(self) -> float:
        return self.files * self.file_bytes + self.state_bytes + self.latent_bytes + SPARE_BYTES


def space_needed(config: Config, family: str, pictures: int) -> SpaceNeeded:
    """About how much disk the run writes: its LoRA files, one resumable state, a latent cache on disk."""
    from loratui.lora.paths import is_checkpoint_epoch

    t = config.training
    per_rank = BYTES_PER_RANK.get(family, DEFAULT_BYTES_PER_RANK) * (2 if t.save_precision == "fp32" else 1)
    file_bytes = per_rank * t.network_dim
    files = 1 + sum(is_checkpoint_epoch(e, t.save_every_n_epochs, t.epochs) for e in range(1, t.epochs + 1))
    side = config.dataset.resolution // 8
    latents = pictures * 4 * side * side * 4 if t.cache_latents == "disk" else 0
    return SpaceNeeded(files, file_bytes, per_rank * t.network_dim * STATE_FILES_WORTH, latents)


def check_free_space(project: Project, config: Config, family: str, pictures: int) -> None:
    needed = space_needed(config, family, pictures)
    try:
        free = shutil.disk_usage(project.output_dir).free
    except OSError:
        return  # nothing to measure on: the write test above already passed
    if free >= needed.total:
        return
    parts = [f"{needed.files} LoRA file{'s' if needed.files != 1 else ''} of ~{_size(needed.file_bytes)}",
             f"a resumable state of ~{_size(needed.state_bytes)}"]
    if needed.latent_bytes:
        parts.append(f"a latent cache of ~{_size(needed.latent_bytes)}")
    raise LoratuiError(f"{project.output_dir}: {_size(free)} free on this disk, and the run needs about "
                       f"{_size(needed.total)} ({', '.join(parts)}): free some space, or save fewer checkpoints "
                       "(a higher training.save_every_n_epochs)")


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit in ("B", "KB") else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"
