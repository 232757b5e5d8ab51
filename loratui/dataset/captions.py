"""Caption files: decoding any encoding users bring, tag normalisation, and one-line UTF-8 atomic writes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from loratui.fsutil import atomic_write_text

SEPARATOR = ", "
CAPTION_SUFFIX = ".txt"
# What users bring along next to a source picture; .txt first (kohya's choice in lora-scripts).
SOURCE_CAPTION_SUFFIXES = (".txt", ".caption")
# UTF-8 first; GB18030 (a superset of GBK/GB2312, common in Chinese guides) then Shift-JIS (CP932).
FALLBACK_ENCODINGS = ("gb18030", "cp932")
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_OPENERS, _CLOSERS = "([{", ")]}"


@dataclass
class Caption:
    """A caption as read from disk: its tags and what had to be fixed to read it."""

    tags: list[str]
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)


def decode_caption(data: bytes) -> tuple[str, str]:
    """Bytes -> (text, encoding). A BOM wins; then UTF-8, GB18030 and CP932 in that order."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, errors="replace"), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    for encoding in FALLBACK_ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), "utf-8 (damaged bytes replaced)"


def split_tags(text: str) -> list[str]:
    """Split on commas outside brackets, so ``(red hair, smile:1.2)`` stays one (weighted) tag."""
    tags, current, depth, escaped = [], [], 0, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            tags.append("".join(current))
            current = []
            continue
        current.append(char)
    tags.append("".join(current))
    return [tag for tag in (clean_tag(t) for t in tags) if tag]


def clean_tag(tag: str) -> str:
    """Trim and collapse runs of whitespace; everything else (weights, escapes, case) stays as written."""
    return re.sub(r"\s+", " ", tag).strip()


def tag_key(tag: str) -> str:
    """What makes two tags the same: case, ``_`` versus space and extra spaces do not count."""
    return re.sub(r"\s+", " ", tag.replace("_", " ")).strip().casefold()


def normalise_tags(tags: list[str]) -> list[str]:
    """Clean every tag and drop repeats (the first spelling wins), keeping the order."""
    seen: set[str] = set()
    result = []
    for tag in (clean_tag(t) for t in tags):
        key = tag_key(tag)
        if tag and key not in seen:
            seen.add(key)
            result.append(tag)
    return result


def apply_trigger_and_deletions(tags: list[str], trigger: str, deleted: list[str]) -> list[str]:
    """The caption rules: deleted tags gone, the trigger word first and nowhere else.

    The trigger may hold several comma-separated tags ("rishi, naruto"); they all go first, in that order.
    """
    trigger_tags = split_tags(trigger) if trigger else []
    dropped = {tag_key(t) for t in deleted} | {tag_key(t) for t in trigger_tags}
    return normalise_tags(trigger_tags + [t for t in tags if tag_key(t) not in dropped])


def parse_caption_text(text: str) -> tuple[list[str], list[str]]:
    """Caption text -> (normalised tags, warnings). Extra lines are joined: kohya would read only the first."""
    lines = [line for line in text.splitlines() if line.strip()]
    warnings = []
    if len(lines) > 1:
        warnings.append(f"has {len(lines)} lines; kohya reads only the first, so they were joined into one")
    tags = normalise_tags([tag for line in lines for tag in split_tags(line)])
    return tags, warnings


def read_caption(path: Path) -> Caption:
    """Read a caption file of any of the encodings users bring; say what was fixed on the way."""
    text, encoding = decode_caption(Path(path).read_bytes())
    tags, warnings = parse_caption_text(text)
    if encoding not in ("utf-8", "utf-8-sig"):
        warnings.insert(0, f"was {encoding.upper()}, not UTF-8: it will be written as UTF-8")
    return Caption(tags, encoding, warnings)


def join_tags(tags: list[str]) -> str:
    return SEPARATOR.join(tags)


def write_caption(path: Path, tags: list[str]) -> None:
    """One line, ``", "`` between tags, UTF-8 without BOM, written atomically."""
    atomic_write_text(Path(path), join_tags(normalise_tags(tags)) + "\n")


def caption_path(image: Path) -> Path:
    """The caption beside a prepared picture: same stem, ``.txt`` (kohya's caption_extension)."""
    return Path(image).with_suffix(CAPTION_SUFFIX)


def find_source_caption(image: Path) -> Path | None:
    """A caption the user brought next to a source picture (``.txt`` or ``.caption``), if any."""
    for suffix in SOURCE_CAPTION_SUFFIXES:
        candidate = Path(image).with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None
