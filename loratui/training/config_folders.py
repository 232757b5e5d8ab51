"""The bundled config-only diffusers folders (one per family) that load A1111 single files offline, tokenizers included.

The package ships JSON configs and one compressed copy of CLIP's BPE merges (MIT, OpenAI CLIP; see
configs/CLIP-BPE-LICENSE.txt). On first use each family's folder is written, complete with tokenizer files,
into loratui's cache folder, because `from_single_file(config=...)` wants a plain diffusers folder.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from loratui.demo.tokenizer import BOS_TOKEN, EOS_TOKEN, MODEL_MAX_LENGTH, build_vocab
from loratui.errors import LoratuiError
from loratui.training.model_family import FAMILIES

BUNDLED_CONFIGS = Path(__file__).resolve().parent / "configs"
MERGES_FILE = BUNDLED_CONFIGS / "clip_merges.txt.gz"
CACHE_ENV = "LORATUI_CACHE_DIR"
# CLIP's vocabulary: 256 bytes, 256 bytes + </w>, 48,894 merges, 2 special tokens.
CLIP_VOCAB_SIZE = 49408
# OpenCLIP's tokenizers (SD2's, and SDXL's second) pad with "!" where OpenAI CLIP pads with the end token.
_PAD_TOKENS = {"sd15": {"tokenizer": EOS_TOKEN}, "sd2": {"tokenizer": "!"}, "sd2-v": {"tokenizer": "!"},
               "sdxl": {"tokenizer": EOS_TOKEN, "tokenizer_2": "!"}}


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
        for tokenizer, pad in _PAD_TOKENS[family].items():
            write_clip_tokenizer_files(staging / tokenizer, merges, pad)
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


def write_clip_tokenizer_files(folder: Path, merges: list[tuple[str, str]], pad_token: str) -> None:
    """vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json as in the SD repos."""
    vocab = build_vocab(merges)
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise LoratuiError(f"{MERGES_FILE}: gives {len(vocab)} tokens, CLIP has {CLIP_VOCAB_SIZE}: reinstall loratui")
    folder.mkdir(parents=True, exist_ok=True)
    special = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN, "pad_token": pad_token}
    config = {**special, "add_prefix_space": False, "do_lower_case": True, "errors": "replace",
              "model_max_length": MODEL_MAX_LENGTH, "tokenizer_class": "CLIPTokenizer"}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
