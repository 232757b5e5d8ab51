"""A picture as half-cell blocks (▀ with 24-bit fg/bg), which work over any SSH and in tmux; decoded in a thread
(through the project's thumbnail cache in .loratui/thumbs/) so a key never waits for a large file, with
`loading…` meanwhile and the reason when a file cannot be read.
``overlay`` marks cells (a crop box's edge) with a character drawn over the picture, visible without colour."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual import work
from textual.widgets import Static

from loratui.preview.text_view import UPPER_HALF, HalfBlocks, half_blocks

# (columns, rows) of the drawing -> the cells to mark: {(x, y): character}
Overlay = Callable[[int, int], dict[tuple[int, int], str]]


def cell(top: tuple[int, int, int], bottom: tuple[int, int, int], plain: bool = False) -> tuple[str, Style]:
    """One cell of a picture: ``▀`` in the top pixel's colour on the bottom one's; under ``--ascii`` a space on
    their mean (half the detail upwards, but no block character, which CJK terminals draw two cells wide)."""
    if plain:
        mean = tuple((a + b) // 2 for a, b in zip(top, bottom, strict=True))
        return " ", Style(bgcolor=f"rgb{mean}")
    return UPPER_HALF, Style(color=f"rgb{top}", bgcolor=f"rgb{bottom}")


def blocks_text(rows: HalfBlocks, marks: dict[tuple[int, int], str] | None = None, plain: bool = False) -> Text:
    text = Text()
    for y, row in enumerate(rows):
        for x, (top, bottom) in enumerate(row):
            mark = (marks or {}).get((x, y))
            if mark:
                text.append(mark, Style(color="black", bgcolor="white", bold=True))
            else:
                text.append(*cell(top, bottom, plain))
        if y < len(rows) - 1:
            text.append("\n")
    return text


class Picture(Static):
    """Shows one file (``show(path)``) fitted to the widget's size; the overlay is redrawn on ``redraw()``."""

    DEFAULT_CSS = "Picture { width: 1fr; height: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("", id=id)
        self.path: Path | None = None
        self.rows: HalfBlocks | None = None
        self.overlay: Overlay | None = None
        self.fitted: tuple[int, int] = (0, 0)  # the cells the drawing was made for

    def show(self, path: Path | None, overlay: Overlay | None = None) -> None:
        self.overlay = overlay
        if path == self.path and self.rows is not None:
            self.redraw()
            return
        self.path, self.rows = path, None
        if path is None:
            self.update("")
            return
        self.update("loading…")
        self._start_decode(path)

    def _start_decode(self, path: Path) -> None:
        self.fitted = (max(4, self.size.width or 30), max(2, self.size.height or 12))
        self._decode(path, *self.fitted)

    def on_resize(self) -> None:
        # The box changed (terminal resized, a column beside it filled in): draw the picture for the new size;
        # the old drawing stays until then.
        if self.path is not None and (max(4, self.size.width), max(2, self.size.height)) != self.fitted:
            self._start_decode(self.path)

    @work(thread=True, exclusive=True, group="picture", exit_on_error=False)
    def _decode(self, path: Path, columns: int, rows: int) -> None:
        from loratui.dataset.image_open import UnreadableImage
        from loratui.dataset.thumbnails import THUMBS_DIR, load_thumbnail

        # Through the project's thumbnail cache: a large file is decoded once, then its small copy is read.
        project = getattr(self.app, "project", None)
        cache_dir = project.state_dir / THUMBS_DIR if project is not None else None
        try:
            drawn = half_blocks(load_thumbnail(path, cache_dir), columns, rows)
        except UnreadableImage as exc:
            self.app.call_from_thread(self._failed, path, exc.reason)
            return
        except (OSError, ValueError) as exc:
            self.app.call_from_thread(self._failed, path, str(exc) or type(exc).__name__)
            return
        self.app.call_from_thread(self._decoded, path, drawn, (columns, rows))

    def _decoded(self, path: Path, rows: HalfBlocks, fitted: tuple[int, int]) -> None:
        if path != self.path or fitted != self.fitted:
            return  # the cursor moved on (or the box changed size) while this one decoded
        self.rows = rows
        self.redraw()

    def _failed(self, path: Path, reason: str) -> None:
        if path == self.path:
            self.update(f"✗ cannot show {path.name}: {reason}")

    def redraw(self) -> None:
        if self.rows is None:
            return
        columns = len(self.rows[0]) if self.rows else 0
        marks = self.overlay(columns, len(self.rows)) if self.overlay else None
        self.update(blocks_text(self.rows, marks, getattr(self.app, "ascii_only", False)))
