"""`loratui grid DIR`: render the checkpoints x weights preview grid (PNG + grid.json), optionally as terminal text."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from loratui.commands.common import add_project_dir, open_project

if TYPE_CHECKING:
    from loratui.config import Config
    from loratui.preview.grid import GridResult
    from loratui.preview.grid_plan import GridOptions
    from loratui.project import Project

SAMPLER_CHOICES = ("euler_a", "euler", "dpmpp_2m", "ddim")  # config.SAMPLERS, without importing the engine here
SUGGESTED, PICKED, FAILED = "\u25c9", "\u2713", "\u2717"  # ◉ ✓ ✗


def register(commands: argparse._SubParsersAction) -> None:
    grid = commands.add_parser(
        "grid",
        help="render the preview grid: checkpoints x LoRA weights, scored, as a PNG (or text)",
        description="Render every checkpoint in output/ at every preview weight with the same seed and prompt "
        "(default \"{trigger}, smile\"), score the cells and suggest the best one. Writes "
        "preview/grid-<time>.png (rows: checkpoints, columns: weights) and preview/grid.json. Cells are cached: "
        "adding a weight renders only the new column. Flags change this run only, not loratui.toml.",
    )
    add_project_dir(grid)
    grid.add_argument("--checkpoints", nargs="+", metavar="C",
                      help="only these checkpoints: epoch numbers (2 4), final, or .safetensors files")
    grid.add_argument("--weights", metavar="W,W,...", help="LoRA weights, one column each (default: "
                      "preview.weights, 0.6,0.7,0.8,0.9,1.0); 0 is the base model without the LoRA; negative ones need "
                      "the = form: --weights=-0.5,0.5")
    grid.add_argument("--prompt", metavar="P", help="what every cell draws; {trigger} is the trigger word")
    grid.add_argument("--negative-prompt", metavar="P", help="what every cell should avoid")
    grid.add_argument("--seed", type=int, metavar="S", help="the seed every cell uses")
    grid.add_argument("--steps", type=int, metavar="N", help="sampling steps per cell (1-150)")
    grid.add_argument("--sampler", choices=SAMPLER_CHOICES, help="sampler of every cell")
    grid.add_argument("--size", metavar="WxH", help="cell size in pixels, multiples of 8 (default: the training "
                      "resolution in the dataset's most common aspect ratio)")
    grid.add_argument("--no-score", action="store_true", help="do not score the cells (no suggestion)")
    grid.add_argument("--text", action="store_true",
                      help="also print the grid in the terminal (half blocks, 24-bit colour) and a score table; "
                      "to a file or a pipe, or with NO_COLOR set, the pictures are plain characters")
    grid.add_argument("--detach", action="store_true",
                      help="run in the background (goes on if you log out); watch it with `loratui status DIR`")
    grid.add_argument("--json", action="store_true", help="print grid.json and the run's counts as JSON")
    grid.add_argument("--pick", metavar="CHECKPOINT@WEIGHT",
                      help="record your choice of the current grid's cells (4@0.8, final@0.7, or a file name "
                      "@ weight) without rendering; `loratui install` then uses it instead of the suggestion")
    grid.set_defaults(run=run_grid_command)


def run_grid_command(args: argparse.Namespace) -> int:
    from loratui.errors import LoratuiError
    from loratui.preview.grid_plan import plan_grid

    if args.detach and (args.text or args.json):
        flag = "--text" if args.text else "--json"
        raise LoratuiError(f"--detach runs in the background and prints nothing: drop {flag}, and run "
                           f"`loratui grid {args.dir} --text` once the job is done")
    if args.text and args.json:
        raise LoratuiError("--text and --json: choose one")
    project = open_project(args)
    if args.pick is not None:
        return _pick(project, args)
    config = project.load()
    options = grid_options(args)
    plan_grid(project, config, options)  # every bad option or missing file is refused here, before any job starts
    from loratui.jobs.command import command_line, options_from_args

    argv = command_line(args.dir, options_from_args("grid", args))
    if args.detach:
        from loratui.commands.jobs_cmd import detach

        return detach(args.dir, "grid", argv)
    result = _render(project, config, options, argv)
    if args.json:
        print(json.dumps({**result.grid.to_dict(), "run": result.facts()}, ensure_ascii=False, indent=2))
        return 0
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.text:
        from loratui.preview.text_view import colour_mode

        columns = shutil.get_terminal_size((80, 24)).columns
        for line in text_lines(result, columns, colour_mode(sys.stdout)):
            print(line)
    for line in summary(result, project, str(args.dir)):
        print(line)
    return 0


def _pick(project: Project, args: argparse.Namespace) -> int:
    from loratui.errors import LoratuiError
    from loratui.preview.grid_file import find_cell, grid_path, read_grid, set_picked

    rendering = [flag for flag in ("checkpoints", "weights", "prompt", "negative_prompt", "seed", "steps",
                                   "sampler", "size") if getattr(args, flag) is not None]
    if rendering or args.detach or args.text or args.json or args.no_score:
        raise LoratuiError("--pick only records a choice: run it on its own, without render options")
    grid = read_grid(project)
    if grid is None:
        raise LoratuiError(f"{grid_path(project)}: no grid yet: run `loratui grid {args.dir}` first")
    cell = find_cell(grid, args.pick)
    set_picked(project, cell.checkpoint, cell.weight)
    score = f" (score {cell.total:.2f})" if cell.total is not None else ""
    print(f"Picked {cell.label or Path(cell.checkpoint).name} at {cell.weight:g}{score}: "
          f"`loratui install {args.dir} --to LORA_DIR` installs it")
    return 0


def grid_options(args: argparse.Namespace) -> GridOptions:
    """The run's options from the flags, each checked with a message naming the flag."""
    from loratui.preview.grid_plan import GridOptions, parse_size, parse_weights, validate_options

    checkpoints = None
    if args.checkpoints:
        checkpoints = [part for item in args.checkpoints for part in item.split(",") if part.strip()]
    options = GridOptions(
        checkpoints=checkpoints,
        weights=parse_weights(args.weights) if args.weights is not None else None,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        seed=args.seed,
        steps=args.steps,
        sampler=args.sampler,
        size=parse_size(args.size) if args.size is not None else None,
        score=not args.no_score,
    )
    validate_options(options)
    return options


