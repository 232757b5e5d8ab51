"""Pictures in a terminal: half-block characters in 24-bit colour (or xterm's 256 colours), and a whole grid.

Each terminal cell shows two pixels stacked: "▀" drawn with the top pixel as foreground and the bottom pixel as
background. A cell is about twice as tall as it is wide, so one column is one pixel wide and two pixels tall:
the picture keeps its shape. Where colour codes do not belong (a file, a pipe, NO_COLOR) each cell is one plain
character instead, denser for brighter pixels. Plain Python and numpy over Pillow, no torch: the Textual UI
imports this too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

RGB = tuple[int, int, int]
HalfBlocks = list[list[tuple[RGB, RGB]]]

UPPER_HALF = "\u2580"  # ▀
RESET = "\x1b[0m"
MISSING = "?"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# xterm's 6x6x6 colour cube (indices 16-231) and its 24 greys (232-255).
_CUBE_LEVELS = np.array([0, 95, 135, 175, 215, 255])
_GREY_LEVELS = np.array([8 + 10 * i for i in range(24)])
_TRUECOLOR_TERMS = ("iTerm.app", "WezTerm", "vscode", "ghostty", "Hyper", "Tabby", "rio")
# How a picture is drawn: colour codes only where a terminal shows them.
TRUECOLOR, XTERM_256, PLAIN = "truecolor", "256", "plain"
# Plain characters from dark to bright (a space is the darkest: most terminals are dark).
PLAIN_RAMP = " .:-=+*#%@"


def half_blocks(image: Image.Image, columns: int, max_rows: int | None = None) -> HalfBlocks:
    """``image`` as rows of terminal cells, each (top colour, bottom colour); ``columns`` wide, or narrower
    when ``max_rows`` would be exceeded. The aspect ratio is kept to within one pixel."""
    from PIL import Image

    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    rgb = _flatten(image)
    width, height = rgb.size
    rows = max(1, round(columns * height / width / 2))
    if max_rows is not None and rows > max_rows:
        rows = max_rows
        columns = max(1, min(columns, round(2 * rows * width / height)))
    pixels = np.asarray(rgb.resize((columns, 2 * rows), Image.Resampling.BOX), dtype=np.uint8)
    top, bottom = pixels[0::2], pixels[1::2]
    return [[(_rgb(t), _rgb(b)) for t, b in zip(top_row, bottom_row, strict=True)]
            for top_row, bottom_row in zip(top, bottom, strict=True)]


def _flatten(image: Image.Image) -> Image.Image:
    """RGB; transparency over black, the colour of most terminals' background."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _rgb(pixel: np.ndarray) -> RGB:
    return int(pixel[0]), int(pixel[1]), int(pixel[2])


def to_ansi(rows: HalfBlocks, *, truecolor: bool = True) -> list[str]:
    """One string per row: SGR colours (only where they change) and "▀", ending with a reset."""
    lines = []
    for row in rows:
        parts, last_fg, last_bg = [], None, None
        for top, bottom in row:
            fg, bg = _sgr(top, truecolor, foreground=True), _sgr(bottom, truecolor, foreground=False)
            if fg != last_fg:
                parts.append(fg)
                last_fg = fg
            if bg != last_bg:
                parts.append(bg)
                last_bg = bg
            parts.append(UPPER_HALF)
        parts.append(RESET)
        lines.append("".join(parts))
    return lines


def to_plain(rows: HalfBlocks) -> list[str]:
    """One string per row, no escape codes: each cell's two pixels as one character of :data:`PLAIN_RAMP`."""
    last = len(PLAIN_RAMP) - 1
    return ["".join(PLAIN_RAMP[round(_brightness(top, bottom) * last)] for top, bottom in row) for row in rows]


def _brightness(top: RGB, bottom: RGB) -> float:
    """0 (black) to 1 (white): the mean luma (ITU-R BT.601) of the two pixels."""
    luma = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b in (top, bottom)]
    return sum(luma) / (2 * 255)


def _sgr(colour: RGB, truecolor: bool, *, foreground: bool) -> str:
    layer = 38 if foreground else 48
    if truecolor:
        return f"\x1b[{layer};2;{colour[0]};{colour[1]};{colour[2]}m"
    return f"\x1b[{layer};5;{xterm_256(colour)}m"


def xterm_256(colour: RGB) -> int:
    """The nearest of xterm's 256-colour palette entries 16-255 (the cube or the grey ramp)."""
    rgb = np.array(colour)
    cube = np.abs(_CUBE_LEVELS[None, :] - rgb[:, None]).argmin(axis=1)
    cube_colour = _CUBE_LEVELS[cube]
    grey = int(np.abs(_GREY_LEVELS - rgb.mean()).argmin())
    grey_colour = np.full(3, _GREY_LEVELS[grey])
    if ((grey_colour - rgb) ** 2).sum() < ((cube_colour - rgb) ** 2).sum():
        return 232 + grey
    return 16 + 36 * int(cube[0]) + 6 * int(cube[1]) + int(cube[2])


