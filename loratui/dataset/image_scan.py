"""Scanning for pictures: a source folder's picture files in natural order, exclusions, prepared pictures."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from loratui.errors import LoratuiError
from loratui.progress import FileNote

# What kohya trains on (in any case). Sources may also be GIF or TIFF: prepare writes PNG anyway.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SOURCE_SUFFIXES = (*IMAGE_SUFFIXES, ".gif", ".tif", ".tiff")
# Pictures users have that Pillow cannot read without plugins: named in the report instead of silently ignored.
UNSUPPORTED_SUFFIXES = {
    ".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF", ".jxl": "JPEG XL", ".psd": "Photoshop", ".kra": "Krita",
    ".clip": "Clip Studio", ".svg": "SVG", ".dng": "camera raw", ".cr2": "camera raw", ".cr3": "camera raw",
    ".nef": "camera raw", ".arw": "camera raw", ".orf": "camera raw", ".raf": "camera raw", ".rw2": "camera raw",
}
# Folders a loratui project keeps beside its loratui.toml: never mistaken for source pictures.
PROJECT_FOLDERS = frozenset({"dataset", "output", "preview", "logs", "models"})


@dataclass(frozen=True)
class SourceEntry:
    """One picture file of a source folder."""

    path: Path
    relpath: str  # POSIX path relative to the source folder: the key of exclusions and crop boxes
    file_size: int
    mtime_ns: int
    excluded: bool = False


def scan_source(
    folder: Path, recursive: bool = False, exclude: Sequence[str] = (), *, include_excluded: bool = False
) -> list[SourceEntry]:
    """Every picture file of ``folder`` in natural name order (img2 before img10).

    Suffixes .png .jpg .jpeg .webp .bmp .gif .tif .tiff in any case. Hidden files and folders, and the folders
    of a loratui project found inside, are passed over. ``exclude`` holds relative paths or glob patterns
    (``rejects/*``); excluded pictures are left out unless ``include_excluded`` asks for them (flagged).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LoratuiError(f"{folder}: no such folder: point the concept's source at the folder of your pictures")
    entries = []
    for path in _walk(folder, recursive, SOURCE_SUFFIXES):
        relpath = path.relative_to(folder).as_posix()
        excluded = is_excluded(relpath, exclude)
        if excluded and not include_excluded:
            continue
        try:
            stat = path.stat()
        except OSError:
            continue  # vanished between listing and stat: it is simply not there any more
        entries.append(SourceEntry(path, relpath, stat.st_size, stat.st_mtime_ns, excluded))
    entries.sort(key=lambda entry: natural_key(entry.relpath))
    return entries


def unsupported_pictures(folder: Path, recursive: bool = False, exclude: Sequence[str] = ()) -> list[FileNote]:
    """Pictures in formats loratui cannot read (HEIC, PSD, camera raw ...), each with what to do about it."""
    folder = Path(folder)
    notes = []
    for path in _walk(folder, recursive, tuple(UNSUPPORTED_SUFFIXES)):
        if not is_excluded(path.relative_to(folder).as_posix(), exclude):
            kind = UNSUPPORTED_SUFFIXES[path.suffix.lower()]
            notes.append(FileNote(path, f"{kind} files are not supported: export it as PNG or JPEG to use it"))
    return sorted(notes, key=lambda note: natural_key(note.path.name))


def is_excluded(relpath: str, patterns: Sequence[str]) -> bool:
    """Whether ``relpath`` is named by an exclusion: the exact relative path or a glob pattern."""
    return any(relpath == pattern or fnmatchcase(relpath, pattern) for pattern in patterns)


def natural_key(text: str) -> tuple:
    """Sort key that orders digits by value and ignores case: img2 < img10 < Img11."""
    return tuple(int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", text))


def _walk(folder: Path, recursive: bool, suffixes: tuple[str, ...]) -> Iterable[Path]:
    try:
        children = list(os.scandir(folder))
    except PermissionError as exc:
        raise LoratuiError(f"{folder}: cannot read this folder (permission denied): check its permissions") from exc
    except OSError as exc:
        raise LoratuiError(f"{folder}: cannot read this folder: {exc.strerror or exc}") from exc
    is_project = any(child.name == "loratui.toml" for child in children)
    for child in children:
        if child.name.startswith("."):
            continue
        try:
            if child.is_file():
                if Path(child.name).suffix.lower() in suffixes:
                    yield Path(child.path)
            elif recursive and child.is_dir() and not (is_project and child.name in PROJECT_FOLDERS):
                if not (Path(child.path) / "loratui.toml").exists():
                    yield from _walk(Path(child.path), recursive, suffixes)
        except OSError:
            continue


def dataset_pictures(folder: Path) -> list[Path]:
    """The prepared pictures of one concept folder, by name (hidden files such as half-written temp files left
    out). The tagger and the tag editor both find a dataset's pictures this way."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
