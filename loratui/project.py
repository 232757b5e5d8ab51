"""A project: a folder with its loratui.toml, the paths of its parts, creation and validation."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loratui.config import OPTIMIZER_PACKAGES, Concept, Config, TrainingSettings
from loratui.config_io import CONFIG_FILE, load_config, parse_config, read_settings_text, save_config, syntax_problem
from loratui.errors import WARNING, LoratuiError, Problem, ProblemsError

if TYPE_CHECKING:
    from loratui.training.model_family import ModelDetection


CONFIG_LOCK = "config.lock"  # in .loratui/: held only while loratui.toml is read, changed and written


@contextlib.contextmanager
def _config_lock(state_dir: Path) -> Iterator[None]:
    """An exclusive flock for a read-modify-write of loratui.toml (waits: the holder is done in milliseconds)."""
    try:
        import fcntl
    except ImportError:  # Windows: one writer at a time is the user's to keep
        yield
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / CONFIG_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
        """``.loratui/``: jobs/ (locks, records, stop requests), caches, caption backups: loratui's bookkeeping."""
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

    def update(self, change: Callable[[Config], None]) -> Config:
        """Read loratui.toml, apply ``change``, write it back — under a short lock, so two writers (a tag job
        setting the trigger, the wizard saving a parameter) each keep the other's edit. Returns what was saved."""
        with _config_lock(self.state_dir):
            config = self.load()
            change(config)
            self.save(config)
            return config

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
    refuse_a_file_in_the_way(root, "choose a folder for the project (it is created if missing)")
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


def refuse_a_file_in_the_way(root: Path, fix: str) -> None:
    """A project folder cannot be made where a file is (or above it): one line naming it, before anything is
    written, instead of mkdir's traceback halfway through."""
    for path in (root, *root.parents):
        if path.is_dir():
            return
        if path.exists() or path.is_symlink():
            shown = f"{root}" if path == root else f"{root}: {path}"
            what = "is a file, not a folder" if path.is_file() else "is not a folder"  # e.g. a broken link
            raise LoratuiError(f"{shown} {what}: {fix}")


def check_project(root: Path, *, warnings: bool = False) -> list[Problem]:
    """Every problem with the project in ``root``: settings, sources, base model and dataset, one per entry.

    Only errors (what would stop or spoil training) unless ``warnings`` is set; then warnings follow them.
    A file that cannot be read or is not valid TOML gives that one problem: every other check would judge
    defaults that stand in for settings it could not read.
    """
    project = Project.open(root)
    file = str(project.config_path)
    try:
        text = read_settings_text(project.config_path)
    except ProblemsError as exc:
        return exc.problems
    if (syntax := syntax_problem(text, file)) is not None:
        return [syntax]
    config, problems = parse_config(text, file)
    problems = list(problems)
    if not config.concepts and not any(p.key.startswith("concepts") for p in problems):
        problems.append(Problem(file, "concepts", "none: add a [[concepts]] table with name and source"))
    for index, concept in enumerate(config.concepts, start=1):
        if concept.source and (problem := source_problem(project, concept, index)) is not None:
            problems.append(problem)
    if (problem := optimizer_problem(config.training, file)) is not None:
        problems.append(problem)
    # A refused base_model (or base_model_config) reads as empty: judging that would add a made-up "not set".
    if not any(p.key.startswith("project.base_model") for p in problems):
        problems.extend(_check_base_model(project, config, file))
    problems.extend(check_dataset(project, config))
    return [p for p in problems if not p.is_warning] + ([p for p in problems if p.is_warning] if warnings else [])


# --- checks `loratui check` and train's preflight share, so both say the same line --------------------------


def source_problem(project: Project, concept: Concept, index: int) -> Problem | None:
    """What makes concept ``index`` (from 1)'s source folder give no pictures: missing, unreadable or empty."""
    from loratui.dataset.image_scan import scan_source

    file, key, source = str(project.config_path), f"concepts[{index}].source", project.source_dir(concept)
    if not source.is_dir():
        return Problem(file, key, f"{concept.source}: no such folder: point it at the folder of your pictures")
    try:
        if scan_source(source, concept.recursive, concept.exclude):
            return None
        return Problem(file, key, f"{concept.source}: {no_pictures_hint(source, concept)}")
    except LoratuiError as exc:  # a folder (or, with recursive, a subfolder) that cannot be listed
        return Problem(file, key, str(exc))


