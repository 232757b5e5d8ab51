"""Install a checkpoint into a WebUI/Forge/ComfyUI LoRA folder under a chosen name, with the A1111 card beside it.

The copy is atomic (a temp file in the target folder, then a rename), so the WebUI never lists a half-copied
LoRA. The card is A1111's "user metadata" file (``NAME.json``, read by A1111 >= 1.6 and Forge): the Lora card's
edit dialog shows its description, activation text (the trigger word) and preferred weight.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loratui.errors import LoratuiError
from loratui.fsutil import as_user_error, atomic_copy, atomic_write_text

if TYPE_CHECKING:
    from loratui.config import Config
    from loratui.lora.read import LoraInfo
    from loratui.preview.grid_file import GridFile
    from loratui.project import Project

LORA_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
# A1111's "sd version" values (its SdVersion enum) per loratui model family.
SD_VERSIONS = {"sd15": "SD1", "sd2": "SD2", "sd2-v": "SD2", "sdxl": "SDXL"}
UNKNOWN_SD_VERSION = "Unknown"
# What a name may hold: it becomes a file name and the <lora:NAME:w> a prompt calls.
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# Kept free beyond the file itself, so installing never fills the disk to the last byte.
_SPARE_BYTES = 16 * 1024 * 1024
INSTALL_HINT = "install into another folder"
# Where WebUI, Forge and ComfyUI keep LoRAs, below a home folder or one of EXTRA_ROOTS.
LORA_FOLDERS = (
    "stable-diffusion-webui/models/Lora",
    "stable-diffusion-webui-forge/models/Lora",
    "stable-diffusion-webui-reForge/models/Lora",
    "ComfyUI/models/loras",
)
EXTRA_ROOTS = (Path("/workspace"), Path("/opt"))  # cloud GPU images (RunPod, vast.ai) install them there


@dataclass
class LoraCard:
    """A1111's user metadata for one LoRA (``NAME.json`` beside ``NAME.safetensors``)."""

    description: str = ""
    sd_version: str = UNKNOWN_SD_VERSION  # "SD1", "SD2", "SDXL" or "Unknown"
    activation_text: str = ""  # the trigger word(s), comma-separated: A1111 adds them with the LoRA
    preferred_weight: float = 1.0
    negative_text: str = ""
    notes: str = ""

    def to_json(self) -> dict[str, Any]:
        """The file's keys exactly as A1111 reads them."""
        return {
            "description": self.description,
            "sd version": self.sd_version,
            "activation text": self.activation_text,
            "preferred weight": self.preferred_weight,
            "negative text": self.negative_text,
            "notes": self.notes,
        }


@dataclass
class InstallResult:
    path: Path  # the installed LoRA
    size: int  # bytes
    family: str | None  # the LoRA's model family (sd15, sd2, sd2-v, sdxl), None if unknown
    replaced: bool  # an existing file of that name was replaced (--force)
    card_path: Path | None = None  # the sidecar, when one was written
    renamed_from: str | None = None  # the name asked for, when keep_both installed beside it under a free name


@dataclass
class ExistingFile:
    """A LoRA already installed under the name asked for: what the refusal (or the TUI's dialog) says."""

    path: Path
    size: int
    modified: float

    def describe(self, now: float | None = None) -> str:
        """"37 MB, 2 days old"."""
        return f"{human_size(self.size)}, {human_age((now or time.time()) - self.modified)}"


def sd_version(family: str | None) -> str:
    return SD_VERSIONS.get(family or "", UNKNOWN_SD_VERSION)


def check_name(name: str) -> str:
    """The name without a ``.safetensors`` ending; LoratuiError for anything that is not a plain file name."""
    name = name.strip()
    if name.lower().endswith(LORA_SUFFIX):
        name = name[: -len(LORA_SUFFIX)]
    if not name or not _NAME.match(name) or name.startswith(".") or set(name) == {"."}:
        raise LoratuiError(f"name {name!r}: use letters, digits, -, _ and . only (no folders, spaces or other "
                           "characters, and not starting with a dot): it becomes the file name and the name in "
                           "<lora:NAME:0.8>")
    return name


def existing_install(lora_dir: Path, name: str) -> ExistingFile | None:
    path = Path(lora_dir) / f"{name}{LORA_SUFFIX}"
    try:
        stat = path.stat()
    except OSError:
        return None
    return ExistingFile(path, stat.st_size, stat.st_mtime)


def free_name(lora_dir: Path, name: str) -> str:
    """The first of NAME-2, NAME-3, ... with no LoRA file in ``lora_dir`` (for "Keep both")."""
    number = 2
    while (Path(lora_dir) / f"{name}-{number}{LORA_SUFFIX}").exists():
        number += 1
    return f"{name}-{number}"


