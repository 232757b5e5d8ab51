"""A project: a folder with its loratui.toml, the paths of its parts, creation and validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loratui.config import Concept, Config
from loratui.config_io import CONFIG_FILE, load_config, parse_config, save_config
from loratui.errors import LoratuiError, Problem

if TYPE_CHECKING:
    from loratui.training.model_family import ModelDetection


@dataclass
class Project:
    """A project folder. Settings live in ``loratui.toml``; everything else is derived from the root."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def dataset_dir(self) -> Path:
        return self.root / "dataset"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def preview_dir(self) -> Path:
        return self.root / "preview"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def state_dir(self) -> Path:
        """``.loratui/``: job.json, caches and caption backups — loratui's own bookkeeping."""
        return self.root / ".loratui"

    def concept_dir(self, concept: Concept) -> Path:
        """kohya's ``dataset/{repeats}_{name}`` folder of one concept."""
        return self.dataset_dir / f"{concept.repeats}_{concept.name}"

    def source_dir(self, concept: Concept) -> Path:
        """The concept's source folder; relative paths in loratui.toml are relative to the project."""
        source = Path(concept.source).expanduser()
        return source if source.is_absolute() else self.root / source

    def output_name(self, config: Config) -> str:
        return config.project.output_name or safe_name(self.root.resolve().name)

    @classmethod
    def open(cls, root: Path) -> Project:
        """The project in ``root``; a folder without loratui.toml is refused with what to do instead."""
        root = Path(root)
        if not root.is_dir():
            raise LoratuiError(f"{root}: no such folder: create a project with `loratui new {root} --source PICTURES "
                               "--concept NAME`")
        if not (root / CONFIG_FILE).is_file():
            raise LoratuiError(f"{root} is not a loratui project (no {CONFIG_FILE}): create one with "
                               f"`loratui new {root} --source PICTURES --concept NAME`")
        return cls(root)

    def load(self) -> Config:
        return load_config(self.config_path)

    def save(self, config: Config) -> None:
        save_config(config, self.config_path)

    def make_folders(self) -> None:
        for folder in (self.dataset_dir, self.output_dir, self.preview_dir, self.logs_dir, self.state_dir):
            folder.mkdir(parents=True, exist_ok=True)


def safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` for output names ("My LoRA!" -> "My_LoRA")."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return cleaned or "lora"


def _stored_path(path: Path, root: Path) -> str:
    """Paths inside the project are stored relative to it (the project can move); others absolute."""
    path = path.expanduser().resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def create_project(
    root: Path,
    source: Path,
    concept: str,
    *,
    repeats: int | None = None,
    trigger: str | None = None,
    preset: str | None = None,
    base_model: str | None = None,
) -> tuple[Project, Config]:
    """Make the project folder and its loratui.toml. Refuses to touch an existing project or the source."""
    from loratui.presets import apply_preset, find_preset

    root, source = Path(root), Path(source).expanduser()
    if (root / CONFIG_FILE).exists():
        raise LoratuiError(f"{root} is already a loratui project: open it, or choose another folder")
    if not source.is_dir():
        raise LoratuiError(f"--source {source}: no such folder: give the folder that holds your pictures")
    resolved_root, resolved_source = root.expanduser().resolve(), source.resolve()
    if resolved_root == resolved_source or resolved_source in resolved_root.parents:
        raise LoratuiError(f"{root} is inside the source folder {source}: put the project beside your pictures, "
                           "so prepared copies never mix with the originals")
    config = Config()
    if preset:
        apply_preset(config, find_preset(preset))
    config.project.name = resolved_root.name
    config.project.output_name = safe_name(resolved_root.name)
    if base_model:
        model_path = Path(base_model).expanduser()
        config.project.base_model = _stored_path(model_path, root) if model_path.exists() else base_model
    config.concepts.append(Concept(name=concept, source=_stored_path(source, root), trigger=trigger or concept,
                                   **({"repeats": repeats} if repeats is not None else {})))
    # Validate before writing anything: a bad concept name or repeats must not leave a half-made project.
    from loratui.config_io import dump_config

    _, problems = parse_config(dump_config(config), str(root / CONFIG_FILE))
    if problems:
        raise LoratuiError(str(problems[0]).replace(f"{root / CONFIG_FILE}: ", "", 1))
    project = Project(root)
    project.make_folders()
    project.save(config)
    return project, config


def check_project(root: Path) -> list[Problem]:
    """Every problem with the project in ``root``: settings, sources and base model, one per entry."""
    project = Project.open(root)
    file = str(project.config_path)
    try:
        text = project.config_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(file, "", f"cannot be read: {exc}")]
    config, problems = parse_config(text, file)
    problems = list(problems)
    if not config.concepts and not any(p.key.startswith("concepts") for p in problems):
        problems.append(Problem(file, "concepts", "none: add a [[concepts]] table with name and source"))
    for index, concept in enumerate(config.concepts):
        if concept.source and not project.source_dir(concept).is_dir():
            problems.append(Problem(file, f"concepts[{index + 1}].source",
                                    f"{concept.source}: no such folder: point it at the folder of your pictures"))
    problems.extend(_check_base_model(project, config, file))
    return problems


def base_model_detection(root: Path) -> ModelDetection | None:
    """The base model of the project in ``root`` and its family, as `loratui check` shows it; None if not found."""
    from loratui.training.model_family import detect_base_model

    project = Project.open(root)
    try:
        config, _ = parse_config(project.config_path.read_text(encoding="utf-8-sig"), str(project.config_path))
        return detect_base_model(config.project.base_model, project.root)
    except (OSError, UnicodeDecodeError, LoratuiError):
        return None


def _check_base_model(project: Project, config: Config, file: str) -> list[Problem]:
    """Found, family known, no pickle, and a config folder for a single file. Nothing is loaded or downloaded."""
    from loratui.training.config_folders import BUNDLED_CONFIGS
    from loratui.training.model_family import HUB, SINGLE_FILE, detect_base_model

    model, key = config.project.base_model, "project.base_model"
    problems = _check_config_folder(project, config, file)
    try:
        detection = detect_base_model(model, project.root)
    except LoratuiError as exc:
        return [Problem(file, key, str(exc).removeprefix(f"{key}: "))] + problems
    if detection.family is None and detection.kind != HUB:
        return [Problem(file, key, f"{model}: cannot train on it: {detection.note}")] + problems
    if detection.kind == SINGLE_FILE and not config.project.base_model_config:
        if not (BUNDLED_CONFIGS / str(detection.family) / "model_index.json").is_file():
            problems.append(Problem(file, "project.base_model_config", f"not set, and loratui has no configs for "
                                    f"{detection.family}: point it at a diffusers folder with the model's configs"))
    return problems


def _check_config_folder(project: Project, config: Config, file: str) -> list[Problem]:
    if not config.project.base_model_config:
        return []
    folder = Path(config.project.base_model_config).expanduser()
    folder = folder if folder.is_absolute() else project.root / folder
    if (folder / "model_index.json").is_file():
        return []
    return [Problem(file, "project.base_model_config", f"{config.project.base_model_config}: not a diffusers config "
                                                       "folder (no model_index.json)")]
