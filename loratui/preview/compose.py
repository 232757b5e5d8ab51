"""The grid PNG: cell pictures in rows (checkpoints) and columns (weights), labelled, with a header line or two.

This is the full-resolution view a user copies to their PC, so labels are drawn large enough to read at the
cells' size, and the suggested cell gets a green frame in the gap around it (its pixels stay untouched).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loratui.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from PIL import Image, ImageFont

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
FAILED_FILL = (150, 150, 150)
FAILED_INK = (250, 250, 250)
SUGGESTED = (30, 170, 60)


@dataclass(frozen=True)
class GridLayout:
    """Where everything goes: a header band, a column-label band, a row-label column, then the tiles with
    ``gap`` pixels around each."""

    cell_width: int
    cell_height: int
    rows: int
    columns: int
    header_height: int
    column_label_height: int
    row_label_width: int
    gap: int
    font_size: int

    @property
    def top(self) -> int:
        return self.header_height + self.column_label_height

    @property
    def left(self) -> int:
        return self.row_label_width

    @property
    def width(self) -> int:
        return self.left + self.columns * (self.cell_width + self.gap) + self.gap

    @property
    def height(self) -> int:
        return self.top + self.rows * (self.cell_height + self.gap) + self.gap

    def cell_origin(self, row: int, column: int) -> tuple[int, int]:
        return (self.left + self.gap + column * (self.cell_width + self.gap),
                self.top + self.gap + row * (self.cell_height + self.gap))


def font_size_for(cell_width: int, cell_height: int) -> int:
    """Labels about a twelfth of a cell, never below 14 px (readable) nor above 40 px."""
    return max(14, min(40, min(cell_width, cell_height) // 12))


def compose_grid(
    tiles: list[list[Image.Image | None]],
    row_labels: list[str],
    column_labels: list[str],
    header: list[str],
    *,
    cell_size: tuple[int, int],
    highlight: tuple[int, int] | None = None,
    failed_text: str = "failed",
) -> tuple[Image.Image, GridLayout]:
    """The labelled grid image; a ``None`` tile is drawn as a grey "failed" tile."""
    from PIL import Image, ImageDraw

    cell_width, cell_height = cell_size
    rows, columns = len(tiles), len(column_labels)
    size = font_size_for(cell_width, cell_height)
    font = _font(size)
    pad = max(4, size // 2)
    gap = max(3, min(cell_width, cell_height) // 64)
    line_height = size + size // 3
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    row_label_width = max((measure.textlength(label, font=font) for label in row_labels), default=0)
    row_label_width = int(row_label_width) + 2 * pad
    width = row_label_width + columns * (cell_width + gap) + gap
    lines = [wrapped for line in header for wrapped in _wrap(line, font, measure, width - 2 * pad)]
    layout = GridLayout(cell_width, cell_height, rows, columns, header_height=pad + len(lines) * line_height,
                        column_label_height=line_height + pad, row_label_width=row_label_width, gap=gap,
                        font_size=size)
    image = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((pad, pad + index * line_height), line, fill=INK, font=font)
    for column, label in enumerate(column_labels):
        x, _ = layout.cell_origin(0, column)
        draw.text((x + (cell_width - measure.textlength(label, font=font)) / 2, layout.header_height + pad // 4),
                  label, fill=INK, font=font)
    for row, label in enumerate(row_labels):
        _, y = layout.cell_origin(row, 0)
        draw.text((pad, y + (cell_height - size) / 2), label, fill=INK, font=font)
    for row, row_tiles in enumerate(tiles):
        for column, tile in enumerate(row_tiles):
            x, y = layout.cell_origin(row, column)
            if tile is None:
                draw.rectangle((x, y, x + cell_width - 1, y + cell_height - 1), fill=FAILED_FILL)
                text_width = measure.textlength(failed_text, font=font)
                draw.text((x + (cell_width - text_width) / 2, y + (cell_height - size) / 2), failed_text,
                          fill=FAILED_INK, font=font)
                continue
            if tile.size != (cell_width, cell_height):
                tile = tile.resize((cell_width, cell_height))
            image.paste(tile.convert("RGB"), (x, y))
    if highlight is not None:
        x, y = layout.cell_origin(*highlight)
        # The frame fills the gap around the cell, so the picture itself is shown as rendered.
        draw.rectangle((x - gap, y - gap, x + cell_width + gap - 1, y + cell_height + gap - 1), outline=SUGGESTED,
                       width=gap)
    return image, layout


def grid_png_path(preview_dir: Path, when: float | None = None) -> Path:
    """``preview/grid-YYYYmmdd-HHMMSS.png`` (local time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    return Path(preview_dir) / f"grid-{stamp}.png"


def save_png(image: Image.Image, path: Path) -> Path:
    """Write the PNG atomically: a viewer (or a copy over SSH) never sees half a file."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow built without FreeType: the small bitmap font
        return ImageFont.load_default()


def _wrap(text: str, font: object, measure: object, width: float) -> list[str]:
    """Greedy word wrap to ``width`` pixels (a long prompt must not run off the image)."""
    words, lines, line = text.split(" "), [], ""
    for word in words:
        candidate = f"{line} {word}" if line else word
        if line and measure.textlength(candidate, font=font) > width:  # type: ignore[attr-defined]
            lines.append(line)
            line = word
        else:
            line = candidate
    return [*lines, line] if line or not lines else lines
