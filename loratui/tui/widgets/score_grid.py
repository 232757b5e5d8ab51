"""The preview grid as a score table (design §4.6): checkpoints down, weights across, each cell's score with its
state written beside it (◉ suggested, ✓ picked, ✗ damaged or failed, ? not rendered yet, ... rendering) and the
cursor drawn as ▸, so nothing depends on colour. Rows and columns scroll to keep the cursor in view. The cursor
and the cells belong to the screen; this widget draws them and turns keys into the screen's moves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from textual.binding import Binding
from textual.widgets import Static

LABEL_WIDTH = 10  # a space, "ep04 fin", a space
CELL_WIDTH = 7  # the cursor right before a value of up to 4 characters, then two marks


@dataclass(frozen=True)
class DrawnCell:
    """What one cell shows: a value of at most 4 characters (".71", "✗.12", "?", "...") and its marks."""

    value: str
    marks: str = ""


class GridHost(Protocol):
    def move_cursor(self, rows: int, columns: int) -> None: ...
    def cursor_to(self, row: int | None, column: int | None) -> None: ...
    def pick_cell(self) -> None: ...
    def zoom_cell(self) -> None: ...
    def say(self, message: str, level: str = "i") -> None: ...


# The grid's keys, for the score table and the pictures view alike: arrows move, space picks, enter zooms. (Each
# widget class lists them itself: Textual reads BINDINGS from its widget classes only, not from a mixin.)
GRID_BINDINGS = [
        Binding("space", "pick", "Pick", id="preview.pick"),
        Binding("enter", "zoom", "Zoom", key_display="enter", id="preview.zoom"),
        Binding("up", "move(-1,0)", show=False),
        Binding("down", "move(1,0)", show=False),
        Binding("left", "move(0,-1)", show=False),
        Binding("right", "move(0,1)", show=False),
        Binding("pageup", "move(-10,0)", show=False),
        Binding("pagedown", "move(10,0)", show=False),
        Binding("home", "edge('first')", show=False),
        Binding("end", "edge('last')", show=False),
]


class GridKeys:
    """The grid's actions, for the score table and the pictures view alike."""

    def _host(self) -> GridHost | None:
        screen = self.screen  # type: ignore[attr-defined]
        return screen if hasattr(screen, "move_cursor") else None

    def action_move(self, rows: int, columns: int) -> None:
        if (host := self._host()) is not None:
            host.move_cursor(rows, columns)

    def action_edge(self, which: str) -> None:
        if (host := self._host()) is not None:
            host.cursor_to(0 if which == "first" else 10**6, None)

    def action_pick(self) -> None:
        if (host := self._host()) is not None:
            host.pick_cell()

    def action_zoom(self) -> None:
        if (host := self._host()) is not None:
            host.zoom_cell()

    def on_key(self, event) -> None:  # noqa: ANN001
        # lazygit and htop habits: `q` does nothing here, and says what quits (design §2.7).
        if event.key == "q" and (host := self._host()) is not None:
            event.stop()
            host.say("^q quits (a running job keeps going); q does nothing here.")


class ScoreGrid(GridKeys, Static, can_focus=True):
    BINDINGS = GRID_BINDINGS
    DEFAULT_CSS = "ScoreGrid { height: 1fr; width: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("", id=id, markup=False)
        self.rows: list[str] = []
        self.columns: list[str] = []
        self.cells: list[list[DrawnCell]] = []
        self.cursor: tuple[int, int] = (0, 0)
        self.cursor_mark = "▸"
        self._top = 0  # the first row drawn
        self._left = 0  # the first column drawn
        self.shown_columns: tuple[int, int] = (0, 0)  # [first, last) of the columns on screen

    def show_table(self, rows: list[str], columns: list[str], cells: list[list[DrawnCell]],
                   cursor: tuple[int, int], cursor_mark: str) -> None:
        self.rows, self.columns, self.cells = rows, columns, cells
        self.cursor, self.cursor_mark = cursor, cursor_mark
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    def fits(self) -> tuple[int, int]:
        """How many rows and columns of cells fit (the header takes one line)."""
        width, height = self.size.width or 44, self.size.height or 13
        return max(1, height - 1), max(1, (width - LABEL_WIDTH) // CELL_WIDTH)

    def redraw(self) -> None:
        self.update(self.text())

    def text(self) -> str:
        if not self.rows:
            return ""
        fit_rows, fit_columns = self.fits()
        row, column = self.cursor
        self._top = _scrolled(self._top, row, fit_rows, len(self.rows))
        self._left = _scrolled(self._left, column, fit_columns, len(self.columns))
        first, last = self._left, min(len(self.columns), self._left + fit_columns)
        self.shown_columns = (first, last)
        lines = [" " * LABEL_WIDTH + "".join(f" {label:>4}  " for label in self.columns[first:last])]
        for index in range(self._top, min(len(self.rows), self._top + fit_rows)):
            label = _row_label(self.rows[index])
            drawn = []
            for col in range(first, last):
                cell = self.cells[index][col]
                mark = self.cursor_mark if (index, col) == (row, column) else " "
                drawn.append(f"{mark + cell.value:>5}{cell.marks:<2}")
            lines.append(f" {label:<{LABEL_WIDTH - 1}}" + "".join(drawn))
        return "\n".join(line.rstrip() for line in lines)


def _scrolled(start: int, cursor: int, fit: int, count: int) -> int:
    """The first line (or column) to draw so that ``cursor`` is in view, moving as little as possible."""
    if cursor < start:
        start = cursor
    elif cursor >= start + fit:
        start = cursor - fit + 1
    return max(0, min(start, max(0, count - fit)))


def _row_label(label: str) -> str:
    """`ep04 (final)` -> `ep04 fin`; a long file stem is cut with `…` (the cell box shows the whole name)."""
    if label.endswith(" (final)"):
        label = label[: -len(" (final)")] + " fin"
    width = LABEL_WIDTH - 2
    return label if len(label) <= width else label[: width - 1] + "…"
