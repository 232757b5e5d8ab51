"""Projects for the Preview screen's tests: kohya-format LoRA files (numpy, no torch) with a grid already rendered,
i.e. cached cell pictures, their scores and grid.json written as the engine writes them, under the engine's own
cache keys. Deterministic: the same colours, scores and suggestion every run."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from test_install import write_lora

from loratui.preview.grid import cells_dir
from loratui.preview.grid_file import GridCell, GridChoice, GridFile, write_grid
from loratui.preview.grid_plan import GridOptions, plan_grid, stored_path
from loratui.project import Project, create_project

WEIGHTS = (0.6, 0.8, 1.0)
DAMAGED = (0, 2)  # ep02 at 1.0: flat
LORA_FOLDER = Path("webui") / "models" / "Lora"


def checkpoint_project(root: Path, *, checkpoints: bool = True) -> Project:
    """Four made-up pictures, the trigger `akari`, 64 px cells at 0.6/0.8/1.0, and (unless told not to) three
    LoRA files: epoch 2, epoch 4 and the final one; an empty webui/models/Lora to install into."""
    from loratui.demo.images import build_demo_images

    build_demo_images(root / "pictures", count=4)
    project, _ = create_project(root / "akari", root / "pictures", "akari", trigger="akari")
    config = project.load()
    config.preview.width = config.preview.height = 64
    config.preview.weights = list(WEIGHTS)
    config.project.base_model = "models/tiny.safetensors"  # never read: the cells are written, not rendered
    project.save(config)
    if checkpoints:
        for epoch, seed in ((2, 1), (4, 2)):
            write_lora(project.output_dir / f"akari-{epoch:06d}.safetensors", epoch=epoch, seed=seed)
        write_lora(project.output_dir / "akari.safetensors", epoch=None, seed=3)
    (project.root / LORA_FOLDER).mkdir(parents=True)
    return project


def score_of(row: int, column: int) -> float:
    return 0.12 if (row, column) == DAMAGED else round(0.4 + 0.1 * row + 0.05 * column, 2)


def write_rendered_grid(project: Project, *, missing: tuple[tuple[int, int], ...] = ()) -> GridFile:
    """Cached cells (solid colours) with scores, and grid.json with the best cell suggested; ``missing`` cells
    have no picture (the next ^r renders them)."""
    config = project.load()
    plan = plan_grid(project, config, GridOptions())
    folder = cells_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    cells, best = [], None
    for cell in plan.cells:
        total = score_of(cell.row, cell.column)
        damaged = (cell.row, cell.column) == DAMAGED
        scores = {"resemblance": round(total + 0.1, 2), "flexibility": 0.6, "damage": 0.5 if damaged else 0.0,
                  "damage_kinds": ["flat"] if damaged else [], "total": total, "found_tags": []}
        file = None
        if (cell.row, cell.column) in missing:
            for suffix in (".png", ".json"):
                (folder / f"{cell.key}{suffix}").unlink(missing_ok=True)
        else:
            png = folder / f"{cell.key}.png"
            Image.new("RGB", (64, 64), (60 + 60 * cell.row, 40 + 50 * cell.column, 120)).save(png)
            (folder / f"{cell.key}.json").write_text(json.dumps({"key": cell.key, "seconds": 1.0,
                                                                 "scores": scores}), encoding="utf-8")
            file = stored_path(png, project.root)
            if not damaged and (best is None or total > best[1]):
                best = (cell, total)
        cells.append(GridCell(checkpoint=stored_path(cell.checkpoint.path, project.root), epoch=cell.checkpoint.epoch,
                              weight=cell.weight, file=file, seconds=1.0, scores=scores if file else None,
                              label=cell.checkpoint.label))
    suggestion = None
    if best is not None:
        chosen, total = best
        suggestion = GridChoice(stored_path(chosen.checkpoint.path, project.root), chosen.checkpoint.epoch,
                                chosen.weight, total)
    Image.new("RGB", (8, 8)).save(project.preview_dir / "grid-1200.png")
    grid = GridFile(created="2026-01-01T12:00:00+00:00", png="preview/grid-1200.png",
                    settings=plan.settings.to_dict(), cells=cells, suggestion=suggestion)
    write_grid(project, grid)
    return grid