def install_lora(source: Path, lora_dir: Path, name: str, *, card: LoraCard | None,
                 force: bool = False, keep_both: bool = False, project: Project | None = None) -> InstallResult:
    """Copy the LoRA ``source`` to ``lora_dir/NAME.safetensors`` (atomically) and write ``NAME.json`` from
    ``card``. An existing file is replaced only with ``force``; with ``keep_both`` it stays and the new one goes
    in beside it as NAME-2 (the first free name, :func:`free_name`). The folder is created only if its parent
    exists. Every refusal is a one-line LoratuiError that says what to do. With ``project``, holds its preview
    resource meanwhile (an install waits for no grid, and is refused while one renders)."""
    if force and keep_both:
        raise LoratuiError("--force replaces the installed file and --keep-both keeps it: choose one")
    if project is None:
        return _install(source, lora_dir, name, card, force, keep_both)
    from loratui.jobs.kinds import PREVIEW
    from loratui.jobs.locks import resource_lock

    with resource_lock(project, PREVIEW, "install"):
        return _install(source, lora_dir, name, card, force, keep_both)


def _install(source: Path, lora_dir: Path, name: str, card: LoraCard | None, force: bool,
             keep_both: bool = False) -> InstallResult:
    from loratui.lora.read import read_lora

    source, lora_dir = Path(source).expanduser(), Path(lora_dir).expanduser()
    name = check_name(name)
    asked = name
    if source.is_dir() or not source.exists():
        raise LoratuiError(f"{source}: {'is a folder' if source.is_dir() else 'no such file'}: give a LoRA "
                           ".safetensors file")
    info = read_lora(source)  # refuses pickles, base models and anything else that is not a LoRA
    _ready_folder(lora_dir)
    target = lora_dir / f"{name}{LORA_SUFFIX}"
    existing = existing_install(lora_dir, name)
    if existing is not None and keep_both and not _same_file(source, target):
        # Both stay: the new file takes the first free name, and nothing is replaced.
        name = free_name(lora_dir, name)
        target = lora_dir / f"{name}{LORA_SUFFIX}"
        existing = existing_install(lora_dir, name)
    if existing is not None:
        if _same_file(source, target):
            raise LoratuiError(f"{target}: is the file to install itself: choose another --name or folder")
        if not force:
            raise LoratuiError(f"{target} already exists ({existing.describe()}): use --name "
                               f"{free_name(lora_dir, name)}, or --force to replace it")
    size = source.stat().st_size
    _check_free_space(lora_dir, size - (existing.size if existing else 0))
    atomic_copy(source, target, hint=INSTALL_HINT)
    card_path = None
    if card is not None:
        card_path = lora_dir / f"{name}{CARD_SUFFIX}"
        atomic_write_text(card_path, json.dumps(card.to_json(), indent=4, ensure_ascii=False) + "\n")
    return InstallResult(target, size, info.family, existing is not None, card_path,
                         renamed_from=asked if name != asked else None)


def _ready_folder(lora_dir: Path) -> None:
    if lora_dir.is_dir():
        return
    if lora_dir.exists():
        raise LoratuiError(f"{lora_dir}: is a file, not a folder: give the folder your WebUI reads LoRAs from")
    if not lora_dir.parent.is_dir():
        raise LoratuiError(f"{lora_dir}: no such folder, and neither is {lora_dir.parent}: check the path "
                           "(a WebUI keeps LoRAs in stable-diffusion-webui/models/Lora, ComfyUI in "
                           "ComfyUI/models/loras)")
    try:
        lora_dir.mkdir()
    except OSError as exc:
        raise _write_error(exc, lora_dir) from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_free_space(folder: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: the copy itself reports a full disk
    if needed > 0 and free < needed + _SPARE_BYTES:
        raise LoratuiError(f"{folder}: not enough free space ({human_size(free)} free, {human_size(needed)} "
                           "needed): free some space or install into another folder")


def _write_error(exc: OSError, path: Path) -> LoratuiError:
    return as_user_error(exc, path, INSTALL_HINT)


def human_size(size: int) -> str:
    if size >= 10**9:
        return f"{size / 10**9:.1f} GB"
    if size >= 10**6:
        return f"{size / 10**6:.0f} MB"
    return f"{max(1, round(size / 10**3))} KB"


def human_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count != 1 else ''} old"
    return "less than a minute old"


def find_lora_folders(home: Path | None = None, extra_roots: tuple[Path, ...] = EXTRA_ROOTS) -> list[Path]:
    """The WebUI, Forge and ComfyUI LoRA folders that exist under ``home`` (default: the user's) and
    ``extra_roots``, each once, in that order."""
    roots = [Path(home) if home is not None else Path.home(), *extra_roots]
    found: list[Path] = []
    seen: set[Path] = set()
    for root in roots:
        for relative in LORA_FOLDERS:
            folder = root / relative
            try:
                if not folder.is_dir():
                    continue
                real = folder.resolve()
            except OSError:
                continue
            if real not in seen:
                seen.add(real)
                found.append(folder)
    return found


# --- which checkpoint, and the card for it ------------------------------------------------------------------


@dataclass
class Choice:
    """The checkpoint to install, why it was chosen, and the weight the preview liked for it (None if none)."""

    checkpoint: Path
    why: str
    weight: float | None = None
    prompt: str | None = None  # the prompt the preview rendered with (preview/grid.json), when there is one
    negative_prompt: str | None = None


