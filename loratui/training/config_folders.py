"""The bundled config-only diffusers folders (one per family) that load A1111 single files offline, tokenizers included.

The package ships JSON configs and one compressed copy of CLIP's BPE merges (MIT, OpenAI CLIP; see
configs/CLIP-BPE-LICENSE.txt). On first use each family's folder is written, complete with tokenizer files,
into loratui's cache folder, because `from_single_file(config=...)` wants a plain diffusers folder.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from loratui.errors import LoratuiError
from loratui.training.clip_tokenizer import EOS_TOKEN, OPENCLIP_PAD_TOKEN, build_vocab, write_clip_tokenizer_files
from loratui.training.model_family import FAMILIES

BUNDLED_CONFIGS = Path(__file__).resolve().parent / "configs"
MERGES_FILE = BUNDLED_CONFIGS / "clip_merges.txt.gz"
CACHE_ENV = "LORATUI_CACHE_DIR"
# CLIP's vocabulary: 256 bytes, 256 bytes + </w>, 48,894 merges, 2 special tokens.
CLIP_VOCAB_SIZE = 49408
# Each family's tokenizer folders and their pad tokens.
_PAD_TOKENS = {"sd15": {"tokenizer": EOS_TOKEN}, "sd2": {"tokenizer": OPENCLIP_PAD_TOKEN},
               "sd2-v": {"tokenizer": OPENCLIP_PAD_TOKEN},
               "sdxl": {"tokenizer": EOS_TOKEN, "tokenizer_2": OPENCLIP_PAD_TOKEN}}


def cache_root() -> Path:
    """loratui's cache folder: $LORATUI_CACHE_DIR, else the platform's user cache folder."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs  # only here: most commands never need it

    return Path(platformdirs.user_cache_dir("loratui"))


def bundled_families() -> list[str]:
    return sorted(p.name for p in BUNDLED_CONFIGS.iterdir() if (p / "model_index.json").is_file())


def bundled_config_dir(family: str) -> Path:
    """The complete config-only diffusers folder of ``family``, written to the cache on first use."""
    source = BUNDLED_CONFIGS / family
    if family not in FAMILIES or not (source / "model_index.json").is_file():
        raise LoratuiError(f"no bundled configs for the model family {family!r}: set project.base_model_config to "
                           "a diffusers folder with the model's configs")
    if not MERGES_FILE.is_file():
        raise LoratuiError(f"{MERGES_FILE}: missing from the installation: reinstall loratui, or set "
                           "project.base_model_config to a diffusers folder with the model's tokenizer files")
    target = cache_root() / "model-configs" / f"{family}-{_fingerprint(source)}"
    if (target / "model_index.json").is_file():
        return target
    _write_folder(source, family, target)
    return target


def _fingerprint(source: Path) -> str:
    """A hash of the bundled files, so a loratui upgrade with new configs never reuses a stale cached folder."""
    digest = hashlib.sha256()
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(file.relative_to(source).as_posix().encode() + b"\0" + file.read_bytes())
    digest.update(MERGES_FILE.read_bytes())
    return digest.hexdigest()[:12]


def _write_folder(source: Path, family: str, target: Path) -> None:
    """Build the folder beside its final place and rename it in, so no reader sees a half-written one."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise LoratuiError(f"{target.parent}: cannot write the model config cache ({exc.strerror or exc}): "
                           f"set {CACHE_ENV} to a writable folder") from None
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        merges = read_clip_merges()
        vocab = clip_vocab(merges)
        for tokenizer, pad in _PAD_TOKENS[family].items():
            write_clip_tokenizer_files(staging / tokenizer, merges, pad, vocab=vocab)
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "model_index.json").is_file():  # another process won the race: theirs is equal
                raise
    except OSError as exc:
        raise LoratuiError(f"{target}: cannot write the model config cache ({exc.strerror or exc}): "
                           f"set {CACHE_ENV} to a writable folder") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_clip_merges() -> list[tuple[str, str]]:
    """CLIP's BPE merges in rank order, from the bundled compressed copy."""
    lines = gzip.decompress(MERGES_FILE.read_bytes()).decode("utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line]
    if any(len(merge) != 2 for merge in merges):
        raise LoratuiError(f"{MERGES_FILE}: damaged: reinstall loratui")
    return merges  # type: ignore[return-value]


def clip_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's vocabulary from the bundled merges; a wrong size means a damaged installation."""
    vocab = build_vocab(merges)
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise LoratuiError(f"{MERGES_FILE}: gives {len(vocab)} tokens, CLIP has {CLIP_VOCAB_SIZE}: reinstall loratui")
    return vocab
