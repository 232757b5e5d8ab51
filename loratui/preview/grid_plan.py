"""What a preview grid draws: its checkpoints (rows), weights (columns), settings, size, and a cache key per cell.

Nothing here loads a model: planning reads file names, LoRA headers and picture sizes only, so the CLI can
refuse bad options at once and tell which cells are already in the cache before torch is imported.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loratui.config import AUTO, SAMPLERS, Config
from loratui.errors import LoratuiError
from loratui.lora.paths import list_checkpoints
from loratui.project import Project

# Bump when a change to rendering makes old cached cells differ from what a fresh render would give.
CACHE_VERSION = 1
WEIGHT_RANGE = (-2.0, 2.0)
STEPS_RANGE = (1, 150)
SIZE_RANGE = (64, 4096)
SEED_RANGE = (0, 2**32 - 1)
SIZE_MULTIPLE = 8
_HEADER_LIMIT = 100 * 1024 * 1024


@dataclass(frozen=True)
class GridCheckpoint:
    """One row: a LoRA file, its epoch (None when unknown) and whether it is the run's final file."""

    path: Path
    epoch: int | None
    final: bool
    identity: str  # changes whenever the file's content may have changed

    @property
    def label(self) -> str:
        """`ep02`, `ep04 (final)`, `final`, or the file's stem for a file from elsewhere without an epoch."""
        if self.epoch is None:
            return "final" if self.final else self.path.stem
        return f"ep{self.epoch:02d}" + (" (final)" if self.final else "")


@dataclass(frozen=True)
class GridSettings:
    """Everything every cell shares; written to grid.json as ``settings``."""

    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    cfg_scale: float
    sampler: str
    width: int
    height: int
    weights: list[float]
    base_model: str
    clip_skip: int
    checkpoints: list[str] = field(default_factory=list)  # project-relative POSIX paths where possible

    def to_dict(self) -> dict:
        return {
            "prompt": self.prompt, "negative_prompt": self.negative_prompt, "seed": self.seed, "steps": self.steps,
            "cfg_scale": self.cfg_scale, "sampler": self.sampler, "width": self.width, "height": self.height,
            "weights": list(self.weights), "base_model": self.base_model, "clip_skip": self.clip_skip,
            "checkpoints": list(self.checkpoints),
        }


@dataclass(frozen=True)
class PlannedCell:
    """One cell: row ``row`` (checkpoint) and column ``column`` (weight), and the cache key of its picture."""

    row: int
    column: int
    checkpoint: GridCheckpoint
    weight: float
    key: str

    @property
    def label(self) -> str:
        return f"{self.checkpoint.label} at {format_weight(self.weight)}"


@dataclass
class GridOptions:
    """One run's choices on top of the project's [preview] settings (the CLI's flags; None = the setting)."""

    checkpoints: list[str] | None = None  # file paths or epoch numbers ("2", "final")
    weights: list[float] | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int | None = None
    sampler: str | None = None
    size: tuple[int, int] | None = None
    score: bool = True


@dataclass
class GridPlan:
    settings: GridSettings
    checkpoints: list[GridCheckpoint]
    cells: list[PlannedCell]  # row by row

    @property
    def weights(self) -> list[float]:
        return self.settings.weights

    def cell(self, row: int, column: int) -> PlannedCell:
        return self.cells[row * len(self.weights) + column]


def format_weight(weight: float) -> str:
    """A column label: 0.6, 1.0, -0.5 (never 1 or 0.6000000001)."""
    text = f"{weight:g}"
    return text if "." in text or "e" in text else f"{text}.0"


def plan_grid(project: Project, config: Config, options: GridOptions | None = None) -> GridPlan:
    """The grid a run would draw; every bad choice is refused with one line naming the option or file."""
    options = options or GridOptions()
    validate_options(options)
    preview = config.preview
    weights = _dedupe([round(float(w), 4) for w in (options.weights if options.weights is not None
                                                    else preview.weights)])
    if not weights:
        raise LoratuiError("--weights: give at least one weight, e.g. --weights 0.6,0.8,1.0")
    checkpoints = choose_checkpoints(project, config, options.checkpoints)
    width, height = options.size or grid_size(project, config)
    settings = GridSettings(
        prompt=fill_prompt(options.prompt if options.prompt is not None else preview.prompt, config),
        negative_prompt=options.negative_prompt if options.negative_prompt is not None else preview.negative_prompt,
        seed=options.seed if options.seed is not None else preview.seed,
        steps=options.steps if options.steps is not None else preview.steps,
        cfg_scale=float(preview.cfg_scale),
        sampler=options.sampler or preview.sampler,
        width=width,
        height=height,
        weights=weights,
        base_model=config.project.base_model,
        clip_skip=config.training.clip_skip,
        checkpoints=[stored_path(c.path, project.root) for c in checkpoints],
    )
    base = base_model_identity(project, config)
    cells = [PlannedCell(row, column, checkpoint, weight, cell_key(settings, base, checkpoint, weight))
             for row, checkpoint in enumerate(checkpoints) for column, weight in enumerate(weights)]
    return GridPlan(settings, checkpoints, cells)


