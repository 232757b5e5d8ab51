"""Render the preview grid (checkpoints x weights), cache and score its cells, write the PNG and grid.json.

The pipeline loads once and each checkpoint once (see :class:`~loratui.preview.pipeline.PreviewPipeline`); a
cell switches the checkpoint and weight and renders with the same seed, prompt and settings as every other cell.
Cells are cached in ``preview/cells/<key>.png`` (+ ``<key>.json`` with seconds and scores) under a key of
everything that changes the picture, so adding a weight renders one new column, and a grid whose cells are all
cached loads no model.
"""

from __future__ import annotations

import datetime
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loratui.config import Config
from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_bytes, atomic_write_text
from loratui.preview.compose import grid_png_path, save_png
from loratui.preview.grid_file import GridCell, GridChoice, GridFile, read_grid, write_grid
from loratui.preview.grid_plan import GridOptions, GridPlan, PlannedCell, format_weight, plan_grid, stored_path
from loratui.progress import CancelToken, Progress, ProgressCallback, no_progress
from loratui.project import Project

if TYPE_CHECKING:
    from PIL import Image

    from loratui.jobs.runner import Job
    from loratui.preview.compose import GridLayout
    from loratui.preview.pipeline import PreviewPipeline
    from loratui.preview.score import CellScore, Scorer

CELLS_DIR = "cells"
RENDER_STAGE = "render"
SCORE_STAGE = "score"
LOAD_STAGE = "load model"


@dataclass
class CellResult:
    """One cell after the run: its picture (cached PNG), how long it took, its scores or why it failed."""

    cell: PlannedCell
    file: Path | None
    seconds: float | None = None
    scores: CellScore | None = None
    error: str | None = None
    rendered: bool = False  # rendered in this run (False: taken from the cache)

    @property
    def ok(self) -> bool:
        return self.error is None and self.file is not None


@dataclass
class GridResult:
    plan: GridPlan
    cells: list[CellResult]
    png: Path
    layout: GridLayout  # where each cell is in the PNG
    grid: GridFile
    suggestion: int | None  # index into cells
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def rendered(self) -> int:
        return sum(c.rendered for c in self.cells)

    @property
    def cached(self) -> int:
        return sum(c.ok and not c.rendered for c in self.cells)

    @property
    def failed(self) -> int:
        return sum(not c.ok for c in self.cells)

    @property
    def suggested(self) -> CellResult | None:
        return None if self.suggestion is None else self.cells[self.suggestion]

    def facts(self) -> dict[str, Any]:
        """The run's counts (`grid --json` and, without the PNG and warnings, the job's ``done`` event)."""
        best = self.suggested
        return {"png": self.grid.png, "cells": len(self.cells), "rendered": self.rendered, "cached": self.cached,
                "failed": self.failed, "seconds": round(self.seconds, 2),
                "suggestion": best.cell.label if best is not None else None, "warnings": list(self.warnings)}


def cells_dir(project: Project) -> Path:
    return project.preview_dir / CELLS_DIR


