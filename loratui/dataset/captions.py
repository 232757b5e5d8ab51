"""Caption files: decoding any encoding users bring, tag normalisation, and one-line UTF-8 atomic writes."""

from __future__ import annotations

import functools
import re
import unicodedata
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
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # C0/C1 controls but whitespace


@dataclass
class Caption:
    """A caption as read from disk: its tags and what had to be fixed to read it.

    ``certain`` is False when the encoding was guessed (see :func:`decode_caption_bytes`): the tags may be
    garbled, so nothing may rewrite the file from them.
    """

    tags: list[str]
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)
    certain: bool = True


@dataclass(frozen=True)
class Decoded:
    """A caption's text, the encoding it was read with, and whether that encoding is known rather than guessed."""

    text: str
    encoding: str
    certain: bool


def decode_caption(data: bytes) -> tuple[str, str]:
    """Bytes -> (text, encoding): :func:`decode_caption_bytes` without the certainty."""
    decoded = decode_caption_bytes(data)
    return decoded.text, decoded.encoding


def decode_caption_bytes(data: bytes) -> Decoded:
    """Bytes -> text. Certain: valid UTF-8 (with or without BOM) and UTF-16 with a BOM, each holding only
    characters real text uses. Everything else is a guess: UTF-16 without a BOM, GB18030, CP932, then UTF-8 with
    the undecodable bytes replaced (:data:`DAMAGED`)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            codec = encoding.removesuffix("-sig")
            try:
                text = data[len(bom):].decode(codec)
            except UnicodeDecodeError:
                # A BOM followed by bytes that are not that encoding: random or damaged bytes, not text.
                return Decoded(data[len(bom):].decode(codec, errors="replace"), encoding, False)
            return Decoded(text, encoding, _plausible(text, strict=codec != "utf-8"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if _plausible(text, strict=False):
            return Decoded(text, "utf-8", True)
        # Valid UTF-8 holding NULs: most likely UTF-16 saved without a BOM ("r\0e\0d\0").
        return _utf16_guess(data) or Decoded(text, "utf-8", False)
    guess = _utf16_guess(data) or _legacy_guess(data)
    return guess or Decoded(data.decode("utf-8", errors="replace"), DAMAGED, False)


def _plausible(text: str, *, strict: bool) -> bool:
    """No control character but whitespace; ``strict`` (a 2-byte BOM is weak evidence): also no private-use,
    unassigned or surrogate code point, which random bytes read as UTF-16 yield within a few characters."""
    if _CONTROLS.search(text):
        return False
    return not strict or all(unicodedata.category(char) not in ("Co", "Cn", "Cs") for char in text)


def _utf16_guess(data: bytes) -> Decoded | None:
    """UTF-16 without a BOM: only when NUL bytes are there (ASCII in UTF-16), an even count, and it reads cleanly."""
    if b"\0" not in data or len(data) % 2:
        return None
    # The NULs of ASCII text fall on odd offsets in little-endian, even ones in big-endian.
    order = ("utf-16-le", "utf-16-be") if data[1::2].count(0) >= data[0::2].count(0) else ("utf-16-be", "utf-16-le")
    for encoding in order:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _plausible(text, strict=True):
            return Decoded(text, encoding, False)
    return None


def _legacy_guess(data: bytes) -> Decoded | None:
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
    # when it reads more kana than GB18030 does. Kanji-only Shift-JIS has no kana to tell: hence only a guess.
    if "cp932" in decoded and len(_KANA.findall(decoded["cp932"])) > len(_KANA.findall(decoded.get("gb18030", ""))):
        return Decoded(decoded["cp932"], "cp932", False)
    for encoding, text in decoded.items():
        return Decoded(text, encoding, False)
    return None


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
    decoded = decode_caption_bytes(data)
    encoding = decoded.encoding
    tags, warnings = parse_caption_text(decoded.text)
    if not decoded.certain:
        warnings.insert(0, uncertain_warning(encoding))
    elif encoding == "utf-8-sig":
        # kohya strips whitespace, not U+FEFF, so the first tag (often the trigger) would never match.
        warnings.insert(0, "starts with a byte-order mark (BOM) that kohya would read as part of the first tag: "
                           "it will be written without")
    elif encoding != "utf-8":
        warnings.insert(0, f"was {encoding_label(encoding)}, not UTF-8 (kohya reads only UTF-8): it will be "
                           "written as UTF-8")
    return Caption(tags, encoding, warnings, decoded.certain)


def uncertain_warning(encoding: str) -> str:
    """The one line that names a caption whose encoding was guessed (the caller puts the file in front)."""
    if encoding == DAMAGED:
        read = "it is text in no known encoding: not UTF-8, GB18030 or CP932; unreadable bytes show as \ufffd"
    else:
        read = f"it reads as {encoding_label(encoding)}, which may be wrong"
    return (f"its encoding could not be told for sure ({read}): loratui will not rewrite it; open it in a text "
            "editor and save it as UTF-8")


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
