"""The step estimator: steps per epoch exactly as the loop runs them (kohya's bucket batches), total steps,
checkpoints, the 1500-5000 step advice and the time from the last measured speed."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from loratui.config import Config
from loratui.errors import LoratuiError
from loratui.project import Project
from loratui.training.buckets import BucketAssigner, BucketSettings, Size
from loratui.training.speed_history import detect_gpu_name, lookup_speed, unknown_time

# The beginner guides' advice for one character: fewer steps rarely sticks, more starts copying the pictures.
STEP_RANGE = (1500, 5000)
DEFAULT_FAMILY = "sd15"
MAX_EPOCHS = 10000  # training.epochs' own limit; suggestions never go past it
SQUARE_CROPS = ("focal", "center")


@dataclass(frozen=True)
class ConceptPictures:
    """One concept's prepared pictures, as the loop and the estimator both see them."""

    name: str
    folder: Path
    repeats: int
    sizes: tuple[Size, ...]


@dataclass(frozen=True)
class ConceptCount:
    name: str
    folder: str  # relative to the project, e.g. dataset/5_rishi
    pictures: int
    repeats: int
    images: int  # pictures x repeats: what one epoch shows


@dataclass(frozen=True)
class BucketCount:
    width: int
    height: int
    pictures: int  # distinct pictures
    images: int  # with repeats (kohya's "count")
    batches: int  # ceil(images / batch size): a batch never mixes buckets


@dataclass(frozen=True)
class StepCount:
    """The batch arithmetic of one epoch (kohya §1.6), independent of how the pictures were found."""

    buckets: tuple[BucketCount, ...]
    pictures: int
    images_per_epoch: int
    batch_size: int
    gradient_accumulation_steps: int
    gpus: int
    batches_per_epoch: int  # len(train_dataloader) before it is split over the GPUs
    steps_per_epoch: int  # optimizer steps: ceil(batches / gpus / accumulation)
    plain_steps_per_epoch: float  # the naive images / (batch x accumulation x gpus) most guides print

    @property
    def batches_per_process(self) -> int:
        """Batches each GPU runs per epoch (accelerate gives every process the same count)."""
        return math.ceil(self.batches_per_epoch / self.gpus)


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    file: str  # name in output/


@dataclass
class Estimate:
    """Everything the Steps panel and `loratui estimate` show, as plain data (``to_dict`` for JSON)."""

    project: str
    family: str
    family_from: str  # "--family", "preset NAME" or "default"
    gpu: str
    resolution: int
    concepts: list[ConceptCount]
    steps: StepCount
    epochs: int
    total_steps: int
    plain_total_steps: float
    checkpoints: list[Checkpoint]
    step_range: tuple[int, int]
    fit_epochs: tuple[int, int] | None  # epoch counts whose total lands in step_range; None if none does
    seconds: float | None
    time_basis: str
    warnings: list[str] = field(default_factory=list)

    @property
    def in_range(self) -> bool:
        return self.step_range[0] <= self.total_steps <= self.step_range[1]

    @property
    def rounded_up(self) -> bool:
        """True when buckets (or the GPU/accumulation split) make more steps than the plain formula."""
        return self.steps.steps_per_epoch != self.steps.plain_steps_per_epoch

    @property
    def range_advice(self) -> str | None:
        """The 1500-5000 warning with the epoch counts that fit, or None when the total is in range."""
        return range_warning(self.total_steps, self.steps.steps_per_epoch, self.step_range)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["in_range"] = self.in_range
        data["range_advice"] = self.range_advice
        data["steps"]["batches_per_process"] = self.steps.batches_per_process
        return data


# --- the arithmetic ------------------------------------------------------------------------------


