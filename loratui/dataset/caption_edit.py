"""Rewriting one picture's caption by hand (the Tags screen's `enter`): the same backup as every tag edit first,
so `loratui tags --undo` (^z) puts it back."""

from __future__ import annotations

from pathlib import Path

from loratui.config import Config
from loratui.dataset.caption_backup import Snapshot, take_snapshot
from loratui.dataset.captions import caption_path, format_caption, normalise_tags, split_tags
from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_text
from loratui.jobs.kinds import DATASET
from loratui.jobs.locks import resource_lock
from loratui.project import Project


def edit_caption(project: Project, config: Config, image: Path, text: str, *, expected: bytes | None) -> Snapshot:
    """Write ``text`` (comma-separated tags) as the caption of the prepared picture ``image``.

    ``expected`` is the caption's bytes as the caller read them (None: no caption file): a caption changed on disk
    since is left alone. Refused while a dataset job (prepare, tag) runs. Returns the backup taken first.
    """
    image = Path(image)
    caption = caption_path(image)
    tags = normalise_tags(split_tags(text))
    if not tags:
        raise LoratuiError(f"{caption.name}: the caption is empty - type its tags separated by commas (kohya stops "
                           "on an empty caption), or esc to leave it as it was")
    folders = [project.concept_dir(c) for c in config.concepts if project.concept_dir(c).is_dir()]
    folder = next((f for f in folders if image.parent.resolve() == f.resolve()), None)
    if folder is None:
        raise LoratuiError(f"{image}: not a prepared picture of this project: only captions in {project.dataset_dir} "
                           "are edited here")
    with resource_lock(project, DATASET, "tags"):
        try:
            now = caption.read_bytes()
        except FileNotFoundError:
            now = None
        except OSError as exc:
            raise LoratuiError(f"{caption}: cannot be read ({exc.strerror or exc}): left as it is") from exc
        if now != expected:
            raise LoratuiError(f"{caption.name}: changed on disk since it was read: left as it is; look at it again "
                               "and retry")
        if now is not None and now.decode("utf-8", "replace") == format_caption(tags):
            raise LoratuiError(f"{caption.name}: unchanged - nothing to write")
        snapshot = take_snapshot(project.dataset_dir, folders, project.state_dir, f"edit {caption.name}",
                                 config_file=project.config_path)
        atomic_write_text(caption, format_caption(tags))
    return snapshot
