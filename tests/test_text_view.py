"""The half-block renderer: sizes, colours in 24-bit and 256-colour codes, and a grid that fits its width."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from loratui.preview.text_view import (
    PLAIN,
    PLAIN_RAMP,
    RESET,
    TRUECOLOR,
    UPPER_HALF,
    colour_mode,
    grid_text,
    half_blocks,
    to_ansi,
    to_plain,
    truecolor_supported,
    visible_width,
    xterm_256,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def _two_colour(width: int = 8, height: int = 2) -> Image.Image:
    """Even pixel rows red, odd rows blue: every terminal cell is red over blue."""
    image = Image.new("RGB", (width, height), RED)
    for y in range(1, height, 2):
        image.paste(BLUE, (0, y, width, y + 1))
    return image


def _plain(line: str) -> str:
    return _SGR.sub("", line)


@pytest.mark.parametrize(("size", "columns", "max_rows", "expected"), [
    ((100, 50), 40, None, (40, 10)),  # 2:1 picture, 40 columns: 40 x 20 pixels = 10 rows
    ((64, 64), 20, None, (20, 10)),
    ((100, 200), 40, None, (40, 40)),
    ((100, 200), 40, 10, (10, 10)),  # too tall: narrower, keeping the shape
    ((300, 10), 6, None, (6, 1)),  # never less than one row
])
def test_half_blocks_size_keeps_the_aspect_ratio(size, columns, max_rows, expected):
    rows = half_blocks(Image.new("RGB", size, (10, 20, 30)), columns, max_rows)
    assert (len(rows[0]), len(rows)) == expected
    assert all(len(row) == expected[0] for row in rows)


def test_top_pixel_is_the_foreground_and_bottom_the_background():
    rows = half_blocks(_two_colour(8, 4), 8)
    assert len(rows) == 2 and all(cell == (RED, BLUE) for row in rows for cell in row)
    lines = to_ansi(rows)
    assert lines[0].startswith("\x1b[38;2;255;0;0m\x1b[48;2;0;0;255m")
    assert all(line.endswith(RESET) for line in lines)
    # colours are sent once per run of equal cells, not once per cell
    assert lines[0].count("\x1b[38;2;") == 1 and _plain(lines[0]) == UPPER_HALF * 8


def test_transparent_pixels_show_the_black_terminal_background():
    image = Image.new("RGBA", (2, 2), (255, 255, 255, 0))
    assert half_blocks(image, 2)[0][0] == ((0, 0, 0), (0, 0, 0))


def test_256_colour_fallback_uses_the_xterm_cube_and_greys():
    lines = to_ansi(half_blocks(_two_colour(), 8), truecolor=False)
    assert "\x1b[38;5;196m" in lines[0] and "\x1b[48;5;21m" in lines[0] and ";2;" not in lines[0]
    assert xterm_256((128, 128, 128)) == 244  # the grey ramp beats the cube's (135, 135, 135)
    assert xterm_256((0, 0, 0)) == 16 and xterm_256((255, 255, 255)) == 231
    assert xterm_256((95, 135, 175)) == 16 + 36 * 1 + 6 * 2 + 3


def _tiles(rows: int, columns: int, missing: set[tuple[int, int]]) -> list[list[Image.Image | None]]:
    return [[None if (r, c) in missing else Image.new("RGB", (64, 96), (40 * r, 30 * c, 200)) for c in range(columns)]
            for r in range(rows)]


@pytest.mark.parametrize("columns", [5, 12, 20, 37, 80, 133])
def test_grid_lines_never_exceed_the_width(columns):
    tiles = _tiles(3, 5, {(1, 2), (2, 4)})
    lines = grid_text(tiles, ["ep02", "ep04", "final"], ["0.6", "0.7", "0.8", "0.9", "1.0"], columns)
    assert lines and max(visible_width(line) for line in lines) <= columns
    # no colour leaks: the last code of every line is a reset
    assert all(_SGR.findall(line)[-1:] in ([], [RESET]) for line in lines)


def test_grid_has_its_labels_tiles_and_missing_boxes():
    lines = grid_text(_tiles(2, 3, {(1, 1)}), ["ep02", "ep04"], ["0.6", "0.8", "1.0"], 80)
    header = lines[0]
    assert header.split() == ["0.6", "0.8", "1.0"] and "\x1b" not in header
    plain = [_plain(line) for line in lines[1:]]
    assert sum(line.startswith("ep02 ") for line in plain) == 1 and sum(line.startswith("ep04 ") for line in plain) == 1
    # tile width: (80 - 5 label columns - 2 gaps) // 3 = 24, rows = 24 * 96 / 64 / 2 = 18 per grid row
    assert len(lines) == 1 + 2 * 18
    assert sum("?" in line for line in plain) == 1 and any("\u250c" + "\u2500" * 22 + "\u2510" in p for p in plain)
    assert all(visible_width(line) == 5 + 3 * 24 + 2 for line in lines[1:])


def test_grid_of_nothing_is_empty():
    assert grid_text([], [], [], 80) == []


def test_truecolor_detection():
    assert truecolor_supported({"COLORTERM": "truecolor"})
    assert truecolor_supported({"COLORTERM": "24bit", "TERM": "screen"})
    assert truecolor_supported({"TERM": "xterm-direct"})
    assert truecolor_supported({"WT_SESSION": "abc"})
    assert not truecolor_supported({"TERM": "xterm-256color"})
    assert not truecolor_supported({})


class _Stream:
    def __init__(self, terminal: bool):
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def test_colour_only_on_a_terminal_and_never_with_no_color():
    assert colour_mode(_Stream(True), {}) == TRUECOLOR
    assert colour_mode(_Stream(False), {}) == PLAIN  # a file or a pipe
    assert colour_mode(_Stream(True), {"NO_COLOR": "1"}) == PLAIN
    assert colour_mode(_Stream(True), {"NO_COLOR": "no"}) == PLAIN  # any value but "" (no-color.org)
    assert colour_mode(_Stream(True), {"NO_COLOR": ""}) == TRUECOLOR
    assert colour_mode(_Stream(True), {"TERM": "dumb"}) == PLAIN
    assert colour_mode(object(), {}) == PLAIN  # no isatty at all


def test_plain_pictures_have_no_escape_codes_and_brighter_is_denser():
    image = Image.new("RGB", (3, 2), (0, 0, 0))
    image.paste((128, 128, 128), (1, 0, 2, 2))
    image.paste((255, 255, 255), (2, 0, 3, 2))
    assert to_plain(half_blocks(image, 3)) == [" " + PLAIN_RAMP[5] + "@"]  # 128/255 of the ramp: its 6th
    lines = grid_text(_tiles(2, 3, {(1, 1)}), ["ep02", "ep04"], ["0.6", "0.8", "1.0"], 80, colour=PLAIN)
    assert not any("\x1b" in line for line in lines)
    # the same layout as in colour: labels, a box for the missing tile, every line as wide
    assert len(lines) == 1 + 2 * 18 and sum(line.startswith("ep02 ") for line in lines) == 1
    assert all(len(line) == 5 + 3 * 24 + 2 for line in lines[1:])