def count_steps(
    concepts: Sequence[tuple[int, Sequence[Size]]],
    assigner: BucketAssigner,
    batch_size: int,
    gradient_accumulation_steps: int = 1,
    gpus: int = 1,
) -> StepCount:
    """Batches and optimizer steps of one epoch for ``(repeats, picture sizes)`` per concept: each picture goes
    into its bucket ``repeats`` times, every bucket is cut into batches (the last one may be short), and the
    batches are shared by the GPUs and summed by accumulation, rounding up as accelerate does."""
    if min(batch_size, gradient_accumulation_steps, gpus) < 1:
        raise ValueError("batch_size, gradient_accumulation_steps and gpus must be 1 or more")
    pictures: dict[Size, int] = {}
    images: dict[Size, int] = {}
    for repeats, sizes in concepts:
        for width, height in sizes:
            bucket = assigner.place(width, height).bucket
            pictures[bucket] = pictures.get(bucket, 0) + 1
            images[bucket] = images.get(bucket, 0) + repeats
    buckets = tuple(BucketCount(w, h, pictures[(w, h)], images[(w, h)], math.ceil(images[(w, h)] / batch_size))
                    for w, h in sorted(images))
    batches = sum(b.batches for b in buckets)
    total_images = sum(images.values())
    per_step = gradient_accumulation_steps * gpus
    return StepCount(buckets, sum(pictures.values()), total_images, batch_size, gradient_accumulation_steps, gpus,
                     batches, math.ceil(batches / per_step), total_images / (batch_size * per_step))


def checkpoint_epochs(epochs: int, save_every_n_epochs: int) -> list[int]:
    """Epochs that leave a file: every N-th (the last epoch skipped, kohya's rule) plus the final one."""
    every = [e for e in range(save_every_n_epochs, epochs, save_every_n_epochs)] if save_every_n_epochs > 0 else []
    return [*every, epochs]


def checkpoint_file(output_name: str, epoch: int, epochs: int) -> str:
    """kohya's names: NAME-000002.safetensors per epoch, NAME.safetensors for the final one."""
    return f"{output_name}.safetensors" if epoch == epochs else f"{output_name}-{epoch:06d}.safetensors"