def no_pictures_hint(source: Path, concept: Concept) -> str:
    """Why a readable source folder gives no pictures, and what to change (`prepare` warns with it too)."""
    message = "no pictures here (png, jpg, jpeg, webp, bmp, gif, tif)"
    if not concept.recursive and any(p.is_dir() and not p.name.startswith(".") for p in source.iterdir()):
        return message + f": to read its subfolders, set recursive = true for concept {concept.name!r}"
    if concept.exclude:
        return message + " that are not excluded: check the concept's exclude list"
    return message + ": point the concept's source at the folder of your pictures"


def optimizer_problem(training: TrainingSettings, file: str) -> Problem | None:
    """An optimizer whose optional package is not installed: training would stop when it builds it."""
    name = training.optimizer
    if name not in OPTIMIZER_PACKAGES:
        return None
    package, install = OPTIMIZER_PACKAGES[name]
    if importlib.util.find_spec(package) is not None:
        return None
    return Problem(file, "training.optimizer", f"\"{name}\" needs the {package} package, which is not installed: "
                                               f"{install}, or set training.optimizer = \"AdamW\"")


def hub_problem(detection: ModelDetection, file: str) -> Problem | None:
    """A hub id with no copy in the local cache while HF_HUB_OFFLINE is set: the model could not be downloaded,
    so training would stop as it loads it. Online, a missing copy is simply downloaded then."""
    from huggingface_hub import constants, try_to_load_from_cache

    from loratui.training.model_family import HUB

    if detection.kind != HUB:
        return None
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in (
        "1", "true", "yes", "on")
    if not offline or isinstance(try_to_load_from_cache(detection.location, "model_index.json"), str):
        return None
    return Problem(file, "project.base_model", f"{detection.location}: not downloaded yet and HF_HUB_OFFLINE is "
                                               "set: download it while online, or set project.base_model to a local "
                                               "diffusers folder or .safetensors file")


def base_model_detection(root: Path) -> ModelDetection | None:
    """The base model of the project in ``root`` and its family, as `loratui check` shows it; None if not found."""
    from loratui.training.model_family import detect_base_model

    project = Project.open(root)
    try:
        config, _ = parse_config(read_settings_text(project.config_path), str(project.config_path))
        return detect_base_model(config.project.base_model, project.root)
    except LoratuiError:
        return None


def _check_base_model(project: Project, config: Config, file: str) -> list[Problem]:
    """Found, family known, no pickle, reachable, and a config folder for a single file. Nothing is loaded or
    downloaded."""
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
    if (unreachable := hub_problem(detection, file)) is not None:
        return [unreachable] + problems
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


# --- the dataset: concept folders, pictures and captions, by file names and caption text only -----------------

# kohya trains every dataset/ folder whose name starts with "<repeats>_" (and skips the others).
_KOHYA_FOLDER = re.compile(r"^(\d+)_(.+)$")
_NAMES_SHOWN = 3


def check_dataset(project: Project, config: Config) -> list[Problem]:
    """What is wrong with the prepared dataset as kohya and loratui would train it; no picture is decoded.

    Errors: what stops or spoils a run (an empty caption file makes kohya stop). Warnings: the rest, and a
    dataset not prepared yet, which is the normal state between `loratui new` and `loratui prepare`.
    """
    from loratui.dataset.image_scan import dataset_pictures

    file = str(project.config_path)
    pictures = {index: dataset_pictures(project.concept_dir(c)) for index, c in enumerate(config.concepts, 1)}
    problems = _stale_folders(project, config, file)
    if config.concepts and not any(pictures.values()):
        problems.append(_warning(file, "dataset", f"not prepared yet: run `loratui prepare {project.root}`"))
        return problems
    for index, concept in enumerate(config.concepts, 1):
        key, folder = f"concepts[{index}]", project.concept_dir(concept)
        if not pictures[index]:
            problems.append(_warning(file, key, f"{_relative(folder, project.root)}: not prepared yet (no "
                                                f"pictures): run `loratui prepare {project.root}`"))
            continue
        problems.extend(_check_captions(project, config, concept, key, pictures[index]))
    return problems


