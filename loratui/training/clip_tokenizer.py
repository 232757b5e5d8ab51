"""CLIP byte-level BPE tokenizer folders: the vocabulary a list of merges gives, and the files an SD repo ships."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
# OpenCLIP's tokenizers (SD2's, and SDXL's second) pad with "!" where OpenAI CLIP pads with the end token.
OPENCLIP_PAD_TOKEN = "!"
MODEL_MAX_LENGTH = 77
END_OF_WORD = "</w>"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP table mapping each byte to a printable character (the ByteLevel alphabet).

    Insertion order is CLIP's vocab order: printable bytes first ("!" is id 0), then the rest.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def build_vocab(merges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Real CLIP's vocab order: 256 byte chars, the same with `</w>`, one token per merge, specials last."""
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + END_OF_WORD for c in chars] + [a + b for a, b in merges] + [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def write_clip_tokenizer_files(
    folder: Path,
    merges: Sequence[tuple[str, str]],
    pad_token: str = EOS_TOKEN,
    model_max_length: int = MODEL_MAX_LENGTH,
    vocab: dict[str, int] | None = None,
) -> Path:
    """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json into `folder`.

    The folder loads with `transformers.CLIPTokenizer.from_pretrained(folder)`, like a real SD repo's
    `tokenizer/`. `vocab` is `build_vocab(merges)` when the caller already made it.
    """
    vocab = build_vocab(merges) if vocab is None else vocab
    if pad_token not in vocab:
        raise ValueError(f"pad token {pad_token!r} is not in the vocabulary")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    special = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN, "pad_token": pad_token}
    config = {**special, "add_prefix_space": False, "do_lower_case": True, "errors": "replace",
              "model_max_length": model_max_length, "tokenizer_class": "CLIPTokenizer"}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder
