"""A page of pictures as half-cell tiles with a cursor (Images' ``^t``, design §4.1: 4x2 at 80x24, 6x4 at
120x40). Tiles are decoded in a thread from the project's thumbnail cache, so moving never waits for a file; the
cursor tile's label starts with ``▸`` and is drawn reversed, so it shows without colour too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from loratui.preview.text_view import HalfBlocks
from loratui.tui.widgets.picture import cell

MIN_TILE_WIDTH = 18  # 4 tiles across 78 columns, 6 across 118
MIN_TILE_HEIGHT = 6  # 5 rows of picture and the label
MAX_TILE_ROWS = 4


@dataclass(frozen=True)
class Tile:
    """One picture of the grid: ``path`` None when it cannot be drawn, ``why`` then says why."""

    path: Path | None
    label: str
    dim: bool = False  # left out (EXCL)
    why: str = ""


@dataclass(frozen=True)
class Layout:
    columns: int
    rows: int
    tile_width: int
    tile_height: int

    @property
    def per_page(self) -> int:
        return self.columns * self.rows


def layout_for(width: int, height: int) -> Layout:
    columns = max(1, (width + 1) // (MIN_TILE_WIDTH + 1))
    rows = max(1, min(MAX_TILE_ROWS, height // MIN_TILE_HEIGHT))
    tile_width = max(4, (width - (columns - 1)) // columns)
    return Layout(columns, rows, tile_width, max(2, height // rows))


class ThumbGrid(Widget, can_focus=True):
    """``set_tiles`` gives the pictures and the cursor; arrows move it and post :class:`Moved`."""

    DEFAULT_CSS = "ThumbGrid { width: 1fr; height: 1fr; }"
    BINDINGS = [
        Binding("left", "move(-1, 0)", show=False),
        Binding("right", "move(1, 0)", show=False),
        Binding("up", "move(0, -1)", show=False),
        Binding("down", "move(0, 1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
    ]

    class Moved(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, *, id: str | None = None, cursor_glyph: str = "▸") -> None:  # noqa: A002
        super().__init__(id=id)
        self.tiles: list[Tile] = []
        self.cursor = 0
        self.cursor_glyph = cursor_glyph
        self.drawn: dict[tuple[Path, int, int], HalfBlocks | str] = {}  # decoded tiles, or why one failed

    # --- what is shown --------------------------------------------------------------------------------------

    def set_tiles(self, tiles: list[Tile], cursor: int) -> None:
        self.tiles = tiles
        self.cursor = min(max(0, cursor), max(0, len(tiles) - 1))
        self._decode_page()
        self.refresh()

    def set_cursor(self, index: int) -> None:
        if self.tiles and 0 <= index < len(self.tiles) and index != self.cursor:
            old_page = self._page_start()
            self.cursor = index
            if self._page_start() != old_page:
                self._decode_page()
            self.refresh()

    @property
    def layout_now(self) -> Layout:
        return layout_for(self.size.width or 78, self.size.height or 12)

    def _page_start(self) -> int:
        per_page = self.layout_now.per_page
        return self.cursor // per_page * per_page

    def on_resize(self) -> None:
        self._decode_page()

    # --- keys -----------------------------------------------------------------------------------------------

    def action_move(self, dx: int, dy: int) -> None:
        if self.tiles:
            wanted = self.cursor + dx + dy * self.layout_now.columns
            self._go(min(max(0, wanted), len(self.tiles) - 1))

    def action_page(self, pages: int) -> None:
        if self.tiles:
            self._go(min(max(0, self.cursor + pages * self.layout_now.per_page), len(self.tiles) - 1))

    def action_jump(self, index: int) -> None:
        if self.tiles:
            self._go(index % len(self.tiles))

    def _go(self, index: int) -> None:
        if index != self.cursor:
            self.set_cursor(index)
            self.post_message(self.Moved(index))

    # --- decoding -------------------------------------------------------------------------------------------

    def _picture_size(self) -> tuple[int, int]:
        layout = self.layout_now
        return layout.tile_width, max(1, layout.tile_height - 1)

    def _decode_page(self) -> None:
        start = self._page_start()
        columns, rows = self._picture_size()
        wanted = [tile.path for tile in self.tiles[start:start + self.layout_now.per_page]
                  if tile.path is not None and (tile.path, columns, rows) not in self.drawn]
        if wanted:
            self._decode(wanted, columns, rows)

    @work(thread=True, exclusive=True, group="thumb-grid", exit_on_error=False)
    def _decode(self, paths: list[Path], columns: int, rows: int) -> None:
        from loratui.dataset.image_open import UnreadableImage
        from loratui.dataset.thumbnails import THUMBS_DIR, load_thumbnail
        from loratui.preview.text_view import half_blocks

        project = getattr(self.app, "project", None)
        cache_dir = project.state_dir / THUMBS_DIR if project is not None else None
        for path in paths:
            try:
                drawn: HalfBlocks | str = half_blocks(load_thumbnail(path, cache_dir), columns, rows)
            except UnreadableImage as exc:
                drawn = exc.reason
            except (OSError, ValueError) as exc:
                drawn = str(exc) or type(exc).__name__
            self.app.call_from_thread(self._decoded, (path, columns, rows), drawn)

    def _decoded(self, key: tuple[Path, int, int], drawn: HalfBlocks | str) -> None:
        self.drawn[key] = drawn
        self.refresh()

    # --- drawing --------------------------------------------------------------------------------------------

    def render(self) -> Text:
        if not self.tiles:
            return Text("No pictures to show. ^t goes back to the list.")
        layout = self.layout_now
        columns, picture_rows = self._picture_size()
        start = self._page_start()
        page = self.tiles[start:start + layout.per_page]
        text = Text(no_wrap=True, overflow="crop")
        for tile_row in range(layout.rows):
            row_tiles = page[tile_row * layout.columns:(tile_row + 1) * layout.columns]
            if not row_tiles:
                break
            for y in range(picture_rows):
                for n, tile in enumerate(row_tiles):
                    if n:
                        text.append(" ")
                    self._picture_line(text, tile, y, columns, picture_rows)
                text.append("\n")
            for n, tile in enumerate(row_tiles):
                if n:
                    text.append(" ")
                at_cursor = start + tile_row * layout.columns + n == self.cursor
                mark = self.cursor_glyph if at_cursor else " "
                label = f"{mark}{tile.label}"
                label = label if len(label) <= columns else label[:columns - 1] + "~"
                style = Style(reverse=True, bold=True) if at_cursor else Style(dim=tile.dim)
                text.append(f"{label:<{columns}}", style)
            text.append("\n")
        return text

    def _picture_line(self, text: Text, tile: Tile, y: int, columns: int, rows: int) -> None:
        drawn = self.drawn.get((tile.path, columns, rows)) if tile.path is not None else tile.why
        if isinstance(drawn, list) and drawn:
            width = len(drawn[0])
            top_pad = (rows - len(drawn)) // 2
            left = (columns - width) // 2
            line = y - top_pad
            if 0 <= line < len(drawn):
                text.append(" " * left)
                plain = getattr(self.app, "ascii_only", False)
                for top, bottom in drawn[line]:
                    text.append(*cell(top, bottom, plain))
                text.append(" " * (columns - width - left))
            else:
                text.append(" " * columns)
            return
        words = drawn if isinstance(drawn, str) and drawn else "loading…"
        middle = rows // 2
        line = words[:columns] if y == middle else ""
        text.append(f"{line:<{columns}}", Style(dim=True))
