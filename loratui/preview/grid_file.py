"""``preview/grid.json``: the last grid's settings, cells, scores, suggestion and the user's pick (read/write).

Paths in the file are relative to the project root (POSIX), so a project copied elsewhere keeps its grid.
No torch, no PIL: the wizard and `loratui install` read this file cheaply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_text
from loratui.project import Project

GRID_FILE = "grid.json"
GRID_VERSION = 1


def grid_path(project: Project) -> Path:
    return project.preview_dir / GRID_FILE


@dataclass
class GridCell:
    """One cell as written: ``file`` is the cached picture (None when it failed), ``scores`` a CellScore dict."""

    checkpoint: str
    epoch: int | None
    weight: float
    file: str | None
    seconds: float | None = None
    scores: dict[str, Any] | None = None
    error: str | None = None
    label: str = ""  # the row's label, "ep04 (final)"

    @property
    def total(self) -> float | None:
        value = (self.scores or {}).get("total")
        return float(value) if isinstance(value, (int, float)) else None

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "epoch": self.epoch, "weight": self.weight, "label": self.label,
                "file": self.file, "seconds": self.seconds, "scores": self.scores, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridCell:
        return cls(checkpoint=str(data["checkpoint"]), epoch=_int_or_none(data.get("epoch")),
                   weight=float(data["weight"]), file=data.get("file"), seconds=_float_or_none(data.get("seconds")),
                   scores=data.get("scores") if isinstance(data.get("scores"), dict) else None,
                   error=data.get("error"), label=str(data.get("label") or ""))


@dataclass
class GridChoice:
    """A checkpoint at a weight: the suggestion (with its score) or the user's pick."""

    checkpoint: str
    epoch: int | None
    weight: float
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "epoch": self.epoch, "weight": self.weight, "score": self.score}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridChoice:
        return cls(checkpoint=str(data["checkpoint"]), epoch=_int_or_none(data.get("epoch")),
                   weight=float(data["weight"]), score=_float_or_none(data.get("score")))

    def matches(self, cell: GridCell) -> bool:
        return cell.checkpoint == self.checkpoint and cell.weight == self.weight


@dataclass
class GridFile:
    created: str
    png: str | None
    settings: dict[str, Any]
    cells: list[GridCell] = field(default_factory=list)
    suggestion: GridChoice | None = None
    picked: GridChoice | None = None
    version: int = GRID_VERSION

    def choice(self) -> GridChoice | None:
        """What to install: the user's pick, else the suggestion."""
        return self.picked or self.suggestion

    def cell(self, checkpoint: str, weight: float) -> GridCell | None:
        return next((c for c in self.cells if c.checkpoint == checkpoint and c.weight == weight), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "created": self.created,
            "png": self.png,
            "settings": self.settings,
            "cells": [c.to_dict() for c in self.cells],
            "suggestion": self.suggestion.to_dict() if self.suggestion else None,
            "picked": self.picked.to_dict() if self.picked else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridFile:
        return cls(
            version=int(data.get("version", GRID_VERSION)),
            created=str(data.get("created", "")),
            png=data.get("png"),
            settings=dict(data.get("settings") or {}),
            cells=[GridCell.from_dict(c) for c in data.get("cells") or []],
            suggestion=GridChoice.from_dict(data["suggestion"]) if data.get("suggestion") else None,
            picked=GridChoice.from_dict(data["picked"]) if data.get("picked") else None,
        )


def read_grid(project: Project) -> GridFile | None:
    """The last grid; None when none was rendered yet. A damaged file is a one-line error."""
    path = grid_path(project)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LoratuiError(f"{path}: cannot be read ({exc}): run `loratui grid {project.root}` to write it "
                           "again") from None
    try:
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return GridFile.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise LoratuiError(f"{path}: not a loratui grid file ({exc}): run `loratui grid {project.root}` to write "
                           "it again") from None


def write_grid(project: Project, grid: GridFile) -> Path:
    path = grid_path(project)
    atomic_write_text(path, json.dumps(grid.to_dict(), ensure_ascii=False, indent=2) + "\n")
    return path


def set_picked(project: Project, checkpoint: str, weight: float) -> GridFile:
    """Record the user's pick (the wizard's space key); it must be a cell of the current grid. Refused, in one
    line, while a grid job renders (its grid.json is about to change)."""
    from loratui.jobs.kinds import PREVIEW
    from loratui.jobs.locks import resource_lock

    with resource_lock(project, PREVIEW, "pick"):
        return _set_picked(project, checkpoint, weight)


def _set_picked(project: Project, checkpoint: str, weight: float) -> GridFile:
    grid = read_grid(project)
    if grid is None:
        raise LoratuiError(f"{grid_path(project)}: no grid yet: run `loratui grid {project.root}` first")
    cell = grid.cell(checkpoint, weight)
    if cell is None:
        raise LoratuiError(f"{checkpoint} at {weight:g} is not a cell of the current grid: pick one of its cells")
    grid.picked = GridChoice(checkpoint, cell.epoch, weight, cell.total)
    write_grid(project, grid)
    return grid


def find_cell(grid: GridFile, spec: str) -> GridCell:
    """The cell ``CHECKPOINT@WEIGHT`` names: CHECKPOINT is an epoch number (4), ``final``, or a file (its name or
    its path in the project); WEIGHT one of the grid's weights. One line naming what is wrong otherwise."""
    where, at, weight_text = spec.rpartition("@")
    if not at or not where.strip():
        raise LoratuiError(f"--pick {spec!r}: write CHECKPOINT@WEIGHT, e.g. 4@0.8, final@0.7 or "
                           "akari-000004.safetensors@0.8")
    try:
        weight = float(weight_text)
    except ValueError:
        raise LoratuiError(f"--pick {spec!r}: the weight {weight_text!r} is not a number") from None
    where = where.strip()
    rows: dict[str, GridCell] = {}
    for cell in grid.cells:
        rows.setdefault(cell.checkpoint, cell)
    if where.isdigit():
        found = [c for c in rows.values() if c.epoch == int(where) and "final" not in c.label] or \
                [c for c in rows.values() if c.epoch == int(where)]
    elif where.lower() == "final":
        found = [c for c in rows.values() if "final" in c.label]
    else:
        found = [c for c in rows.values() if where in (c.checkpoint, Path(c.checkpoint).name)]
    if not found:
        names = ", ".join(c.label or Path(c.checkpoint).name for c in rows.values())
        raise LoratuiError(f"--pick {spec!r}: no such checkpoint in the current grid (it has {names})")
    cell = grid.cell(found[0].checkpoint, weight)
    if cell is None:
        weights = ", ".join(f"{w:g}" for w in sorted({c.weight for c in grid.cells}))
        raise LoratuiError(f"--pick {spec!r}: the grid has no column {weight:g} (it has {weights}): render it "
                           "first with --weights")
    return cell


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
