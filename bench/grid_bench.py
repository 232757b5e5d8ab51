"""Preview grid time against cells x one single render, in the same run (no per-cell reloads).

usage: python bench/grid_bench.py [--weights 0.6,0.7,0.8,0.9,1.0] [--repeats 3] [--rounds 2] [--steps N]

On the demo project (tiny SD1.5 single file, 128 px cells, the demo's preview settings), trained once to get its
two checkpoints (epoch 2 and the final file):

* single: the preview pipeline with the final checkpoint loaded as an adapter at weight 0.8; one warm-up render,
  then ``--repeats`` timed renders (`PreviewPipeline.render`, nothing else), before and again after each grid,
  the median of both sets (the machine's speed drifts between phases);
* grid: `run_grid` on an empty cell cache, timed from the first cell's start to the last cell's end (progress
  events), so it holds every per-cell cost: loading each checkpoint once, switching adapters, rendering, saving
  the cell PNG and its record, and scoring when on. The one-time model load, the scorer's setup and writing the
  composed PNG are reported apart, not in the ratio.

Ratio = grid time / (cells x single), without scoring (the render path) and with it. Goal (issue 5 item 7):
<= 1.15 for the render path. This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

GOAL = 1.15


def make_project(root: Path):
    """The demo project, prepared, tagged and trained (its default 4 epochs, a checkpoint every 2)."""
    from loratui.dataset.prepare import prepare_project
    from loratui.dataset.tagger import tag_dataset
    from loratui.demo.build import build_demo_project
    from loratui.training.loop import run_training

    project = build_demo_project(root).project
    prepare_project(project)
    tag_dataset(project, project.load())
    config = project.load()
    config.training.save_state = False
    project.save(config)
    run_training(project, config)
    return project, project.load()


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_single(project, config, options, repeats: int) -> list[float]:
    """Seconds of one cell's render (final checkpoint at 0.8) after a warm-up, ``repeats`` times, own pipeline."""
    from loratui.preview.grid_plan import plan_grid
    from loratui.preview.pipeline import load_preview_pipeline

    plan = plan_grid(project, config, options)
    s = plan.settings
    pipeline = load_preview_pipeline(config, project.root, s.sampler)
    checkpoint = plan.checkpoints[-1].path
    pipeline.load_lora(checkpoint)
    seconds = []
    for index in range(repeats + 1):
        _sync()
        began = time.perf_counter()
        pipeline.render(s.prompt, s.negative_prompt, seed=s.seed, steps=s.steps, cfg_scale=s.cfg_scale,
                        width=s.width, height=s.height, clip_skip=s.clip_skip, checkpoint=checkpoint, weight=0.8)
        _sync()
        if index:  # the first is the warm-up
            seconds.append(time.perf_counter() - began)
    pipeline.close()
    return seconds


def time_grid(project, config, options) -> dict[str, float]:
    """run_grid on an empty cache: the cells' span, the checkpoint loads within it, the whole call, the cells."""
    from loratui.preview import pipeline as pipeline_module
    from loratui.preview.grid import cells_dir, run_grid

    shutil.rmtree(cells_dir(project), ignore_errors=True)
    marks: dict[str, float] = {"loads": 0.0}
    load_lora = pipeline_module.PreviewPipeline.load_lora

    def timed_load(self, path):
        known = str(path) in self.adapters
        began = time.perf_counter()
        try:
            return load_lora(self, path)
        finally:
            if not known:
                marks["loads"] += time.perf_counter() - began

    def progress(p) -> None:
        if p.stage == "render" and p.done == 0 and "first" not in marks:
            _sync()
            marks["first"] = time.perf_counter()
        if p.stage == "render" and p.done == p.total:
            _sync()
            marks["last"] = time.perf_counter()

    pipeline_module.PreviewPipeline.load_lora = timed_load
    try:
        began = time.perf_counter()
        result = run_grid(project, config, options, progress=progress)
        total = time.perf_counter() - began
    finally:
        pipeline_module.PreviewPipeline.load_lora = load_lora
    assert result.rendered == len({c.cell.key for c in result.cells}) and result.failed == 0
    renders = sum(c.seconds or 0.0 for c in result.cells if c.rendered)
    return {"cells": result.rendered, "span": marks["last"] - marks["first"], "loads": marks["loads"],
            "renders": renders, "checkpoints": len(result.plan.checkpoints), "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="0.6,0.7,0.8,0.9,1.0", help="grid columns (default 0.6,...,1.0)")
    parser.add_argument("--steps", type=int, help="sampling steps (default: the demo's preview.steps)")
    parser.add_argument("--repeats", type=int, default=3, help="timed single renders before and after each "
                        "grid (default 3 + 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both grids (default 3)")
    args = parser.parse_args()
    from loratui.hf_logging import quiet_hf_libraries

    quiet_hf_libraries()
    import torch

    from loratui.preview.grid_plan import GridOptions, parse_weights, plan_grid

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory(prefix="loratui-grid-bench-") as tmp:
        started = time.perf_counter()
        project, config = make_project(Path(tmp) / "demo")
        weights = parse_weights(args.weights)
        plan = plan_grid(project, config, GridOptions(weights=weights, steps=args.steps))
        p = plan.settings
        print(f"demo project trained in {time.perf_counter() - started:.0f} s; cells {p.width}x{p.height} px, "
              f"{p.steps} steps, {p.sampler}, cfg {p.cfg_scale:g}, weights {args.weights}; single = median of "
              f"{args.repeats} renders before and {args.repeats} after each grid", flush=True)
        print(f"{'round':>5} {'scoring':<8} {'cells':>5} {'single s':>9} {'grid span s':>12} {'s/cell':>7} "
              f"{'ratio':>6} {'ckpt loads s':>13} {'ratio w/o loads':>16} {'span/renders':>13} "
              f"{'whole run_grid s':>17}", flush=True)
        ratios: dict[tuple[bool, str], list[float]] = {}
        for round_index in range(1, args.rounds + 1):
            for score in (False, True):
                options = GridOptions(weights=weights, steps=p.steps, score=score)
                before = time_single(project, config, options, args.repeats)
                grid = time_grid(project, config, options)
                single = statistics.median(before + time_single(project, config, options, args.repeats))
                ratio = grid["span"] / (grid["cells"] * single)
                without = (grid["span"] - grid["loads"]) / (grid["cells"] * single)
                ratios.setdefault((score, "all"), []).append(ratio)
                ratios.setdefault((score, "without"), []).append(without)
                print(f"{round_index:>5} {'on' if score else 'off':<8} {grid['cells']:>5.0f} {single:>9.3f} "
                      f"{grid['span']:>12.2f} {grid['span'] / grid['cells']:>7.3f} {ratio:>6.3f} "
                      f"{grid['loads']:>13.2f} {without:>16.3f} {grid['span'] / grid['renders']:>13.3f} "
                      f"{grid['total']:>17.2f}", flush=True)
        for score in (False, True):
            ratio = statistics.median(ratios[score, "all"])
            verdict = "within" if ratio <= GOAL else "above"
            label = "with scoring" if score else "render path (no scoring)"
            print(f"ratio grid / (cells x single), {label}: {ratio:.3f} (median; {verdict} the goal of {GOAL:.2f}); "
                  f"without the {grid['checkpoints']:.0f} checkpoint loads: "
                  f"{statistics.median(ratios[score, 'without']):.3f}")


if __name__ == "__main__":
    main()