def visible_width(line: str) -> int:
    """Columns a line takes on screen: its characters without the colour codes (all used here are 1 wide)."""
    return len(_ANSI.sub("", line))


def grid_text(
    tiles: list[list[Image.Image | None]],
    row_labels: list[str],
    column_labels: list[str],
    columns: int,
    *,
    colour: str = TRUECOLOR,
) -> list[str]:
    """The whole grid in ``columns``: column labels on top, row labels (plain text) on the left, tiles side by
    side one space apart, a missing tile as a blank box with "?". No line is wider than ``columns``. ``colour``
    is :data:`TRUECOLOR`, :data:`XTERM_256` or :data:`PLAIN` (no escape codes at all; see :func:`colour_mode`)."""
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    count = max((len(row) for row in tiles), default=0)
    if count == 0:
        return []
    label_width = min(max((len(label) for label in row_labels), default=0), columns // 4)
    gutter = label_width + 1 if label_width else 0
    tile_width = (columns - gutter - (count - 1)) // count
    if tile_width < 1:  # too narrow for labels: drop them; then show as many 1-column tiles as fit
        gutter, label_width = 0, 0
        tile_width = max(1, (columns - (count - 1)) // count)
        count = min(count, (columns + 1) // 2)
    tile_rows = _tile_rows(tiles, tile_width)
    lines = [" " * gutter + " ".join(_fit(label, tile_width).center(tile_width)
                                     for label in (list(column_labels) + [""] * count)[:count]).rstrip()]
    for index, row in enumerate(tiles):
        drawn = [_tile(tile, tile_width, tile_rows, colour) for tile in (list(row) + [None] * count)[:count]]
        label = row_labels[index] if index < len(row_labels) else ""
        for line_no in range(tile_rows):
            left = _fit(label, label_width).ljust(label_width) if line_no == tile_rows // 2 else " " * label_width
            lines.append((left + " " if gutter else "") + " ".join(tile[line_no] for tile in drawn))
    return lines


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, with "…" where it was cut."""
    if len(text) <= width:
        return text
    return text[:width - 1] + "\u2026" if width > 1 else text[:width]


def _tile_rows(tiles: list[list[Image.Image | None]], tile_width: int) -> int:
    """Terminal rows per tile, from the first picture's shape (a grid's cells share one size); square if none."""
    for row in tiles:
        for tile in row:
            if tile is not None:
                width, height = tile.size
                return max(1, round(tile_width * height / width / 2))
    return max(1, round(tile_width / 2))


def _tile(tile: Image.Image | None, width: int, rows: int, colour: str) -> list[str]:
    """Exactly ``rows`` strings of ``width`` visible columns each."""
    if tile is None:
        return _blank_box(width, rows)
    cells = half_blocks(tile, width, rows)
    drawn = to_plain(cells) if colour == PLAIN else to_ansi(cells, truecolor=colour == TRUECOLOR)
    pad_width = width - visible_width(drawn[0]) if drawn else width
    lines = [line + " " * pad_width for line in drawn]
    return lines + [" " * width] * (rows - len(lines))


def _blank_box(width: int, rows: int) -> list[str]:
    middle = rows // 2
    if width < 3 or rows < 3:
        return [(MISSING.center(width) if i == middle else " " * width) for i in range(rows)]
    inner = width - 2
    return (["\u250c" + "\u2500" * inner + "\u2510"]
            + [("\u2502" + (MISSING.center(inner) if i == middle else " " * inner) + "\u2502")
               for i in range(1, rows - 1)]
            + ["\u2514" + "\u2500" * inner + "\u2518"])


def truecolor_supported(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the terminal shows 24-bit colour: COLORTERM=truecolor/24bit (the common convention), a TERM
    ending in -direct, or a terminal known to (iTerm2, WezTerm, VS Code, Windows Terminal...)."""
    if environ.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return True
    term = environ.get("TERM", "")
    if term.endswith("-direct") or term in ("xterm-kitty", "alacritty", "foot", "wezterm"):
        return True
    return environ.get("TERM_PROGRAM", "") in _TRUECOLOR_TERMS or bool(environ.get("WT_SESSION"))


def colour_mode(stream: TextIO, environ: Mapping[str, str] = os.environ) -> str:
    """How to draw pictures on ``stream``: :data:`TRUECOLOR` on a terminal; :data:`PLAIN` on a file or a pipe
    (escape codes there are noise in a log or an editor), on TERM=dumb, and whenever NO_COLOR holds any value
    but "" (https://no-color.org)."""
    if environ.get("NO_COLOR", "") or environ.get("TERM", "") == "dumb":
        return PLAIN
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        terminal = False
    # 24-bit on every terminal, as before: over SSH COLORTERM rarely arrives, though most terminals draw it.
    return TRUECOLOR if terminal else PLAIN
