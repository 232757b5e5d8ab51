"""The demo's tiny CLIP tokenizer: BPE merges that make each demo word one token, written as an SD `tokenizer/`."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

from loratui.training.clip_tokenizer import (
    END_OF_WORD,
    EOS_TOKEN,
    MODEL_MAX_LENGTH,
    bytes_to_unicode,
    write_clip_tokenizer_files,
)

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


def write_clip_tokenizer(
    folder: Path,
    words: Iterable[str] = DEMO_WORDS,
    pad_token: str = EOS_TOKEN,
    model_max_length: int = MODEL_MAX_LENGTH,
) -> Path:
    """Write the tokenizer of `words` (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json).

    The folder loads with `transformers.CLIPTokenizer.from_pretrained(folder)`. Pass
    `pad_token=OPENCLIP_PAD_TOKEN` for SDXL's second tokenizer.
    """
    return write_clip_tokenizer_files(folder, build_merges(words), pad_token, model_max_length)
