"""The preview grid as pictures (design §4.6 at 120x40): three checkpoints by up to five weights of half-cell
tiles around the cursor, each with its label above (the cursor's marked ▸) and its score and marks below. The
same keys as the score table; the screen owns the cursor and says what each tile shows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from loratui.tui.widgets.picture import Picture
from loratui.tui.widgets.score_grid import GRID_BINDINGS, GridKeys

TILE_ROWS, TILE_COLUMNS = 3, 5


@dataclass(frozen=True)
class Tile:
    label: str  # "▸ep04 at 0.8"
    file: Path | None  # the cell's picture; None while it is not rendered
    line: str  # ".55✓", "? not rendered", "✗ failed"


class TileView(GridKeys, Vertical, can_focus=True):
    BINDINGS = GRID_BINDINGS
    DEFAULT_CSS = """
    TileView { height: 1fr; }
    TileView .tile-row { height: 1fr; }
    TileView .tile { width: 1fr; padding: 0 1 0 0; }
    TileView .tile Picture { height: 1fr; }
    TileView .tile-label, TileView .tile-line { height: 1; }
    """

    def compose(self) -> ComposeResult:
        for row in range(TILE_ROWS):
            with Horizontal(classes="tile-row"):
                for column in range(TILE_COLUMNS):
                    with Vertical(classes="tile", id=f"tile-{row}-{column}"):
                        yield Static("", classes="tile-label", markup=False)
                        yield Picture()
                        yield Static("", classes="tile-line", markup=False)

    def show_tiles(self, tiles: list[list[Tile]]) -> None:
        """``tiles`` row by row (at most 3 x 5); the places without a tile are left blank."""
        for row in range(TILE_ROWS):
            for column in range(TILE_COLUMNS):
                box = self.query_one(f"#tile-{row}-{column}")
                tile = tiles[row][column] if row < len(tiles) and column < len(tiles[row]) else None
                box.query_one(".tile-label", Static).update(tile.label if tile else "")
                box.query_one(Picture).show(tile.file if tile else None)
                box.query_one(".tile-line", Static).update(tile.line if tile else "")
