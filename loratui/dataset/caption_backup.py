"""Snapshots of every caption before a rewrite, and undo: the newest snapshot put back exactly."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_bytes, atomic_write_text

MANIFEST = "snapshot.json"


@dataclass(frozen=True)
class Snapshot:
    path: Path
    reason: str
    created: float
    files: list[str]  # caption paths relative to the dataset folder, as they were
    folders: list[str]  # concept folders (relative) whose captions it covers


def backup_dir(state_dir: Path) -> Path:
    """``.loratui/caption-backups`` of a project."""
    return Path(state_dir) / "caption-backups"


def take_snapshot(dataset_dir: Path, folders: list[Path], state_dir: Path, reason: str) -> Snapshot:
    """Copy every ``*.txt`` of ``folders`` (inside ``dataset_dir``) before they are rewritten."""
    dataset_dir = Path(dataset_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000:09d}"
    target = backup_dir(state_dir) / stamp
    files, rel_folders = [], []
    for folder in folders:
        rel_folders.append(Path(folder).relative_to(dataset_dir).as_posix())
        for caption in sorted(Path(folder).glob("*.txt")):
            rel = caption.relative_to(dataset_dir).as_posix()
            destination = target / "files" / rel
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(caption, destination)
            files.append(rel)
    created = time.time()
    manifest = {"reason": reason, "created": created, "files": files, "folders": rel_folders}
    atomic_write_text(target / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
    return Snapshot(target, reason, created, files, rel_folders)


def list_snapshots(state_dir: Path) -> list[Snapshot]:
    """Complete snapshots, oldest first (one without its manifest was interrupted and is ignored)."""
    root = backup_dir(state_dir)
    snapshots = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        snapshots.append(Snapshot(folder, data["reason"], data["created"], data["files"], data["folders"]))
    return snapshots


def undo_last(dataset_dir: Path, state_dir: Path) -> Snapshot:
    """Put the newest snapshot's captions back exactly (files made since are removed), then drop it.

    Undoing again goes one rewrite further back.
    """
    snapshots = list_snapshots(state_dir)
    if not snapshots:
        raise LoratuiError("nothing to undo: no caption backup in this project")
    snapshot = snapshots[-1]
    dataset_dir = Path(dataset_dir)
    kept = set(snapshot.files)
    for folder in snapshot.folders:
        for caption in (dataset_dir / folder).glob("*.txt"):
            if caption.relative_to(dataset_dir).as_posix() not in kept:
                caption.unlink()
    for rel in snapshot.files:
        atomic_write_bytes(dataset_dir / rel, (snapshot.path / "files" / rel).read_bytes())
    shutil.rmtree(snapshot.path)
    return snapshot
