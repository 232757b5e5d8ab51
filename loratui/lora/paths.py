"""Where LoRA checkpoints go: kohya's file names, which epochs save, and the atomic write (no torch here)."""

from __future__ import annotations

import re
from pathlib import Path

from loratui.fsutil import atomic_write_bytes

LORA_SUFFIX = ".safetensors"
_EPOCH_FILE = re.compile(r"^(?P<name>.+)-(?P<epoch>\d{6})\.safetensors$")


def epoch_file_name(output_name: str, epoch: int) -> str:
    """kohya's per-epoch name: `NAME-000002.safetensors`."""
    return f"{output_name}-{epoch:06d}{LORA_SUFFIX}"


def final_file_name(output_name: str) -> str:
    """kohya's final name: `NAME.safetensors`."""
    return f"{output_name}{LORA_SUFFIX}"


def checkpoint_path(output_dir: Path, output_name: str, epoch: int | None = None) -> Path:
    """The epoch checkpoint's path, or the final file's when `epoch` is None."""
    name = final_file_name(output_name) if epoch is None else epoch_file_name(output_name, epoch)
    return Path(output_dir) / name


def is_checkpoint_epoch(epoch: int, save_every_n_epochs: int, total_epochs: int) -> bool:
    """Whether `epoch` (from 1) writes `NAME-00000E.safetensors`; as in kohya, the last writes only the final file."""
    return save_every_n_epochs > 0 and epoch % save_every_n_epochs == 0 and epoch < total_epochs


def list_checkpoints(output_dir: Path, output_name: str) -> list[tuple[int | None, Path]]:
    """The run's LoRA files in training order: `(epoch, path)` per epoch file, then `(None, final)` if present.

    Temp files of an interrupted save (`.NAME-000002.safetensors.XXXX.tmp`) never match.
    """
    found: list[tuple[int | None, Path]] = []
    folder = Path(output_dir)
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        match = _EPOCH_FILE.match(path.name)
        if match and match["name"] == output_name and path.is_file():
            found.append((int(match["epoch"]), path))
    found.sort(key=lambda item: item[0] or 0)
    final = checkpoint_path(folder, output_name)
    if final.is_file():
        found.append((None, final))
    return found


def write_lora_bytes(path: Path, data: bytes) -> None:
    """Write a serialised LoRA through a temp file + rename, so a crash or kill never leaves a truncated file."""
    if path.suffix != LORA_SUFFIX:
        raise ValueError(f"{path}: a LoRA file must end in {LORA_SUFFIX}")
    atomic_write_bytes(path, data)
