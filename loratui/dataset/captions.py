"""Caption files: decoding any encoding users bring, tag normalisation, and one-line UTF-8 atomic writes."""

from __future__ import annotations

import functools
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
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
DAMAGED = "utf-8 (damaged bytes replaced)"  # what decode_caption calls text no known encoding reads
_ENCODING_NAMES = {"gb18030": "GB18030 (GBK)", "cp932": "CP932 (Shift-JIS)"}
_OPENERS, _CLOSERS = "([{", ")]}"
_KANA = re.compile("[\u3041-\u30ff]")
# Both fallbacks map bytes no real text uses (user-defined areas, CP932's 0xFD-0xFF) to private-use characters.
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")
_ESCAPED_BRACKET = re.compile(r"\\([()\[\]])")
_SPACES = re.compile(r"\s+")
_SYNTAX = frozenset("([{)]}\\")


@dataclass
class Caption:
    """A caption as read from disk: its tags and what had to be fixed to read it."""

    tags: list[str]
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)


def decode_caption(data: bytes) -> tuple[str, str]:
    """Bytes -> (text, encoding). A BOM wins (``utf-8-sig``, ``utf-16-le/be``); then UTF-8, GB18030, CP932."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(encoding.removesuffix("-sig"), errors="replace"), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    decoded = {}
    for encoding in FALLBACK_ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not _PRIVATE_USE.search(text):
            decoded[encoding] = text
    # GB18030 accepts almost any byte pair, so Shift-JIS text also "decodes" as GB18030 into rare hanzi.
    # Japanese captions carry kana (which GBK-encoded Chinese almost never yields through CP932): prefer CP932
    # when it reads more kana than GB18030 does.
    if "cp932" in decoded and len(_KANA.findall(decoded["cp932"])) > len(_KANA.findall(decoded.get("gb18030", ""))):
        return decoded["cp932"], "cp932"
    for encoding, text in decoded.items():
        return text, encoding
    return data.decode("utf-8", errors="replace"), DAMAGED


def encoding_label(encoding: str) -> str:
    """How an encoding is named in messages: ``GB18030 (GBK)``, ``CP932 (Shift-JIS)``, ``UTF-16-LE``."""
    return _ENCODING_NAMES.get(encoding, encoding.upper())


def split_tags(text: str) -> list[str]:
    """Split on commas outside brackets, so ``(red hair, smile:1.2)`` stays one (weighted) tag.

    A bracket that never closes would swallow every tag after it, so then the text is split on every comma.
    """
    if _SYNTAX.isdisjoint(text):  # the common case, plain tags: no need to walk the text
        return [tag for tag in (clean_tag(t) for t in text.split(",")) if tag]
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
    if depth:
        tags = text.split(",")
    return [tag for tag in (clean_tag(t) for t in tags) if tag]


@functools.lru_cache(maxsize=1 << 16)
def clean_tag(tag: str) -> str:
    """Trim and collapse runs of whitespace; everything else (weights, escapes, case) stays as written."""
    return _SPACES.sub(" ", tag).strip()


# A dataset repeats the same few hundred tags thousands of times: remember their keys.
@functools.lru_cache(maxsize=1 << 16)
def tag_key(tag: str) -> str:
    """What makes two tags the same: case, ``_`` versus space, extra spaces and ``\\(`` escapes do not count.

    The escapes come from A1111 prompts (``hatsune miku \\(vocaloid\\)``); the tagger writes the plain form.
    """
    plain = _ESCAPED_BRACKET.sub(r"\1", tag) if "\\" in tag else tag
    return _SPACES.sub(" ", plain.replace("_", " ")).strip().casefold()


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
    return parse_caption_bytes(Path(path).read_bytes())


def parse_caption_bytes(data: bytes) -> Caption:
    """:func:`read_caption` for bytes already in memory (a caption backup, a file read once)."""
    text, encoding = decode_caption(data)
    tags, warnings = parse_caption_text(text)
    if encoding == "utf-8-sig":
        # kohya strips whitespace, not U+FEFF, so the first tag (often the trigger) would never match.
        warnings.insert(0, "starts with a byte-order mark (BOM) that kohya would read as part of the first tag: "
                           "it will be written without")
    elif encoding == DAMAGED:
        warnings.insert(0, "holds bytes that are text in no known encoding (UTF-8, GB18030, CP932): they were "
                           "replaced by \ufffd; check the tags and fix them by hand")
    elif encoding != "utf-8":
        warnings.insert(0, f"was {encoding_label(encoding)}, not UTF-8 (kohya reads only UTF-8): it will be "
                           "written as UTF-8")
    return Caption(tags, encoding, warnings)


def join_tags(tags: list[str]) -> str:
    return SEPARATOR.join(tags)


def format_caption(tags: list[str]) -> str:
    """The exact text :func:`write_caption` writes: one line, ``", "`` between the normalised tags."""
    return join_tags(normalise_tags(tags)) + "\n"


def write_caption(path: Path, tags: list[str]) -> None:
    """One line, ``", "`` between tags, UTF-8 without BOM, written atomically."""
    atomic_write_text(Path(path), format_caption(tags))


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
