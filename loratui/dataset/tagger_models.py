"""Which WD14 tagger to use: the table of known models, and turning a folder or hub id into its two files."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from loratui.errors import LoratuiError
from loratui.progress import Progress, ProgressCallback, no_progress

MODEL_FILENAME = "model.onnx"
TAGS_FILENAME = "selected_tags.csv"
DEFAULT_MODEL = "SmilingWolf/wd-swinv2-tagger-v3"

# owner/name, optionally @revision (e.g. SmilingWolf/wd-v1-4-convnextv2-tagger-v2@v2.0, as lora-scripts pins it).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclass(frozen=True)
class KnownModel:
    """One published WD14 tagger (facts from the model cards and file lists, research/tagging.md §1.1)."""

    repo: str
    family: str
    tags: int
    size: str  # model.onnx as published, "" where no source gave it
    notes: str


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("SmilingWolf/wd-swinv2-tagger-v3", "v3", 10861, "", "loratui's default; P=R 0.265"),
    KnownModel("SmilingWolf/wd-convnext-tagger-v3", "v3", 10861, "395 MB", "P=R 0.257"),
    KnownModel("SmilingWolf/wd-vit-tagger-v3", "v3", 10861, "379 MB", "P=R 0.261"),
    KnownModel("SmilingWolf/wd-vit-large-tagger-v3", "v3", 10861, "", "large; Dataset Maker's pick (with eva02)"),
    KnownModel("SmilingWolf/wd-eva02-large-tagger-v3", "v3", 10861, "1.26 GB", "best macro-F1; slow on a CPU"),
    KnownModel("SmilingWolf/wd-v1-4-swinv2-tagger-v2", "v2", 9083, "455 MB", "v2.1 re-export, batches; P=R 0.377"),
    KnownModel("SmilingWolf/wd-v1-4-convnext-tagger-v2", "v2", 9083, "388 MB", "kohya's default; 1 picture per run"),
    KnownModel("SmilingWolf/wd-v1-4-convnextv2-tagger-v2", "v2", 9083, "", "lora-scripts pins @v2.0"),
    KnownModel("SmilingWolf/wd-v1-4-vit-tagger-v2", "v2", 9083, "", "P=R 0.354"),
    KnownModel("SmilingWolf/wd-v1-4-moat-tagger-v2", "v2", 9083, "", ""),
)


@dataclass(frozen=True)
class ModelFiles:
    """A tagger on disk: its graph, its tag table, and how the user named it (for messages)."""

    model: Path
    tags: Path
    name: str


def looks_like_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.match(spec)) and not spec.startswith((".", "~"))


def resolve_model(spec: str, project_root: Path | None = None, progress: ProgressCallback = no_progress) -> ModelFiles:
    """A local folder (relative to the project), a model.onnx inside one, or a hub id downloaded once.

    A path that exists always wins, so a project folder such as ``models/tagger`` is never mistaken for a hub id.
    """
    spec = spec.strip()
    if not spec:
        raise LoratuiError(f"tagging.model is empty: give a hub id such as {DEFAULT_MODEL} or a folder with "
                           f"{MODEL_FILENAME} and {TAGS_FILENAME}")
    path = Path(spec).expanduser()
    if not path.is_absolute() and project_root is not None:
        path = Path(project_root) / path
    if path.is_file() and path.suffix.lower() == ".onnx":
        return _local_files(path.parent, spec, model=path)
    if path.is_dir():
        return _local_files(path, spec)
    if looks_like_hub_id(spec):
        return _download(spec, progress)
    raise LoratuiError(f"{spec}: no such folder: give a folder with {MODEL_FILENAME} and {TAGS_FILENAME}, or a hub "
                       f"id such as {DEFAULT_MODEL} (`loratui tag --list-models`)")


def _local_files(folder: Path, spec: str, model: Path | None = None) -> ModelFiles:
    model = model or folder / MODEL_FILENAME
    tags = folder / TAGS_FILENAME
    for needed in (model, tags):
        if not needed.is_file():
            raise LoratuiError(f"{needed}: not found: a WD14 tagger folder holds {MODEL_FILENAME} and {TAGS_FILENAME} "
                               f"(both from the model's hub page, e.g. https://huggingface.co/{DEFAULT_MODEL})")
    return ModelFiles(model, tags, spec)


def _download(spec: str, progress: ProgressCallback) -> ModelFiles:
    repo, _, revision = spec.partition("@")
    local_hint = (f"download {MODEL_FILENAME} and {TAGS_FILENAME} from https://huggingface.co/{repo} on a machine "
                  "with internet, copy them into a folder here and pass that folder as --model (or tagging.model)")
    try:
        import huggingface_hub  # noqa: F401  (optional at run time: a local folder needs no hub client)
    except ImportError:
        raise LoratuiError(f"{spec}: huggingface_hub is not installed, so hub ids cannot be fetched: "
                           f"{local_hint}") from None
    files = []
    for index, filename in enumerate((TAGS_FILENAME, MODEL_FILENAME)):
        progress(Progress("fetching tagger", index, 2, f"{repo}/{filename}"))
        files.append(Path(_fetch_one(repo, filename, revision or None, spec, local_hint)))
    progress(Progress("fetching tagger", 2, 2, repo))
    tags, model = files
    return ModelFiles(model, tags, spec)


def _fetch_one(repo: str, filename: str, revision: str | None, spec: str, local_hint: str) -> str:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        # The cache first: once downloaded, tagging needs no network and makes no request at all.
        return hf_hub_download(repo, filename, revision=revision, local_files_only=True)
    except (LocalEntryNotFoundError, EntryNotFoundError, OSError, ValueError):
        pass
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise LoratuiError(f"{spec}: not downloaded yet and HF_HUB_OFFLINE is set: {local_hint}")
    if not _host_resolves(constants.ENDPOINT):
        # Without this the client retries a failed DNS lookup five times (about 25 s of "Retrying..." lines).
        raise LoratuiError(f"{spec}: cannot reach the model hub (offline?): {local_hint}")
    try:
        return hf_hub_download(repo, filename, revision=revision)
    except GatedRepoError:
        raise LoratuiError(f"{spec}: the hub asks you to accept its terms first (log in with `hf auth login`), "
                           f"or {local_hint}") from None
    except RepositoryNotFoundError:
        raise LoratuiError(f"{spec}: no such model on the hub (or it is private): check the id against "
                           f"`loratui tag --list-models`, or give a folder with {MODEL_FILENAME} and "
                           f"{TAGS_FILENAME}") from None
    except RevisionNotFoundError:
        raise LoratuiError(f"{spec}: the hub has no revision {revision!r} of {repo}") from None
    except LocalEntryNotFoundError:
        raise LoratuiError(f"{spec}: cannot reach the model hub (offline?): {local_hint}") from None
    except EntryNotFoundError:
        raise LoratuiError(f"{spec}: the repo has no {filename}, so it is not a WD14 ONNX tagger: "
                           "`loratui tag --list-models` lists the known ones") from None
    except HFValidationError as exc:
        raise LoratuiError(f"{spec}: not a valid hub id ({exc}): give owner/name or a local folder") from None
    except OSError as exc:
        raise LoratuiError(f"{spec}: download of {filename} failed ({_short(exc)}): {local_hint}") from None


def _host_resolves(endpoint: str) -> bool:
    """Whether the hub's host name resolves: a machine without a network answers at once."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(endpoint).hostname
    if not host:
        return True
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."


def cached_locally(repo: str) -> bool:
    """Whether both files of a hub tagger are in the download cache already (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return all(isinstance(try_to_load_from_cache(repo, name), str) for name in (MODEL_FILENAME, TAGS_FILENAME))
