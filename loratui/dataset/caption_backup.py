"""Snapshots of every caption (and loratui.toml) before a rewrite, and undo: the newest snapshot put back exactly."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_bytes, atomic_write_text

MANIFEST = "snapshot.json"
CONFIG_COPY = "config"


@dataclass(frozen=True)
class Snapshot:
    path: Path
    reason: str
    created: float
    files: list[str]  # caption paths relative to the dataset folder, as they were
    folders: list[str]  # concept folders (relative) whose captions it covers
    config: str | None = None  # file name of the settings file copied with the captions, if any

    @property
    def when(self) -> str:
        """Local time the snapshot was taken, for messages."""
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created))


@dataclass
class Restored:
    """What an undo put back."""

    snapshot: Snapshot
    written: list[str] = field(default_factory=list)  # captions whose bytes were restored (relative paths)
    removed: list[str] = field(default_factory=list)  # captions made after the snapshot, removed
    missing_folders: list[str] = field(default_factory=list)  # covered folders that no longer exist
    config_restored: bool = False
    remaining: int = 0  # older snapshots still available to undo


def backup_dir(state_dir: Path) -> Path:
    """``.loratui/caption-backups`` of a project."""
    return Path(state_dir) / "caption-backups"


def _new_snapshot_dir(state_dir: Path) -> Path:
    # One clock reading, in UTC, so names sort in the order snapshots were taken (no DST jumps, no mixing of
    # two readings across a second boundary); a coarse clock that repeats a value moves on by one.
    root = backup_dir(state_dir)
    ns = time.time_ns()
    while True:
        seconds, fraction = divmod(ns, 1_000_000_000)
        target = root / (time.strftime("%Y%m%d-%H%M%S", time.gmtime(seconds)) + f"-{fraction:09d}")
        if not target.exists():
            return target
        ns += 1


def take_snapshot(
    dataset_dir: Path, folders: list[Path], state_dir: Path, reason: str, *, config_file: Path | None = None
) -> Snapshot:
    """Copy every ``*.txt`` of ``folders`` (inside ``dataset_dir``) before they are rewritten.

    With ``config_file`` (the project's loratui.toml) the settings are kept too, so an undo also puts back the
    deleted tags and trigger words an edit recorded there.
    """
    dataset_dir = Path(dataset_dir)
    target = _new_snapshot_dir(state_dir)
    files, rel_folders = [], []
    try:
        for folder in folders:
            rel_folders.append(Path(folder).relative_to(dataset_dir).as_posix())
            for caption in sorted(Path(folder).glob("*.txt")):
                if not caption.is_file():
                    continue
                rel = caption.relative_to(dataset_dir).as_posix()
                destination = target / "files" / rel
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(caption, destination)
                files.append(rel)
        config_name = None
        if config_file is not None and Path(config_file).is_file():
            config_name = Path(config_file).name
            (target / CONFIG_COPY).mkdir(parents=True, exist_ok=True)
            shutil.copy2(config_file, target / CONFIG_COPY / config_name)
    except OSError as exc:
        # Without a complete backup nothing may be rewritten: the caller stops here, before any change.
        shutil.rmtree(target, ignore_errors=True)
        raise LoratuiError(f"{target}: cannot back up the captions before changing them ({exc.strerror or exc}): "
                           "check free space and permissions of the project's .loratui folder") from exc
    created = time.time()
    manifest = {"reason": reason, "created": created, "files": files, "folders": rel_folders, "config": config_name}
    # The manifest is written last: a snapshot without one was interrupted and is ignored.
    atomic_write_text(target / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
    return Snapshot(target, reason, created, files, rel_folders, config_name)


def list_snapshots(state_dir: Path) -> list[Snapshot]:
    """Complete snapshots, oldest first (one without its manifest was interrupted and is ignored)."""
    root = backup_dir(state_dir)
    snapshots = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            snapshot = Snapshot(folder, data["reason"], data["created"], list(data["files"]), list(data["folders"]),
                                data.get("config"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        snapshots.append(snapshot)
    return snapshots


def snapshot_caption(snapshot: Snapshot, rel: str) -> bytes:
    """The bytes one caption (path relative to the dataset folder) had when ``snapshot`` was taken."""
    return (snapshot.path / "files" / rel).read_bytes()


def undo_last(dataset_dir: Path, state_dir: Path, *, config_file: Path | None = None) -> Snapshot:
    """Put the newest snapshot's captions back exactly (files made since are removed), then drop it.

    Undoing again goes one rewrite further back. See :func:`restore_last` for what was restored.
    """
    return restore_last(dataset_dir, state_dir, config_file=config_file).snapshot


def restore_last(dataset_dir: Path, state_dir: Path, *, config_file: Path | None = None) -> Restored:
    """:func:`undo_last` with a report. A snapshot holding loratui.toml puts it back to ``config_file`` (default:
    beside ``state_dir``, where a project keeps it)."""
    snapshots = list_snapshots(state_dir)
    if not snapshots:
        raise LoratuiError("nothing to undo: no tag edit or tagging run has been recorded in this project "
                           "(or every one has been undone already)")
    snapshot = snapshots[-1]
    dataset_dir = Path(dataset_dir)
    # Read the whole backup before touching anything, so a damaged one changes nothing.
    try:
        contents = {rel: snapshot_caption(snapshot, rel) for rel in snapshot.files}
        config_bytes = (snapshot.path / CONFIG_COPY / snapshot.config).read_bytes() if snapshot.config else None
    except OSError as exc:
        raise LoratuiError(f"{snapshot.path}: this backup is damaged ({exc.strerror or exc}): remove that folder "
                           "to undo the ones before it") from exc
    restored = Restored(snapshot, remaining=len(snapshots) - 1)
    live_folders = []
    for folder in snapshot.folders:
        if (dataset_dir / folder).is_dir():
            live_folders.append(folder)
        else:
            restored.missing_folders.append(folder)
    for folder in live_folders:
        for caption in sorted((dataset_dir / folder).glob("*.txt")):
            rel = caption.relative_to(dataset_dir).as_posix()
            if rel not in contents and caption.is_file():
                caption.unlink()
                restored.removed.append(rel)
    for rel, data in contents.items():
        if Path(rel).parent.as_posix() not in live_folders:
            continue
        target = dataset_dir / rel
        if not target.is_file() or target.read_bytes() != data:
            atomic_write_bytes(target, data)
            restored.written.append(rel)
    if config_bytes is not None:
        target = Path(config_file) if config_file is not None else Path(state_dir).parent / snapshot.config
        if not target.is_file() or target.read_bytes() != config_bytes:
            atomic_write_bytes(target, config_bytes)
            restored.config_restored = True
    shutil.rmtree(snapshot.path)
    return restored