def choose_checkpoint(project: Project, config: Config, checkpoint: str | None = None) -> Choice:
    """``checkpoint`` (a path, or a file name in output/); else the pick in preview/grid.json; else its
    suggestion; else the run's final file. LoratuiError when none of them is there."""
    from loratui.lora.paths import checkpoint_path, list_checkpoints
    from loratui.preview.grid_file import grid_path

    output_name = project.output_name(config)
    grid = _grid_or_none(project)
    settings = grid.settings if grid is not None else {}
    prompts = tuple(value if isinstance(value, str) else None
                    for value in (settings.get("prompt"), settings.get("negative_prompt")))
    if checkpoint:
        given = Path(checkpoint).expanduser()
        for candidate in (given, project.output_dir / given):
            if candidate.is_file():
                return Choice(candidate, "given with --checkpoint", _weight_for(grid, candidate, project), *prompts)
        raise LoratuiError(f"--checkpoint {checkpoint}: no such file (also looked in {project.output_dir})"
                           f"{_available(list_checkpoints(project.output_dir, output_name), project)}")
    if grid is not None:
        for key, cell, why in (("picked", grid.picked, "picked in the preview"),
                               ("suggestion", grid.suggestion, "suggested by the preview's scores")):
            if cell is None or not cell.checkpoint:
                continue
            path = _project_path(project, cell.checkpoint)
            if not path.is_file():
                raise LoratuiError(f"{grid_path(project)}: the {key} checkpoint {cell.checkpoint} is gone: render "
                                   "the grid again, or give --checkpoint FILE")
            if key == "suggestion" and cell.score is not None:
                why += f" (score {cell.score:.2f})"
            return Choice(path, why, cell.weight, *prompts)
    final = checkpoint_path(project.output_dir, output_name)
    if final.is_file():
        return Choice(final, "the training run's final file (no pick or suggestion in preview/grid.json)", None,
                      *prompts)
    raise LoratuiError(f"{final}: no such file and no pick in {grid_path(project)}: finish training "
                       f"(`loratui train {project.root}`), or give --checkpoint FILE"
                       f"{_available(list_checkpoints(project.output_dir, output_name), project)}")


def _grid_or_none(project: Project) -> GridFile | None:
    """The last grid; None when there is none or it cannot be read: installing never depends on the preview
    (the final file is then used, and the summary says why)."""
    from loratui.preview.grid_file import read_grid

    try:
        return read_grid(project)
    except LoratuiError:
        return None


def _weight_for(grid: GridFile | None, checkpoint: Path, project: Project) -> float | None:
    """The picked or suggested weight when ``checkpoint`` is that cell's file."""
    for cell in (grid.picked, grid.suggestion) if grid is not None else ():
        if cell is not None and _same_file(_project_path(project, cell.checkpoint), checkpoint):
            return cell.weight
    return None


def _project_path(project: Project, stored: str) -> Path:
    path = Path(stored).expanduser()
    return path if path.is_absolute() else project.root / path


def _available(found: list[tuple[int | None, Path]], project: Project) -> str:
    if not found:
        return f" ({project.output_dir} holds no checkpoints yet)"
    return " (there: " + ", ".join(path.name for _, path in found) + ")"


def card_for(project: Project, config: Config, info: LoraInfo, weight: float, prompt: str | None = None,
             negative_prompt: str | None = None) -> LoraCard:
    """The A1111 card: what was trained on what, the trigger words, the weight, the preview's (negative) prompt
    (those of the last grid when given, else the project's preview settings)."""
    from loratui.dataset.captions import split_tags
    from loratui.dataset.image_scan import dataset_pictures

    triggers = list(dict.fromkeys(t for c in config.concepts for t in split_tags(c.trigger or "")))
    pictures = sum(len(dataset_pictures(project.concept_dir(c))) for c in config.concepts)
    concepts = ", ".join(c.name for c in config.concepts) or "no concept"
    metadata = info.metadata
    training = []
    if metadata.get("ss_epoch"):
        training.append(f"epoch {metadata['ss_epoch']}" + (f" of {metadata['ss_num_epochs']}"
                                                           if metadata.get("ss_num_epochs") else ""))
    if metadata.get("ss_steps"):
        training.append(f"{metadata['ss_steps']} steps")
    description = (f"{config.project.name or project.root.name}: a LoRA of {concepts}, trained on {pictures} "
                   f"picture{'s' if pictures != 1 else ''}" + (f" ({', '.join(training)})" if training else ""))
    preview_prompt = prompt or config.preview.prompt.replace("{trigger}", ", ".join(triggers))
    base = metadata.get("ss_sd_model_name") or config.project.base_model or "unknown"
    notes = f"trained with loratui; base model {base}; prompt used in the preview: {preview_prompt}"
    return LoraCard(description=description, sd_version=sd_version(info.family), activation_text=", ".join(triggers),
                    preferred_weight=weight, notes=notes,
                    negative_text=config.preview.negative_prompt if negative_prompt is None else negative_prompt)
