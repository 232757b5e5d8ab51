"""`loratui grid DIR --pick CHECKPOINT@WEIGHT`: the user's choice recorded in grid.json, then used by install."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_data import make_project

from loratui.cli import main
from loratui.preview.grid_file import GridCell, GridChoice, GridFile, read_grid, write_grid


def _grid(project) -> None:
    cells = [GridCell(checkpoint, epoch, weight, f"preview/cells/{epoch}-{weight}.png",
                      scores={"total": 0.5 + weight / 10}, label=label)
             for checkpoint, epoch, label in (("output/p-000002.safetensors", 2, "ep02"),
                                              ("output/p.safetensors", 4, "ep04 (final)"))
             for weight in (0.6, 0.8)]
    write_grid(project, GridFile("2026-11-28T10:00:00", "preview/grid-x.png", {"weights": [0.6, 0.8]}, cells,
                                 suggestion=GridChoice("output/p.safetensors", 4, 0.8, 0.58)))


@pytest.fixture
def project(tmp_path: Path):
    project, _ = make_project(tmp_path, {"akari": (1, [(128, 128)])})
    _grid(project)
    return project


@pytest.mark.parametrize(("spec", "checkpoint", "weight"), [
    ("2@0.6", "output/p-000002.safetensors", 0.6),
    ("4@0.8", "output/p.safetensors", 0.8),
    ("final@0.6", "output/p.safetensors", 0.6),
    ("p-000002.safetensors@0.8", "output/p-000002.safetensors", 0.8),
    ("output/p.safetensors@0.6", "output/p.safetensors", 0.6),
])
def test_pick_records_the_cell(project, capsys, spec: str, checkpoint: str, weight: float) -> None:
    assert main(["grid", str(project.root), "--pick", spec]) == 0
    grid = read_grid(project)
    assert grid.picked is not None and (grid.picked.checkpoint, grid.picked.weight) == (checkpoint, weight)
    assert grid.choice() == grid.picked and grid.suggestion.weight == 0.8  # the suggestion stays as it was
    assert "installs it" in capsys.readouterr().out
    raw = json.loads((project.preview_dir / "grid.json").read_text(encoding="utf-8"))
    assert raw["picked"]["checkpoint"] == checkpoint


@pytest.mark.parametrize(("argv", "message"), [
    (["--pick", "3@0.6"], "no such checkpoint in the current grid (it has ep02, ep04 (final))"),
    (["--pick", "final@0.7"], "the grid has no column 0.7 (it has 0.6, 0.8)"),
    (["--pick", "final"], "write CHECKPOINT@WEIGHT"),
    (["--pick", "2@high"], "is not a number"),
    (["--pick", "2@0.6", "--weights", "0.5"], "--pick only records a choice"),
])
def test_bad_picks_are_one_line(project, capsys, argv: list[str], message: str) -> None:
    assert main(["grid", str(project.root), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert read_grid(project).picked is None


def test_pick_without_a_grid_says_to_render_first(tmp_path: Path, capsys) -> None:
    project, _ = make_project(tmp_path, {"akari": (1, [(128, 128)])})
    assert main(["grid", str(project.root), "--pick", "2@0.6"]) == 2
    assert "no grid yet: run `loratui grid" in capsys.readouterr().err