def validate_options(options: GridOptions) -> None:
    """Range checks with the option's name in the message (the config's own values were checked on load)."""
    for weight in options.weights or []:
        if not math.isfinite(weight) or not WEIGHT_RANGE[0] <= weight <= WEIGHT_RANGE[1]:
            raise LoratuiError(f"--weights {weight:g}: each weight must be between {WEIGHT_RANGE[0]:g} and "
                               f"{WEIGHT_RANGE[1]:g} (0.6 to 1.0 is usual)")
    if options.steps is not None and not STEPS_RANGE[0] <= options.steps <= STEPS_RANGE[1]:
        raise LoratuiError(f"--steps {options.steps}: use {STEPS_RANGE[0]} to {STEPS_RANGE[1]} (20-30 is enough "
                           "to judge a cell)")
    if options.seed is not None and not SEED_RANGE[0] <= options.seed <= SEED_RANGE[1]:
        raise LoratuiError(f"--seed {options.seed}: use 0 to {SEED_RANGE[1]}")
    if options.sampler is not None and options.sampler not in SAMPLERS:
        raise LoratuiError(f"--sampler {options.sampler}: use one of {', '.join(SAMPLERS)}")
    if options.size is not None:
        for side in options.size:
            if side % SIZE_MULTIPLE or not SIZE_RANGE[0] <= side <= SIZE_RANGE[1]:
                raise LoratuiError(f"--size {options.size[0]}x{options.size[1]}: each side must be a multiple of "
                                   f"{SIZE_MULTIPLE} from {SIZE_RANGE[0]} to {SIZE_RANGE[1]}, e.g. 512x768")


def parse_size(text: str) -> tuple[int, int]:
    """``512x768`` -> (512, 768); one number means a square."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        sides = []
    if len(sides) == 1:
        sides *= 2
    if len(sides) != 2:
        raise LoratuiError(f"--size {text}: write WIDTHxHEIGHT, e.g. 512x768")
    size = (sides[0], sides[1])
    validate_options(GridOptions(size=size))
    return size


def parse_weights(text: str) -> list[float]:
    """``0.6,0.7 .8`` -> [0.6, 0.7, 0.8]."""
    weights = []
    for part in text.replace(",", " ").split():
        try:
            weights.append(float(part))
        except ValueError:
            raise LoratuiError(f"--weights {text}: {part!r} is not a number: write them like 0.6,0.7,0.8") from None
    validate_options(GridOptions(weights=weights))
    return weights


def fill_prompt(template: str, config: Config) -> str:
    """``{trigger}`` becomes the first concept's trigger word (its name when it has none)."""
    if "{trigger}" not in template:
        return template
    concept = config.concepts[0] if config.concepts else None
    trigger = (concept.trigger or concept.name) if concept else ""
    return template.replace("{trigger}", trigger)


# --- checkpoints ---------------------------------------------------------------------------------


def choose_checkpoints(project: Project, config: Config, chosen: Sequence[str] | None) -> list[GridCheckpoint]:
    """Every checkpoint of the run (training order, final last), or the ones ``--checkpoints`` names."""
    output_name = project.output_name(config)
    found = list_checkpoints(project.output_dir, output_name)
    run = [_checkpoint(path, epoch, final=epoch is None) for epoch, path in found]
    if not chosen:
        if not run:
            raise LoratuiError(f"no checkpoints in output/: train first (loratui train {project.root})")
        return run
    picked: list[GridCheckpoint] = []
    for item in chosen:
        checkpoint = _named_checkpoint(project, item.strip(), run)
        if checkpoint.path not in [c.path for c in picked]:
            picked.append(checkpoint)
    return picked


def _named_checkpoint(project: Project, item: str, run: list[GridCheckpoint]) -> GridCheckpoint:
    if item.lower() == "final":
        finals = [c for c in run if c.final]
        if not finals:
            raise LoratuiError(f"--checkpoints final: no final file in output/ yet: train to the end first (loratui "
                               f"train {project.root})")
        return finals[0]
    if item.isdigit():
        epoch = int(item)
        for checkpoint in run:
            if checkpoint.epoch == epoch:
                return checkpoint
        known = ", ".join(str(c.epoch) for c in run if c.epoch is not None) or "none"
        raise LoratuiError(f"--checkpoints {item}: no checkpoint of epoch {epoch} in output/ (epochs there: {known})")
    path = Path(item).expanduser()
    if not path.is_file() and not path.is_absolute() and (project.root / path).is_file():
        path = project.root / path
    if not path.is_file():
        raise LoratuiError(f"--checkpoints {item}: no such file: give a .safetensors file or an epoch number")
    if path.suffix.lower() != ".safetensors":
        raise LoratuiError(f"--checkpoints {item}: not a .safetensors file: loratui renders LoRA files in "
                           ".safetensors only")
    path = path.resolve()
    for checkpoint in run:
        if checkpoint.path.resolve() == path:
            return checkpoint
    return _checkpoint(path, _epoch_from_name(path), final=False)


