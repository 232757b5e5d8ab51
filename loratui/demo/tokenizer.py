"""Offline CLIP-style byte-level BPE tokenizer folders, laid out like a real SD repo's `tokenizer/` folder."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
# SDXL's second tokenizer (OpenCLIP bigG) pads with "!" instead of the end-of-text token.
SDXL_TOKENIZER_2_PAD_TOKEN = "!"
MODEL_MAX_LENGTH = 77
END_OF_WORD = "</w>"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")

# Words of the demo's prompts and captions. Each becomes one token (per CLIP pre-token: "1girl" is
# "1" + "girl", exactly as in real CLIP); any other text still tokenizes through the byte fallback.
DEMO_WORDS: tuple[str, ...] = tuple(
    """
    a an the of in on at with and photo picture painting drawing style portrait 1girl 1boy solo smile
    open mouth closed red blue green yellow orange purple pink white black brown grey hair eyes long short
    looking viewer background simple outdoors indoors sky cloud tree grass flower water sun moon star
    circle square triangle stripes dots shape upper body full standing sitting day night sks dog cat
    person girl boy hat dress shirt skirt ribbon ponytail bangs masterpiece best quality low worst blurry
    akari
    """.split()
)

# CLIP's pre-tokenizer regex ([\p{L}]+ | [\p{N}] | [^\s\p{L}\p{N}]+ and contractions) in stdlib `re` terms.
_CLIP_PRETOKEN = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+")


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


def clip_pretokens(text: str) -> list[str]:
    """Split text the way CLIP's normalizer and pre-tokenizer do (NFC, lowercase, regex)."""
    return _CLIP_PRETOKEN.findall(unicodedata.normalize("NFC", text).lower())


def _bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Apply merges by rank, like the BPE model in `tokenizers`."""
    while len(symbols) > 1:
        pairs = list(pairwise(symbols))
        best = min(pairs, key=lambda pair: ranks.get(pair, len(ranks)))
        if best not in ranks:
            break
        merged: list[str] = []
        i = 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def _word_symbols(pretoken: str, byte_chars: dict[int, str]) -> list[str]:
    symbols = [byte_chars[b] for b in pretoken.encode("utf-8")]
    symbols[-1] += END_OF_WORD
    return symbols


def build_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """Merges that make every pre-token of `words` a single token.

    A merge is only appended when a word does not yet reduce to one token under the merges so far.
    Appended merges rank last, so they never change how an earlier word tokenizes; this keeps words
    that share pieces ("at" inside "cat") from breaking each other's merge chains.
    """
    byte_chars = bytes_to_unicode()
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        for pretoken in clip_pretokens(word):
            symbols = _bpe(_word_symbols(pretoken, byte_chars), ranks)
            while len(symbols) > 1:
                pair = (symbols[0], symbols[1])
                ranks[pair] = len(merges)
                merges.append(pair)
                symbols = _bpe(symbols, ranks)
    return merges


def build_vocab(merges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Real CLIP's vocab order: 256 byte chars, the same with `</w>`, one token per merge, specials last."""
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + END_OF_WORD for c in chars] + [a + b for a, b in merges] + [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def _special_tokens(pad_token: str) -> dict[str, str]:
    return {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN, "pad_token": pad_token}


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_clip_tokenizer(
    folder: Path,
    words: Iterable[str] = DEMO_WORDS,
    pad_token: str = EOS_TOKEN,
    model_max_length: int = MODEL_MAX_LENGTH,
) -> Path:
    """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json into `folder`.

    The folder loads with `transformers.CLIPTokenizer.from_pretrained(folder)`. Pass
    `pad_token=SDXL_TOKENIZER_2_PAD_TOKEN` for SDXL's second tokenizer.
    """
    merges = build_merges(words)
    vocab = build_vocab(merges)
    if pad_token not in vocab:
        raise ValueError(f"pad token {pad_token!r} is not in the vocabulary")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "vocab.json", vocab)
    merge_lines = "".join(f"{a} {b}\n" for a, b in merges)
    (folder / "merges.txt").write_text("#version: 0.2\n" + merge_lines, encoding="utf-8")
    special = _special_tokens(pad_token)
    _write_json(folder / "special_tokens_map.json", special)
    config = {
        **special,
        "add_prefix_space": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": model_max_length,
        "tokenizer_class": "CLIPTokenizer",
    }
    _write_json(folder / "tokenizer_config.json", config)
    return folder