def _warning(file: str, key: str, message: str) -> Problem:
    return Problem(file, key, message, severity=WARNING)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _names(paths: list[Path]) -> str:
    """"a.png, b.png, c.png, ..." — the first few names of a long list."""
    shown = ", ".join(p.name for p in paths[:_NAMES_SHOWN])
    return shown + (", \u2026" if len(paths) > _NAMES_SHOWN else "")


def _stale_folders(project: Project, config: Config, file: str) -> list[Problem]:
    """dataset/ folders kohya would train that belong to no concept (left behind when repeats or names changed)."""
    if not project.dataset_dir.is_dir():
        return []
    wanted = {project.concept_dir(c).name for c in config.concepts}
    by_name = {c.name: c for c in config.concepts}
    problems = []
    for folder in sorted(project.dataset_dir.iterdir()):
        match = _KOHYA_FOLDER.match(folder.name)
        if not folder.is_dir() or not match or folder.name in wanted:
            continue
        where = _relative(folder, project.root)
        concept = by_name.get(match.group(2))
        if concept is not None:
            current = _relative(project.concept_dir(concept), project.root)
            why = (f"left from repeats {int(match.group(1))} of concept {concept.name} (now {current}): kohya would "
                   f"train it too: `loratui prepare {project.root}` moves it there if loratui made it; otherwise "
                   "delete it")
        else:
            why = ("matches no concept: kohya would train it too: delete it, or add a [[concepts]] table "
                   f"named {match.group(2)} with repeats = {int(match.group(1))}")
        problems.append(_warning(file, "dataset", f"{where}: {why}"))
    return problems


def _check_captions(project: Project, config: Config, concept: Concept, key: str,
                    pictures: list[Path]) -> list[Problem]:
    """Missing, empty and trigger-less captions of one concept folder."""
    from loratui.dataset.captions import caption_path, parse_caption_bytes, split_tags, tag_key

    file, root = str(project.config_path), project.root
    missing, empty, tagged, guessed = [], [], [], []
    for picture in pictures:
        caption = caption_path(picture)
        try:
            data = caption.read_bytes()
        except FileNotFoundError:
            missing.append(picture)
            continue
        except OSError as exc:
            return [Problem(file, key, f"{caption}: cannot be read ({exc.strerror}): check its permissions")]
        parsed = parse_caption_bytes(data)
        tags = parsed.tags
        (tagged if tags else empty).append((caption, [tag_key(t) for t in tags]))
        if not parsed.certain:
            guessed.append(caption)
    problems = []
    if guessed:
        them = "them" if len(guessed) != 1 else "it"
        problems.append(_warning(file, key, f"{len(guessed)} caption{'s' if len(guessed) != 1 else ''} "
                                            f"({_names(guessed)}): encoding could not be told for sure, so training "
                                            f"reads a guess that may garble the tags: open {them} in a text editor "
                                            f"and save {them} as UTF-8"))
    if empty:
        problems.append(Problem(file, key, f"{len(empty)} caption file{'s are' if len(empty) != 1 else ' is'} empty "
                                           f"({_names([c for c, _ in empty])}): kohya stops on an empty caption: "
                                           f"run `loratui tag {root}` or write tags into them"))
    if missing:
        problems.append(_warning(file, key, f"{len(missing)} of {len(pictures)} pictures have no caption file "
                                            f"({_names(missing)}): they would train on the class word "
                                            f"\"{concept.name}\" alone: run `loratui tag {root}`"))
    trigger = split_tags(concept.trigger) if concept.trigger else []
    if not trigger or not tagged:
        return problems
    wanted = [tag_key(t) for t in trigger]
    fix = f"`loratui tags {root} --trigger \"{concept.trigger}\"" + (
        f" --concept {concept.name}`" if len(config.concepts) > 1 else "`")
    if not any(set(wanted) <= set(keys) for _, keys in tagged):
        problems.append(_warning(file, key, f"trigger \"{concept.trigger}\" is in no caption, so the LoRA will not "
                                            f"learn it: {fix} puts it first in every caption"))
        return problems
    off = [caption for caption, keys in tagged if keys[:len(wanted)] != wanted]
    if off:
        problems.append(_warning(file, key, f"{len(off)} of {len(tagged)} captions do not start with the trigger "
                                            f"\"{concept.trigger}\" ({_names(off)}): {fix} fixes it"))
    return problems
