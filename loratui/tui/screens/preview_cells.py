"""What the Preview screen shows, read without torch: the grid the current inputs would draw (the engine's own
plan, so the same cache keys as `loratui grid`), each cell's cached picture and scores, the last grid's
suggestion and pick, and the cells a running grid job reports in its events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loratui.errors import LoratuiError
from loratui.project import Project

QUEUED, RENDERING, DONE, FAILED = "queued", "rendering", "done", "failed"
# Settings that only add or remove cells: a grid rendered with other weights or checkpoints still holds this one's
# suggestion and pick for the cells both share.
CELL_SET_KEYS = ("weights", "checkpoints")


@dataclass
class CellView:
    row: int
    column: int
    checkpoint: str  # as grid.json stores it (project-relative where possible)
    label: str  # the row's label: "ep02", "ep04 (final)"
    weight: float
    key: str  # the engine's cache key: preview/cells/<key>.png
    file: Path | None = None
    scores: dict[str, Any] | None = None
    error: str | None = None
    state: str = QUEUED

    @property
    def title(self) -> str:
        from loratui.preview.grid_plan import format_weight

        return f"{self.label} at {format_weight(self.weight)}"

    @property
    def total(self) -> float | None:
        value = (self.scores or {}).get("total")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def damage_kinds(self) -> list[str]:
        return [str(kind) for kind in (self.scores or {}).get("damage_kinds") or []]

    @property
    def damaged(self) -> bool:
        damage = (self.scores or {}).get("damage")
        return isinstance(damage, (int, float)) and damage > 0


@dataclass
class GridView:
    cells: list[CellView] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)  # row labels
    weights: list[float] = field(default_factory=list)
    prompt: str = ""
    suggested: int | None = None  # index into cells
    picked: int | None = None
    in_grid: set[int] = field(default_factory=set)  # cells grid.json holds (a pick must be one of them)
    png: str | None = None  # the last grid PNG, as grid.json names it
    png_shape: tuple[int, int] = (0, 0)  # its weights x checkpoints
    same_grid: bool = False  # grid.json is this very grid (same settings, weights and checkpoints)
    error: str = ""  # the plan was refused (no checkpoints, a bad base model path): one line
    note: str = ""  # grid.json could not be read
    options: Any = None  # the GridOptions it was planned with

    def cell(self, row: int, column: int) -> CellView | None:
        index = row * len(self.weights) + column
        return self.cells[index] if self.rows and 0 <= index < len(self.cells) else None

    @property
    def missing(self) -> int:
        return sum(cell.state != DONE for cell in self.cells)

    @property
    def done(self) -> int:
        return sum(cell.state == DONE for cell in self.cells)


def read_view(project: Project, options: Any) -> GridView:
    """The grid ``options`` (a :class:`loratui.preview.grid_plan.GridOptions`) would draw, with what is cached."""
    from loratui.preview.grid import cells_dir
    from loratui.preview.grid_file import read_grid
    from loratui.preview.grid_plan import plan_grid, stored_path

    try:
        config = project.load()
        plan = plan_grid(project, config, options)
    except LoratuiError as exc:
        return GridView(error=str(exc), options=options)
    except OSError as exc:
        return GridView(error=f"{project.root}: cannot be read ({exc.strerror or exc})", options=options)
    view = GridView(rows=[c.label for c in plan.checkpoints], weights=list(plan.weights), prompt=plan.settings.prompt,
                    options=options)
    try:
        grid = read_grid(project)
    except LoratuiError as exc:
        grid, view.note = None, str(exc)
    settings = plan.settings.to_dict()
    comparable = grid is not None and _without(grid.settings) == _without(settings)
    view.same_grid = grid is not None and grid.settings == settings
    folder = cells_dir(project)
    for planned in plan.cells:
        cell = CellView(planned.row, planned.column, stored_path(planned.checkpoint.path, project.root),
                        planned.checkpoint.label, planned.weight, planned.key)
        png = folder / f"{planned.key}.png"
        if png.is_file():
            cell.file, cell.state, cell.scores = png, DONE, read_scores(folder / f"{planned.key}.json")
        elif comparable and grid is not None:
            old = grid.cell(cell.checkpoint, cell.weight)
            if old is not None and old.error:
                cell.error, cell.state = old.error, FAILED
        view.cells.append(cell)
    if grid is not None:
        view.png = grid.png
        view.png_shape = (len(grid.settings.get("weights") or []), len(grid.settings.get("checkpoints") or []))
    if comparable and grid is not None:
        where = {(c.checkpoint, c.weight): i for i, c in enumerate(view.cells)}
        view.in_grid = {where[(c.checkpoint, c.weight)] for c in grid.cells if (c.checkpoint, c.weight) in where}
        for name in ("suggestion", "picked"):
            choice = getattr(grid, name)
            index = where.get((choice.checkpoint, choice.weight)) if choice is not None else None
            setattr(view, "suggested" if name == "suggestion" else "picked", index)
    return view


def read_scores(meta: Path) -> dict[str, Any] | None:
    """A cached cell's scores (preview/cells/<key>.json, written by the engine); None when not scored."""
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    scores = data.get("scores") if isinstance(data, dict) else None
    return scores if isinstance(scores, dict) else None


def _without(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in CELL_SET_KEYS}


class CellEvents:
    """The ``cell`` events of the grid job being followed, read incrementally (only the lines written since the
    last poll), so cells fill in as the job finishes them."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._job: str | None = None
        self._reader = None

    def new_cells(self, status: Any) -> list[Any]:
        """The cell events written since the last call, for the job ``status`` (a JobStatus) describes."""
        from loratui.jobs import events as ev
        from loratui.jobs.event_log import EventReader

        if status.kind != "grid" or not status.events_path:
            return []
        if status.job_id != self._job or self._reader is None:
            self._job = status.job_id
            self._reader = EventReader(Path(status.events_path), status.events_offset)
        try:
            return [event for event in self._reader.read_new() if isinstance(event, ev.Cell)]
        except (OSError, LoratuiError):
            return []  # the file is being rotated or rewritten this instant: the next poll reads it


def apply_cell(view: GridView, event: Any, project: Project) -> CellView | None:
    """Put one ``cell`` event into the view (the job's plan is the view's: same options, same rows)."""
    if event.row is None or event.column is None:
        return None
    cell = view.cell(event.row, event.column)
    if cell is None or cell.weight != event.weight:
        return None
    if event.error:
        cell.state, cell.error, cell.file = FAILED, event.error, None
        return cell
    if event.file:
        path = Path(event.file)
        cell.file = path if path.is_absolute() else project.root / path
        cell.state, cell.error = DONE, None
        cell.scores = read_scores(cell.file.with_suffix(".json")) or (
            {"total": event.score} if event.score is not None else None)
    return cell