def _render(project: Project, config: Config, options: GridOptions, argv: list[str]) -> GridResult:
    from loratui.commands.progress_view import ProgressBar
    from loratui.jobs.runner import job
    from loratui.preview.grid import run_grid

    with job(project, "grid", argv):
        bar = ProgressBar()
        try:
            return run_grid(project, config, options, progress=bar)
        finally:
            bar.close()


# --- what is printed -------------------------------------------------------------------------------


def summary(result: GridResult, project: Project, shown_dir: str) -> list[str]:
    """The closing lines: counts, the PNG, the suggestion (and pick), what to do next."""
    from loratui.preview.grid import format_score

    plan = result.plan
    rows, columns = len(plan.checkpoints), len(plan.weights)
    rendered = [c.seconds for c in result.cells if c.rendered and c.seconds is not None]
    each = f" ({sum(rendered) / len(rendered):.2f} s each)" if rendered else ""
    lines = [f"Grid: {rows} checkpoint{'s' if rows != 1 else ''} x {columns} weight{'s' if columns != 1 else ''} = "
             f"{len(result.cells)} cells in {result.seconds:.1f} s",
             f"  {result.rendered} rendered{each}, {result.cached} from the cache, {result.failed} failed"]
    errors: list[str] = []
    for cell in result.cells:
        if cell.error and cell.error not in errors:  # a checkpoint that cannot load fails its whole row: once
            errors.append(cell.error)
            lines.append(f"  {FAILED} {cell.error}")
    lines.append(f"PNG: {result.grid.png} ({plan.settings.width}x{plan.settings.height} per cell)")
    best = result.suggested
    if best is not None:
        score = f" (score {format_score(best.scores.total)})" if best.scores else ""
        lines.append(f"Suggested: {best.cell.checkpoint.label} at {_weight(best.cell.weight)}{score}")
    elif not any(c.scores for c in result.cells):
        lines.append("Suggested: none (cells not scored: run without --no-score for a suggestion)")
    else:
        lines.append("Suggested: none (every cell looks damaged: train longer, or lower the learning rate)")
    picked = result.grid.picked
    if picked is not None:
        label = next((c.label for c in result.grid.cells if picked.matches(c)), picked.checkpoint)
        lines.append(f"Picked: {label} at {_weight(picked.weight)} (install uses your pick)")
    lines.append(f"Next: loratui install {shown_dir} --to LORA_DIR")
    return lines


def text_lines(result: GridResult, columns: int, colour: str) -> list[str]:
    """The grid as half-block pictures sized to ``columns``, then the table of cells and their scores;
    ``colour`` as :func:`loratui.preview.text_view.colour_mode` chose it for the output."""
    from loratui.preview.grid import open_picture
    from loratui.preview.text_view import grid_text

    plan = result.plan
    count = len(plan.weights)
    tiles = [[open_picture(c.file) if c.ok else None for c in result.cells[row * count:(row + 1) * count]]
             for row in range(len(plan.checkpoints))]
    header = f"{plan.settings.prompt}  (seed {plan.settings.seed})"
    lines = [header[:columns]]
    lines += grid_text(tiles, [c.label for c in plan.checkpoints], [_weight(w) for w in plan.weights], columns,
                       colour=colour)
    lines.append("")
    return lines + score_table(result)


def score_table(result: GridResult) -> list[str]:
    """checkpoint, weight, score, resemblance, flexibility, damage, and ◉ suggested / ✓ picked / ✗ failed."""
    from loratui.preview.grid import format_score

    picked = result.grid.picked
    rows = [("checkpoint", "weight", "score", "resemblance", "flexibility", "damage", "")]
    for index, cell in enumerate(result.cells):
        marks = (SUGGESTED if index == result.suggestion else "") + (
            PICKED if picked is not None and picked.checkpoint == result.grid.cells[index].checkpoint
            and picked.weight == cell.cell.weight else "")
        scores = cell.scores
        if cell.error:
            rows.append((cell.cell.checkpoint.label, _weight(cell.cell.weight), FAILED, "", "", "failed", marks))
            continue
        if scores is None:
            rows.append((cell.cell.checkpoint.label, _weight(cell.cell.weight), "-", "-", "-", "-", marks))
            continue
        damage = "none" if not scores.damage else f"{format_score(scores.damage)} {','.join(scores.damage_kinds)}"
        rows.append((cell.cell.checkpoint.label, _weight(cell.cell.weight), format_score(scores.total),
                     format_score(scores.resemblance), format_score(scores.flexibility), damage, marks))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 2, 3, 4}
    lines = []
    for row in rows:
        cells = [value.rjust(widths[i]) if i in right else value.ljust(widths[i]) for i, value in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    lines.append(f"{SUGGESTED} suggested  {PICKED} picked  {FAILED} failed")
    return lines


def _weight(weight: float) -> str:
    from loratui.preview.grid_plan import format_weight

    return format_weight(weight)