def run_grid(
    project: Project,
    config: Config,
    options: GridOptions | None = None,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> GridResult:
    """Render what the cache lacks, score new cells, then write ``preview/grid-<time>.png`` and ``grid.json``.

    A cell that fails (a LoRA file diffusers rejects) gets an ``error`` and the rest goes on; running out of
    memory stops the run with one line naming what to change; ``cancel`` (or `loratui stop DIR`) is checked between
    cells (the cells done so far stay cached). Runs as a ``grid`` job on the preview (joining the caller's).
    """
    from loratui.jobs.runner import job

    options = options or GridOptions()
    plan = plan_grid(project, config, options)
    with job(project, "grid") as handle:
        result = _run(project, config, plan, options, handle, progress, cancel)
        counts = {k: v for k, v in result.facts().items() if k not in ("png", "warnings")}
        handle.done(result=result.png, **counts)
        return result


def _run(project: Project, config: Config, plan: GridPlan, options: GridOptions, handle: Job,
         progress: ProgressCallback, cancel: CancelToken | None) -> GridResult:
    started = time.monotonic()
    runner = _Runner(project, config, plan, options, handle.progress(progress), handle.cancel_token(linked=cancel),
                     handle)
    try:
        results = runner.run()
    finally:
        runner.close()
    # Weight 0 is the base model itself (a reference column), and a negative weight inverts the LoRA: neither is a
    # checkpoint worth installing, so neither is suggested.
    scores = [r.scores if r.ok and r.cell.weight > 0 else None for r in results]
    suggestion = _suggest(scores)
    image, layout = _compose(plan, results, suggestion)
    grid = _grid_file(project, plan, results, suggestion)
    previous = _previous_grid(project)
    # Showing an unchanged grid again (`--text`, the wizard reopening) reuses its PNG instead of piling up copies.
    png = _unchanged_png(project, previous, grid) or save_png(image, grid_png_path(project.preview_dir))
    grid.png = stored_path(png, project.root)
    grid.picked = _kept_pick(previous, grid.cells)
    write_grid(project, grid)
    return GridResult(plan, results, png, layout, grid, suggestion, time.monotonic() - started, runner.warnings)


class _Runner:
    """The cells of one run: cache lookups, then renders and scores for what is missing, in grid order."""

    def __init__(self, project: Project, config: Config, plan: GridPlan, options: GridOptions,
                 progress: ProgressCallback, cancel: CancelToken | None, job: Job):
        self.project, self.config, self.plan, self.options = project, config, plan, options
        self.progress, self.cancel, self.job = progress, cancel, job
        self.folder = cells_dir(project)
        self.pipeline: PreviewPipeline | None = None
        self.scorer: Scorer | None = None
        self.warnings: list[str] = []
        self.load_errors: dict[Path, str] = {}

    def run(self) -> list[CellResult]:
        results: dict[str, CellResult] = {}  # by key: weight-0 cells of every row share one picture
        ordered: list[CellResult] = []
        todo = [cell for cell in self.plan.cells if self._needs_work(cell)]
        todo_keys = {cell.key for cell in todo}
        # Load what the missing cells need before the first one, so progress reads: load, (score setup), render.
        if any(not self._png(cell).is_file() for cell in todo):
            self._pipeline()
        if todo and self.options.score:
            self._scorer()
        done = 0
        for cell in self.plan.cells:
            if cell.key in results:
                ordered.append(_share(results[cell.key], cell))
                continue
            if cell.key not in todo_keys:
                result = self._cached(cell)
            else:
                if self.cancel is not None:
                    self.cancel.check()
                self.progress(Progress(RENDER_STAGE, done, len(todo_keys), cell.label))
                result = self._make(cell)
                done += 1
                self.progress(Progress(RENDER_STAGE, done, len(todo_keys), cell.label))
                self._cell_event(result)
            results[cell.key] = result
            ordered.append(result)
        return ordered

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    # --- the cache ---

    def _png(self, cell: PlannedCell) -> Path:
        return self.folder / f"{cell.key}.png"

    def _meta_path(self, cell: PlannedCell) -> Path:
        return self.folder / f"{cell.key}.json"

    def _meta(self, cell: PlannedCell) -> dict[str, Any]:
        try:
            data = json.loads(self._meta_path(cell).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _cached_scores(self, cell: PlannedCell) -> CellScore | None:
        data = self._meta(cell).get("scores")
        if not isinstance(data, dict):
            return None
        from loratui.preview.score import CellScore

        try:
            return CellScore.from_dict(data)
        except ValueError:
            return None

    def _needs_work(self, cell: PlannedCell) -> bool:
        if not self._png(cell).is_file():
            return True
        return self.options.score and self._cached_scores(cell) is None

    def _cached(self, cell: PlannedCell) -> CellResult:
        seconds = self._meta(cell).get("seconds")
        return CellResult(cell, self._png(cell), seconds if isinstance(seconds, (int, float)) else None,
                          self._cached_scores(cell))

    # --- new cells ---

    def _make(self, cell: PlannedCell) -> CellResult:
        png = self._png(cell)
        seconds = self._meta(cell).get("seconds")
        image = None
        rendered = False
        if png.is_file():  # rendered before, only its scores are missing
            image = open_picture(png)
        if image is None:
            error = self.load_errors.get(cell.checkpoint.path)
            if error is not None:
                return CellResult(cell, None, error=error)
            try:
                image, seconds = self._render(cell)
            except _CellFailed as failed:
                return CellResult(cell, None, error=str(failed))
            _save_picture(image, png)
            rendered = True
        scores = self._score(image) if self.options.score else None
        self._write_meta(cell, seconds, scores)
        return CellResult(cell, png, seconds if isinstance(seconds, (int, float)) else None, scores,
                          rendered=rendered)

    def _render(self, cell: PlannedCell) -> tuple[Image.Image, float]:
        pipeline = self._pipeline()
        checkpoint = None
        if cell.weight != 0:
            checkpoint = cell.checkpoint.path
            try:
                pipeline.load_lora(checkpoint)
            except LoratuiError as exc:
                if _is_memory_error(exc):
                    raise
                self.load_errors[cell.checkpoint.path] = str(exc)  # the row's other cells fail the same way
                raise _CellFailed(str(exc)) from None
        s = self.plan.settings
        began = time.monotonic()
        try:
            image = pipeline.render(s.prompt, s.negative_prompt, seed=s.seed, steps=s.steps, cfg_scale=s.cfg_scale,
                                    width=s.width, height=s.height, clip_skip=s.clip_skip, checkpoint=checkpoint,
                                    weight=cell.weight)
        except LoratuiError as exc:
            if _is_memory_error(exc):
                raise
            raise _CellFailed(str(exc)) from None  # the file changed on disk since it was loaded
        except (RuntimeError, ValueError) as exc:
            raise _CellFailed(f"{cell.label}: rendering failed ({_first_line(exc)})") from None
        return image, round(time.monotonic() - began, 3)

    def _pipeline(self) -> PreviewPipeline:
        if self.pipeline is None:
            from loratui.preview.pipeline import load_preview_pipeline

            self.progress(Progress(LOAD_STAGE, 0, 1, "base model"))
            self.pipeline = load_preview_pipeline(self.config, self.project.root, self.plan.settings.sampler)
            self.progress(Progress(LOAD_STAGE, 1, 1, "base model"))
        return self.pipeline

    def _scorer(self) -> Scorer:
        if self.scorer is None:
            from loratui.preview.score import Scorer

            self.scorer = Scorer.for_project(self.project, self.config, self.plan.settings.prompt,
                                             progress=self.progress)
            for warning in self.scorer.warnings:
                self._warn(warning)
        return self.scorer

    def _score(self, image: Image.Image) -> CellScore | None:
        try:
            return self._scorer().score(image)
        except LoratuiError as exc:
            self._warn(f"a cell could not be scored: {exc}")
            return None

    def _write_meta(self, cell: PlannedCell, seconds: Any, scores: CellScore | None) -> None:
        meta = {"key": cell.key, "checkpoint": None if cell.weight == 0 else stored_path(cell.checkpoint.path,
                                                                                            self.project.root),
                "weight": cell.weight, "seconds": seconds, "scores": scores.to_dict() if scores else None}
        atomic_write_text(self._meta_path(cell), json.dumps(meta, indent=2) + "\n")

    def _cell_event(self, result: CellResult) -> None:
        from loratui.jobs import events as ev

        cell = result.cell
        self.job.emit(ev.Cell(checkpoint=stored_path(cell.checkpoint.path, self.project.root),
                              epoch=cell.checkpoint.epoch, weight=cell.weight, row=cell.row, column=cell.column,
                              file=stored_path(result.file, self.project.root) if result.file else None,
                              seconds=result.seconds, score=result.scores.total if result.scores else None,
                              cached=not result.rendered, error=result.error))

    def _warn(self, message: str) -> None:
        if message in self.warnings:
            return
        self.warnings.append(message)
        self.job.warning(message)


class _CellFailed(Exception):
    """One cell could not be made; the message goes into its ``error`` and the grid goes on."""


def _share(result: CellResult, cell: PlannedCell) -> CellResult:
    """The same picture in another row (weight 0 is the base render for every checkpoint)."""
    return CellResult(cell, result.file, result.seconds, result.scores, result.error, rendered=False)


def _suggest(scores: list[CellScore | None]) -> int | None:
    if not any(s is not None for s in scores):
        return None
    from loratui.preview.score import suggest

    return suggest(scores)


# --- outputs ---------------------------------------------------------------------------------------


def _compose(plan: GridPlan, results: list[CellResult], suggestion: int | None) -> tuple[Image.Image, GridLayout]:
    from loratui.preview.compose import compose_grid

    s = plan.settings
    columns = len(plan.weights)
    tiles = [[open_picture(r.file) if r.ok and r.file else None for r in results[row * columns:(row + 1) * columns]]
             for row in range(len(plan.checkpoints))]
    header = [s.prompt, f"seed {s.seed}  \u00b7  {s.steps} steps  \u00b7  {s.sampler}  \u00b7  cfg {s.cfg_scale:g}  "
                        f"\u00b7  {s.width}x{s.height}"]
    highlight = None
    if suggestion is not None:
        best = results[suggestion]
        highlight = (best.cell.row, best.cell.column)
        score = f", score {format_score(best.scores.total)}" if best.scores else ""
        header.append(f"green frame: suggested {best.cell.label}{score}")
    return compose_grid(tiles, [c.label for c in plan.checkpoints], [format_weight(w) for w in plan.weights],
                        header, cell_size=(s.width, s.height), highlight=highlight)


def _grid_file(project: Project, plan: GridPlan, results: list[CellResult], suggestion: int | None) -> GridFile:
    root = project.root
    cells = [GridCell(checkpoint=stored_path(r.cell.checkpoint.path, root), epoch=r.cell.checkpoint.epoch,
                      weight=r.cell.weight, file=stored_path(r.file, root) if r.ok and r.file else None,
                      seconds=r.seconds, scores=r.scores.to_dict() if r.scores else None, error=r.error,
                      label=r.cell.checkpoint.label)
             for r in results]
    choice = None
    if suggestion is not None:
        best = cells[suggestion]
        choice = GridChoice(best.checkpoint, best.epoch, best.weight, best.total)
    return GridFile(created=datetime.datetime.now().astimezone().isoformat(timespec="seconds"), png=None,
                    settings=plan.settings.to_dict(), cells=cells, suggestion=choice)


def _previous_grid(project: Project) -> GridFile | None:
    try:
        return read_grid(project)
    except LoratuiError:
        return None  # a damaged grid.json is simply replaced


def _unchanged_png(project: Project, previous: GridFile | None, grid: GridFile) -> Path | None:
    """The previous grid's PNG when it shows exactly this grid (same settings, cells, scores, suggestion)."""
    if previous is None or not previous.png:
        return None
    path = project.root / previous.png
    same = (previous.settings == grid.settings and [c.to_dict() for c in previous.cells] == [
        c.to_dict() for c in grid.cells] and previous.suggestion == grid.suggestion)
    return path if same and path.is_file() else None


def _kept_pick(previous: GridFile | None, cells: list[GridCell]) -> GridChoice | None:
    """The previous grid's pick, while its checkpoint and weight are still a cell of this grid."""
    if previous is None or previous.picked is None:
        return None
    picked = previous.picked
    cell = next((c for c in cells if picked.matches(c)), None)
    if cell is None:
        return None
    return GridChoice(cell.checkpoint, cell.epoch, cell.weight, cell.total)


def format_score(value: float | None) -> str:
    """Scores as the wizard shows them: .71, 1.00, - for none."""
    if value is None:
        return "-"
    text = f"{value:.2f}"
    return text[1:] if text.startswith("0.") else text


# --- pictures ----------------------------------------------------------------------------------------


def open_picture(path: Path | None) -> Image.Image | None:
    from PIL import Image

    if path is None:
        return None
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError):
        return None


def _save_picture(image: Image.Image, path: Path) -> None:
    """Atomic, so a killed run never leaves half a PNG that a later run would take as cached."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _is_memory_error(exc: LoratuiError) -> bool:
    from loratui.preview.pipeline import OutOfMemory

    return isinstance(exc, OutOfMemory)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