def _checkpoint(path: Path, epoch: int | None, *, final: bool) -> GridCheckpoint:
    if epoch is None:
        epoch = _epoch_from_metadata(path)
    return GridCheckpoint(path, epoch, final, checkpoint_identity(path))


def _epoch_from_name(path: Path) -> int | None:
    stem, _, tail = path.stem.rpartition("-")
    return int(tail) if stem and len(tail) == 6 and tail.isdigit() else _epoch_from_metadata(path)


def _epoch_from_metadata(path: Path) -> int | None:
    """kohya's ``ss_epoch``; a damaged file has none (loading it later reports the damage on its cells)."""
    from loratui.lora.read import read_lora

    try:
        value = read_lora(path).metadata.get("ss_epoch", "")
    except LoratuiError:
        return None
    return int(value) if value.isdigit() else None


def checkpoint_identity(path: Path) -> str:
    """Size, mtime and a hash of the safetensors header: a rewritten checkpoint never reuses old cells."""
    stat = path.stat()
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            size = int.from_bytes(prefix, "little") if len(prefix) == 8 else 0
            digest.update(prefix)
            # A damaged file (no sane header) is hashed by its first bytes instead.
            digest.update(handle.read(size if 0 < size <= _HEADER_LIMIT else 65536))
    except OSError as exc:
        raise LoratuiError(f"{path}: cannot read ({exc.strerror or exc}): check its permissions") from None
    return f"{stat.st_size}:{stat.st_mtime_ns}:{digest.hexdigest()[:32]}"


# --- size ----------------------------------------------------------------------------------------


def grid_size(project: Project, config: Config) -> tuple[int, int]:
    """preview.width/height, each "auto" side from the training bucket that holds the most pictures."""
    width, height = config.preview.width, config.preview.height
    if width != AUTO and height != AUTO:
        return int(width), int(height)
    bucket_w, bucket_h = training_bucket(project, config)
    if width == AUTO and height == AUTO:
        return bucket_w, bucket_h
    if width == AUTO:
        return _multiple(int(height) * bucket_w / bucket_h), int(height)
    return int(width), _multiple(int(width) * bucket_h / bucket_w)


def training_bucket(project: Project, config: Config) -> tuple[int, int]:
    """The bucket (kohya's placement) that holds the most prepared pictures; resolution² before preparing.

    Ties go to the squarest bucket, then the larger area, so the cells look like what the LoRA saw most.
    """
    from PIL import Image

    from loratui.dataset.image_scan import dataset_pictures
    from loratui.training.buckets import BucketAssigner, BucketSettings

    side = config.dataset.resolution
    try:
        assigner = BucketAssigner(BucketSettings.from_dataset(config.dataset))
    except LoratuiError:
        return side, side  # training refuses these settings with its own message
    counts: dict[tuple[int, int], int] = {}
    for concept in config.concepts:
        for picture in dataset_pictures(project.concept_dir(concept)):
            try:
                with Image.open(picture) as image:
                    bucket = assigner.place(*image.size).bucket
            except (OSError, ValueError, LoratuiError):
                continue
            counts[bucket] = counts.get(bucket, 0) + 1
    if not counts:
        return side, side
    best = max(counts.items(), key=lambda item: (item[1], -abs(math.log(item[0][0] / item[0][1])),
                                                 item[0][0] * item[0][1]))
    return _multiple(best[0][0]), _multiple(best[0][1])


def _multiple(value: float) -> int:
    return max(SIZE_RANGE[0], min(SIZE_RANGE[1], int(round(value / SIZE_MULTIPLE)) * SIZE_MULTIPLE))


# --- cache keys ----------------------------------------------------------------------------------


def base_model_identity(project: Project, config: Config) -> str:
    """The base model's file(s) by path, size and mtime, or the hub id: a changed model re-renders every cell."""
    parts = [config.project.base_model, config.project.base_model_config, config.project.vae]
    location = Path(config.project.base_model).expanduser()
    location = location if location.is_absolute() else project.root / location
    if location.is_file():
        parts.append(_stat_text(location))
    elif location.is_dir():
        for folder, dirs, files in os.walk(location):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    file = Path(folder, name)
                    parts.append(f"{file.relative_to(location).as_posix()}={_stat_text(file)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _stat_text(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def cell_key(settings: GridSettings, base_identity: str, checkpoint: GridCheckpoint, weight: float) -> str:
    """A hash of everything that changes the cell's picture.

    Weight 0 is the base model's own render whatever the checkpoint, so those cells share one key (and one render).
    """
    fields = {
        "version": CACHE_VERSION,
        "checkpoint": None if weight == 0 else checkpoint.identity,
        "weight": weight,
        "prompt": settings.prompt,
        "negative_prompt": settings.negative_prompt,
        "seed": settings.seed,
        "steps": settings.steps,
        "cfg_scale": settings.cfg_scale,
        "sampler": settings.sampler,
        "width": settings.width,
        "height": settings.height,
        "clip_skip": settings.clip_skip,
        "base_model": base_identity,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def stored_path(path: Path, root: Path) -> str:
    """Project-relative POSIX path when inside the project (the project can move), else absolute."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def _dedupe(values: list[float]) -> list[float]:
    seen: list[float] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen
