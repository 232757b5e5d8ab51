"""`--ascii` (design §2.10): for terminals that draw ambiguous-width characters two cells wide (CJK locales),
where box lines, block elements and symbols such as ``…`` push every row out of line.

Two layers. Where the wizard draws on purpose, it draws plain characters: its glyphs (`loratui.tui.glyphs`),
borders (every Textual border style is drawn with ``+ - |``), the loss sparkline (``_.-~=+*#``), scrollbars and
pictures (coloured spaces instead of ``▀``). Then, as a net for what Textual and the texts still hold, the
terminal driver translates every symbol left in its output (punctuation, arrows, box and block characters,
geometric shapes, dingbats) to one ASCII character before writing it, so the layout keeps its widths. Letters
are never translated: a file named in Cyrillic or Chinese keeps its name.

Textual keeps its border characters, sparkline bars and scrollbar renderer as class-level settings; one wizard
runs per process, so :func:`apply` sets them for the app starting and puts Textual's own back for a later app
without ``--ascii`` (tests run several in one process)."""

from __future__ import annotations

import unicodedata
from functools import cache

SPARK_BARS = "_.-~=+*#"  # low to high, each one cell wide everywhere

# Symbols with an obvious plain stand-in; the rest of a range falls back by its Unicode name (see _stand_in).
NAMED: dict[str, str] = {
    "…": ".", "·": "-", "•": "*", "∙": "-", "×": "x", "÷": "/", "±": "+", "°": "o", "≈": "~", "≤": "<", "≥": ">",
    "≠": "#", "−": "-", "–": "-", "—": "-", "‐": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "‹": "<", "›": ">",
    "«": "<", "»": ">", "←": "<", "→": ">", "↑": "^", "↓": "v", "⇒": ">", "↵": "<", "✓": "v", "✔": "v", "✗": "x",
    "✘": "x", "▸": ">", "▶": ">", "◀": "<", "▾": "v", "▼": "v", "▲": "^", "◉": "*", "●": "*", "○": "o", "◌": "o",
    "■": "#", "□": "o", "▪": "*", "▫": ".", "✎": "*", "⟳": "~", "★": "*", "☆": "*", "⚠": "!", "ℹ": "i",
    "▀": '"', "▄": "_", "▌": "|", "▐": "|", "▏": "|", "▕": "|", "█": "#", "░": ".", "▒": ":", "▓": "#",
    "╱": "/", "╲": "\\", "╳": "X", "\u00a0": " ", "©": "c", "®": "r", "§": "S", "¶": "P", "¿": "?", "¡": "!",
    "£": "L", "¥": "Y", "¢": "c", "¬": "-", "¦": "|", "¨": '"', "ª": "a", "º": "o", "¹": "1", "²": "2", "³": "3",
    "µ": "u", "™": "T", "№": "N",
}
# The blocks of symbols the net translates: Latin-1 signs, general punctuation, arrows, mathematical operators,
# technical signs, box drawing, block elements, geometric shapes, miscellaneous symbols, dingbats, arrows-A.
SYMBOL_RANGES = ((0x00A0, 0x00BF), (0x00D7, 0x00D7), (0x00F7, 0x00F7), (0x2010, 0x205E), (0x2190, 0x23FF),
                 (0x2500, 0x27BF), (0x27F0, 0x27FF), (0x2100, 0x214F))


def _stand_in(char: str) -> str:
    if char in NAMED:
        return NAMED[char]
    name = unicodedata.name(char, "")
    if "BOX DRAWINGS" in name:
        horizontal, vertical = "HORIZONTAL" in name, "VERTICAL" in name
        if horizontal and not vertical:
            return "-"
        if vertical and not horizontal:
            return "|"
        return "+"
    if "BLOCK" in name or "SHADE" in name:
        return "_" if "LOWER ONE" in name or "LOWER TWO" in name else "#"
    if "ARROW" in name:
        return ">" if "RIGHT" in name else "<" if "LEFT" in name else "^" if "UP" in name else "v"
    if unicodedata.category(char) in ("Zs", "Cf"):
        return " " if unicodedata.category(char) == "Zs" else ""
    return "?"


@cache
def table() -> dict[int, str]:
    """``str.translate`` table from every symbol of SYMBOL_RANGES (and the NAMED ones) to one plain character."""
    chars = {chr(code) for start, end in SYMBOL_RANGES for code in range(start, end + 1)} | set(NAMED)
    return {ord(char): _stand_in(char) for char in chars if unicodedata.category(char) != "Cn"}


def to_ascii(text: str) -> str:
    """``text`` with its symbols in plain characters, one for one (so a drawn row keeps its width)."""
    return text.translate(table())


def ascii_driver(base: type) -> type:
    """A subclass of the terminal driver ``base`` whose output goes through :func:`to_ascii`."""

    class AsciiDriver(base):  # type: ignore[misc, valid-type]
        def write(self, data: str) -> None:
            super().write(to_ascii(data))

    AsciiDriver.__name__ = f"Ascii{base.__name__}"
    return AsciiDriver


_TEXTUAL_OWN: dict[str, object] = {}


def apply(on: bool) -> None:
    """Textual's class-level drawing settings for an app with (``on``) or without ``--ascii``."""
    from textual import _border
    from textual.renderables.sparkline import Sparkline
    from textual.scrollbar import ScrollBar, ScrollBarRender

    from loratui.tui.widgets.ascii_scrollbar import AsciiScrollBarRender

    if not _TEXTUAL_OWN:
        _TEXTUAL_OWN.update(chars=dict(_border.BORDER_CHARS), locations=dict(_border.BORDER_LOCATIONS),
                            bars=Sparkline.BARS)
    ScrollBar.renderer = AsciiScrollBarRender if on else ScrollBarRender
    Sparkline.BARS = SPARK_BARS if on else _TEXTUAL_OWN["bars"]
    chars: dict = dict(_TEXTUAL_OWN["chars"])  # type: ignore[call-overload]
    locations: dict = dict(_TEXTUAL_OWN["locations"])  # type: ignore[call-overload]
    if on:
        plain = chars["ascii"]
        for name, rows in list(chars.items()):
            if name in ("", "none", "hidden", "blank", "ascii"):
                continue
            # Each edge keeps its shape (a left-only "vkey" stays a left line) and takes ascii's character there;
            # the styles of "ascii" too, since the block styles ("tall", "panel"…) draw with reversed colours.
            chars[name] = tuple(tuple(" " if char == " " else plain[row][col] for col, char in enumerate(edge))
                                for row, edge in enumerate(rows))
            locations[name] = locations["ascii"]
    _border.BORDER_CHARS.clear()
    _border.BORDER_CHARS.update(chars)
    _border.BORDER_LOCATIONS.clear()
    _border.BORDER_LOCATIONS.update(locations)
    _border.get_box.cache_clear()  # boxes built with the other characters