def fitting_epochs(steps_per_epoch: int, step_range: tuple[int, int] = STEP_RANGE) -> tuple[int, int] | None:
    """The first and last epoch counts whose total steps land in ``step_range``; None if one epoch overshoots."""
    if steps_per_epoch < 1:
        return None
    first = max(1, math.ceil(step_range[0] / steps_per_epoch))
    last = min(MAX_EPOCHS, step_range[1] // steps_per_epoch)
    return (first, last) if first <= last else None


def range_warning(total_steps: int, steps_per_epoch: int, step_range: tuple[int, int] = STEP_RANGE) -> str | None:
    """"820 steps: below 1500: 19-60 epochs land in range" (or what to change when no epoch count can)."""
    low, high = step_range
    if low <= total_steps <= high:
        return None
    side = f"below {low}" if total_steps < low else f"above {high}"
    fit = fitting_epochs(steps_per_epoch, step_range)
    if fit is None:
        return (f"{total_steps} steps: {side}: one epoch is already {steps_per_epoch} steps: lower the repeats "
                "or raise the batch size")
    return f"{total_steps} steps: {side}: {fit_phrase(fit)}"


def fit_phrase(fit: tuple[int, int]) -> str:
    """ "19\u201360 epochs land in range", "1 epoch lands in range"."""
    first, last = fit
    if first != last:
        return f"{first}\u2013{last} epochs land in range"
    return f"{first} epoch lands in range" if first == 1 else f"{first} epochs land in range"


# --- the project ---------------------------------------------------------------------------------


def estimate(
    project: Project,
    config: Config,
    gpus: int | None = None,
    *,
    family: str | None = None,
    gpu_name: str | None = None,
    pictures: list[ConceptPictures] | None = None,
) -> Estimate:
    """The estimate for ``project`` with ``config`` (which may hold unsaved edits, as in the wizard).

    ``gpus`` defaults to training.gpus; ``family`` (sd15, sd2, sd2-v, sdxl) to the project's preset family, else
    sd15; ``gpu_name`` to the first GPU nvidia-smi lists ("CPU" without one) and picks the speed history entry.
    ``pictures`` reuses an earlier :func:`read_concepts` (the wizard re-estimates on every keystroke).
    """
    training = config.training
    gpus = gpus or training.gpus
    family, family_from = resolve_family(config, family, project.root)
    gpu = gpu_name or detected_gpu_name()
    if pictures is None:
        concepts = read_concepts(project, config)
    else:  # the pictures are cached, the repeats are being edited: take them from the config
        repeats = {concept.name: concept.repeats for concept in config.concepts}
        concepts = [replace(c, repeats=repeats.get(c.name, c.repeats)) for c in pictures]
    assigner = BucketAssigner(BucketSettings.from_dataset(config.dataset))
    steps = count_steps([(c.repeats, c.sizes) for c in concepts], assigner, training.batch_size,
                        training.gradient_accumulation_steps, gpus)
    total = steps.steps_per_epoch * training.epochs
    output_name = project.output_name(config)
    checkpoints = [Checkpoint(e, checkpoint_file(output_name, e, training.epochs))
                   for e in checkpoint_epochs(training.epochs, training.save_every_n_epochs)]
    resolution = config.dataset.resolution
    speed = lookup_speed(gpu, family, resolution, training.batch_size)
    seconds = speed.seconds_per_batch * steps.batches_per_process * training.epochs if speed else None
    result = Estimate(
        project=str(project.root), family=family, family_from=family_from, gpu=gpu, resolution=resolution,
        concepts=[ConceptCount(c.name, _relative(c.folder, project.root), len(c.sizes), c.repeats,
                               len(c.sizes) * c.repeats) for c in concepts],
        steps=steps, epochs=training.epochs, total_steps=total,
        plain_total_steps=steps.plain_steps_per_epoch * training.epochs, checkpoints=checkpoints,
        step_range=STEP_RANGE, fit_epochs=fitting_epochs(steps.steps_per_epoch), seconds=seconds,
        time_basis=speed.basis if speed else unknown_time(gpu),
    )
    result.warnings = _warnings(result, concepts, config, project)
    return result


def resolve_family(config: Config, family: str | None, project_root: Path | None = None) -> tuple[str, str]:
    """The model family and where it came from: the caller, the base model (its header only, no weights: the
    training loop records speeds under the detected family), the project's preset, or the default."""
    from loratui.presets import FAMILIES, find_preset

    if family:
        if family not in FAMILIES:
            raise LoratuiError(f"--family {family}: unknown: use one of {', '.join(FAMILIES)}")
        return family, "--family"
    if project_root is not None and config.project.base_model:
        from loratui.training.model_family import detect_base_model

        try:
            detected = detect_base_model(config.project.base_model, project_root).family
        except LoratuiError:
            detected = None  # a missing or refused model: `check` and `train` say so; the estimate still helps
        if detected in FAMILIES:
            return detected, "base model"
    name = config.project.preset
    if name:
        try:
            preset_family = find_preset(name).family
        except LoratuiError:
            preset_family = ""  # a user preset deleted since: the default still gives a useful estimate
        if preset_family in FAMILIES:
            return preset_family, f"preset {name}"
    return DEFAULT_FAMILY, "default"


@functools.lru_cache(maxsize=1)
def detected_gpu_name() -> str:
    """nvidia-smi once per process: the wizard re-estimates on every keystroke."""
    return detect_gpu_name()


def read_concepts(project: Project, config: Config) -> list[ConceptPictures]:
    """Each concept's prepared pictures with their sizes, read from the file headers only (no decoding)."""
    from loratui.dataset.image_scan import dataset_pictures

    if not config.concepts:
        raise LoratuiError(f"{project.config_path}: concepts: none: add a [[concepts]] table with name and source")
    found = []
    for concept in config.concepts:
        folder = project.concept_dir(concept)
        sizes = tuple(picture_size(path, project) for path in dataset_pictures(folder))
        found.append(ConceptPictures(concept.name, folder, concept.repeats, sizes))
    empty = [c for c in found if not c.sizes]
    if empty:
        where = project.dataset_dir if len(empty) == len(found) else empty[0].folder
        raise LoratuiError(f"{where}: no prepared pictures: run `loratui prepare {project.root}` first")
    return found


def picture_size(path: Path, project: Project) -> Size:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise LoratuiError(f"{path}: not a readable picture ({exc}): run `loratui prepare {project.root}` "
                           "again") from None


def _warnings(result: Estimate, concepts: list[ConceptPictures], config: Config, project: Project) -> list[str]:
    warnings = []
    advice = result.range_advice
    if advice:
        warnings.append(advice)
    side = config.dataset.resolution
    if config.dataset.crop in SQUARE_CROPS:
        for concept in concepts:
            odd = sum(1 for size in concept.sizes if size != (side, side))
            if odd:
                warnings.append(f"{_relative(concept.folder, project.root)}: {odd} of {len(concept.sizes)} pictures "
                                f"are not {side}x{side} (prepared with other settings): run `loratui prepare "
                                f"{project.root}` again")
    short = [b for b in result.steps.buckets if b.images < result.steps.batch_size]
    if short:
        warnings.append(f"{len(short)} of {len(result.steps.buckets)} buckets hold fewer pictures than batch "
                        f"{result.steps.batch_size}: their steps learn from fewer pictures")
    return warnings


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
