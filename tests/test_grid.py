"""The preview grid on the tiny SD1.5: cells, labels, PNG layout, weight 0 = base, the cell cache, CLI and job."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before diffusers/huggingface_hub are imported

import numpy as np
import pytest
from job_events import job_events
from PIL import Image
from test_data import make_project

from loratui.cli import main
from loratui.errors import LoratuiError
from loratui.preview.grid import cells_dir, run_grid
from loratui.preview.grid_file import read_grid, set_picked
from loratui.preview.grid_plan import GridOptions, plan_grid, training_bucket

WEIGHTS = [0.0, 0.5, 0.8, 1.0, 1.5]
SIZE = 64
STEPS = 2
CLI_OPTIONS = ["--weights", ",".join(str(w) for w in WEIGHTS), "--steps", str(STEPS)]


def _lora_file(pipe, path: Path, seed: int, epoch: int, *, text_encoders: bool = True, rank: int = 4) -> Path:
    """A kohya-format LoRA for the tiny model with random up weights (a freshly trained one would be ~zero)."""
    import torch
    from safetensors.torch import save_file

    from loratui.lora.file import add_lora_adapters, kohya_state_dict

    network = add_lora_adapters(pipe, rank, 4.0, text_encoders=text_encoders, adapter_name=f"a{seed}")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for model in network.models.values():
            for name, param in model.named_parameters():
                if f"lora_B.a{seed}" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(kohya_state_dict(network), str(path), metadata={"ss_epoch": str(epoch), "ss_network_dim": "4"})
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_sd15_dir: Path):
    """A project on the tiny SD1.5 with two checkpoints (epoch 2, final = epoch 4) and the tiny tagger."""
    from loratui.demo.sd_models import tiny_sd15_pipeline
    from loratui.demo.tagger_model import build_tiny_tagger

    root = tmp_path_factory.mktemp("grid")
    project, config = make_project(root, {"akari": (2, [(128, 128)] * 4)})
    config.project.base_model = str(tiny_sd15_dir)
    config.tagging.model = str(build_tiny_tagger(root / "tagger"))
    config.preview.width = config.preview.height = SIZE
    config.preview.cfg_scale = 5.0
    project.save(config)
    # A pipeline each: one LoRA per model, as a training run makes them (two on one model is what peft warns of).
    _lora_file(tiny_sd15_pipeline(0), project.output_dir / "project-000002.safetensors", seed=1, epoch=2)
    _lora_file(tiny_sd15_pipeline(0), project.output_dir / "project.safetensors", seed=2, epoch=4)
    return project


@pytest.fixture(scope="module")
def first(project):
    """The 2 x 5 grid, rendered and scored once for the module."""
    return run_grid(project, project.load(), GridOptions(weights=WEIGHTS, steps=STEPS))


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_a_2x5_grid_has_its_cells_labels_and_png_layout(project, first) -> None:
    assert first.rendered == 9 and first.cached == 1 and first.failed == 0  # weight 0 is one render for both rows
    assert [c.label for c in first.plan.checkpoints] == ["ep02", "ep04 (final)"]
    grid = read_grid(project)
    assert grid is not None and len(grid.cells) == 10
    assert [(c.checkpoint, c.epoch, c.weight) for c in grid.cells] == [
        (f"output/{name}", epoch, weight)
        for name, epoch in (("project-000002.safetensors", 2), ("project.safetensors", 4)) for weight in WEIGHTS]
    assert grid.settings["weights"] == WEIGHTS and grid.settings["steps"] == STEPS
    assert grid.settings["prompt"] == "akari, smile" and (grid.settings["width"], grid.settings["height"]) == (64, 64)
    assert grid.png == first.png.relative_to(project.root).as_posix() and grid.png.startswith("preview/grid-")
    for cell in grid.cells:
        assert cell.error is None and (project.root / cell.file).is_file() and cell.file.startswith("preview/cells/")
        assert cell.scores is not None and 0.0 <= cell.scores["total"] <= 1.0
    # The PNG: header and label bands, then the cells exactly as cached, one per row and column.
    with Image.open(first.png) as png:
        composed = np.asarray(png.convert("RGB"))
    layout = first.layout
    assert composed.shape[:2] == (layout.height, layout.width) and (layout.rows, layout.columns) == (2, 5)
    assert layout.height == layout.top + 2 * (SIZE + layout.gap) + layout.gap and layout.top > SIZE // 2
    assert layout.width == layout.left + 5 * (SIZE + layout.gap) + layout.gap and layout.left > 20
    for index, cell in enumerate(grid.cells):
        x, y = layout.cell_origin(index // 5, index % 5)
        assert np.array_equal(composed[y:y + SIZE, x:x + SIZE], _pixels(project.root / cell.file))
    assert composed[: layout.top].min() < 100  # the header and column labels are drawn in dark ink


def test_weight_0_is_the_base_models_own_render(project, first) -> None:
    from loratui.preview.pipeline import load_preview_pipeline

    config = project.load()
    settings = first.plan.settings
    pipeline = load_preview_pipeline(config, project.root, settings.sampler)

    def render(checkpoint, weight):
        return np.asarray(pipeline.render(settings.prompt, settings.negative_prompt, seed=settings.seed, steps=STEPS,
                                          cfg_scale=settings.cfg_scale, width=SIZE, height=SIZE,
                                          clip_skip=settings.clip_skip, checkpoint=checkpoint, weight=weight))

    base = render(None, 1.0)  # no LoRA loaded at all yet
    cells = {(c.cell.row, c.cell.weight): _pixels(c.file) for c in first.cells}
    assert np.array_equal(cells[0, 0.0], base) and np.array_equal(cells[1, 0.0], base)
    # Switching adapters and weights back and forth gives each cell's own picture every time.
    a, b = (c.path for c in first.plan.checkpoints)
    sequence = [(a, 1.0), (a, 0.0), (a, 1.0), (b, 1.0), (b, 0.0), (a, 0.5), (None, 1.0)]
    expected = [cells[0, 1.0], base, cells[0, 1.0], cells[1, 1.0], base, cells[0, 0.5], base]
    for (checkpoint, weight), picture in zip(sequence, expected, strict=True):
        assert np.array_equal(render(checkpoint, weight), picture), (checkpoint, weight)
    pipeline.close()
    # ...and the LoRA does change the picture, differently per checkpoint and weight.
    assert not np.array_equal(cells[0, 1.0], cells[0, 0.0])
    assert not np.array_equal(cells[0, 1.0], cells[1, 1.0])
    assert not np.array_equal(cells[0, 0.5], cells[0, 1.0])


def test_a_checkpoint_of_another_shape_renders_the_same_through_diffusers(project, first, tmp_path) -> None:
    """Checkpoints of one run take turns in one adapter; a file of another rank is loaded by diffusers on its own.
    Both ways give the same picture."""
    from loratui.demo.sd_models import tiny_sd15_pipeline
    from loratui.preview.pipeline import SLOT, load_preview_pipeline

    rank8 = _lora_file(tiny_sd15_pipeline(0), tmp_path / "rank8.safetensors", seed=8, epoch=1, rank=8)
    settings = first.plan.settings
    pictures, names = [], []
    for order in ([rank8], [first.plan.checkpoints[0].path, rank8]):
        pipeline = load_preview_pipeline(project.load(), project.root, settings.sampler)
        names.append([pipeline.load_lora(path) for path in order][-1])
        pictures.append(np.asarray(pipeline.render(
            settings.prompt, settings.negative_prompt, seed=settings.seed, steps=STEPS, cfg_scale=settings.cfg_scale,
            width=SIZE, height=SIZE, clip_skip=settings.clip_skip, checkpoint=rank8, weight=0.8)))
        pipeline.close()
    assert names[0] == SLOT and names[1] != SLOT  # the second pipeline's slot holds rank 4
    assert np.array_equal(pictures[0], pictures[1])


def test_the_suggestion_is_the_best_scored_cell(project, first) -> None:
    from loratui.preview.score import suggest

    grid = read_grid(project)
    best = suggest([c.scores if c.cell.weight > 0 else None for c in first.cells])  # weight 0 is the base model
    assert best is not None and first.suggestion == best and first.cells[best].cell.weight > 0
    assert (grid.suggestion.checkpoint, grid.suggestion.weight) == (grid.cells[best].checkpoint,
                                                                    grid.cells[best].weight)
    assert grid.suggestion.score == grid.cells[best].scores["total"] and grid.picked is None


def test_adding_a_weight_renders_only_the_new_cells(project, first, monkeypatch) -> None:
    before = {p: p.stat().st_mtime_ns for p in cells_dir(project).glob("*.png")}
    added = run_grid(project, project.load(), GridOptions(weights=[*WEIGHTS, 0.7], steps=STEPS))
    assert added.rendered == 2 and added.cached == 10 and len(added.cells) == 12
    assert [c.cell.weight for c in added.cells if c.rendered] == [0.7, 0.7]
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the old cells were not written again
    assert len(list(cells_dir(project).glob("*.png"))) == len(before) + 2

    # Everything cached: the model is not even loaded.
    import loratui.preview.pipeline as pipeline_module

    def refuse(*args, **kwargs):
        raise AssertionError("the pipeline was loaded for a grid whose cells are all cached")

    monkeypatch.setattr(pipeline_module, "load_preview_pipeline", refuse)
    png_written = added.png.stat().st_mtime_ns
    again = run_grid(project, project.load(), GridOptions(weights=[*WEIGHTS, 0.7], steps=STEPS))
    assert again.rendered == 0 and again.cached == 12
    # The same grid again: its PNG is reused, not written once more.
    assert again.png == added.png and again.grid.png == added.grid.png and added.png.stat().st_mtime_ns == png_written
    assert [c.scores for c in again.cells] == [c.scores for c in added.cells]
    # A different seed is a different picture: nothing to reuse.
    plan = plan_grid(project, project.load(), GridOptions(weights=WEIGHTS, steps=STEPS, seed=7))
    assert not any((cells_dir(project) / f"{c.key}.png").exists() for c in plan.cells)


def test_cancel_stops_between_cells_and_keeps_the_done_ones(project, first) -> None:
    from loratui.progress import Cancelled, CancelToken

    token = CancelToken()
    options = GridOptions(weights=[0.5, 1.0], steps=STEPS, seed=4242, score=False)

    def progress(p) -> None:
        if p.stage == "render" and p.done == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        run_grid(project, project.load(), options, progress=progress, cancel=token)
    keys = [c.key for c in plan_grid(project, project.load(), options).cells]
    assert [(cells_dir(project) / f"{key}.png").is_file() for key in keys] == [True, False, False, False]


def test_running_out_of_gpu_memory_is_one_line_naming_the_knobs(project, monkeypatch) -> None:
    import torch

    import loratui.preview.pipeline as pipeline_module

    class Exploding:
        def __call__(self, *args, **kwargs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pipeline_module, "load_preview_pipeline",
                        lambda *args, **kwargs: pipeline_module.PreviewPipeline(Exploding(), "cuda", torch.float16,
                                                                               "sd15"))
    config = project.load()
    config.training.clip_skip = 1
    with pytest.raises(LoratuiError, match=r"^the GPU ran out of memory rendering a 64x64 cell: try fewer --steps or "
                                           r"a smaller --size, or wait for training to end \(it shares the GPU\)$"):
        run_grid(project, config, GridOptions(weights=[0.0], steps=STEPS, seed=777, score=False))


def test_the_pick_is_kept_while_its_cell_stays_in_the_grid(project, first) -> None:
    picked = set_picked(project, "output/project.safetensors", 0.8)
    assert picked.picked.epoch == 4 and picked.choice() == picked.picked
    kept = run_grid(project, project.load(), GridOptions(weights=WEIGHTS, steps=STEPS))
    assert kept.grid.picked is not None and kept.grid.picked.weight == 0.8
    gone = run_grid(project, project.load(), GridOptions(weights=[0.5], steps=STEPS))
    assert gone.grid.picked is None and read_grid(project).picked is None
    with pytest.raises(LoratuiError, match="not a cell"):
        set_picked(project, "output/project.safetensors", 0.9)


def test_checkpoints_by_epoch_final_or_file(project) -> None:
    config = project.load()
    rows = lambda items: [c.label for c in plan_grid(project, config, GridOptions(checkpoints=items)).checkpoints]  # noqa: E731
    assert rows(["2"]) == ["ep02"]
    assert rows(["4"]) == ["ep04 (final)"]  # the final file's epoch comes from its ss_epoch
    assert rows(["final", "2"]) == ["ep04 (final)", "ep02"]
    assert rows([str(project.output_dir / "project-000002.safetensors")]) == ["ep02"]
    assert rows(["output/project.safetensors"]) == ["ep04 (final)"]
    with pytest.raises(LoratuiError, match=r"--checkpoints 3: no checkpoint of epoch 3 .*epochs there: 2, 4"):
        rows(["3"])
    with pytest.raises(LoratuiError, match="--checkpoints nope.safetensors: no such file"):
        rows(["nope.safetensors"])


def test_a_checkpoint_diffusers_rejects_fails_its_row_only(project, first, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    from loratui.demo.sd_models import tiny_sd15_pipeline

    unet_only = _lora_file(tiny_sd15_pipeline(0), tmp_path / "unet-only-000003.safetensors", seed=3, epoch=3,
                           text_encoders=False)
    tensors = load_file(str(project.output_dir / "project.safetensors"))
    broken = {k: (v[:, :-1].contiguous() if k.endswith("lora_down.weight") and v.ndim == 2 else v)
              for k, v in tensors.items()}
    save_file(broken, str(tmp_path / "broken.safetensors"))
    result = run_grid(project, project.load(), GridOptions(
        checkpoints=["2", str(unet_only), str(tmp_path / "broken.safetensors")], weights=[0.8], steps=STEPS))
    errors = [c.error for c in result.cells]
    assert errors[0] is None and errors[1] is None and errors[2] and "broken.safetensors" in errors[2]
    assert result.failed == 1 and result.rendered == 1 and result.cached == 1  # ep02 at 0.8 came from the cache
    assert [c.label for c in result.plan.checkpoints] == ["ep02", "ep03", "broken"]
    assert "tensor shapes do not match" in errors[2]
    grid = read_grid(project)
    assert grid.cells[2].file is None and grid.cells[2].error == errors[2]
    # The failed cell is a grey tile in the PNG.
    with Image.open(result.png) as png:
        composed = np.asarray(png.convert("RGB"))
    from loratui.preview.compose import FAILED_FILL

    column = composed[:, -SIZE // 2]
    assert any(tuple(pixel) == FAILED_FILL for pixel in column[-SIZE:])


def test_a_grid_size_follows_the_dataset_aspect_ratio(tmp_path) -> None:
    wide, config = make_project(tmp_path / "wide", {"akari": (1, [(192, 64)] * 3 + [(128, 128)])})
    width, height = training_bucket(wide, config)
    assert width > height and width % 8 == 0 and height % 8 == 0
    assert (width, height) == (192, 64)
    from loratui.preview.grid_plan import grid_size

    config.preview.width = 384  # one side set: the other keeps the bucket's aspect ratio
    assert grid_size(wide, config) == (384, 128)
    config.preview.width, config.preview.height = 96, 200
    assert grid_size(wide, config) == (96, 200)


# --- the command ---------------------------------------------------------------------------------


def test_the_command_refuses_bad_options_with_exit_2(project, tmp_path, capsys) -> None:
    from loratui.commands.grid_cmd import SAMPLER_CHOICES
    from loratui.config import SAMPLERS

    assert SAMPLER_CHOICES == SAMPLERS  # the command lists them without importing the engine
    fresh, _ = make_project(tmp_path, {"akari": (1, [(64, 64)])})
    assert main(["grid", str(fresh.root)]) == 2
    assert f"no checkpoints in output/: train first (loratui train {fresh.root})" in capsys.readouterr().err
    for flags, message in ((["--weights", "0.5,3"], "--weights 3: each weight must be between -2 and 2"),
                           (["--weights", "a,b"], "--weights a,b: 'a' is not a number"),
                           (["--steps", "0"], "--steps 0: use 1 to 150"),
                           (["--size", "100x64"], "--size 100x64: each side must be a multiple of 8"),
                           (["--checkpoints", "9"], "--checkpoints 9: no checkpoint of epoch 9"),
                           (["--text", "--detach"], "--detach runs in the background")):
        assert main(["grid", str(project.root), *flags]) == 2, flags
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_text_prints_the_grid_and_a_table(project, first, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["grid", str(project.root), *CLI_OPTIONS, "--text"]) == 0
    out = capsys.readouterr().out
    from loratui.preview.text_view import visible_width

    assert "\x1b" not in out  # captured output is no terminal: plain characters (the pty test sees colour)
    lines = out.splitlines()
    drawing = lines[:next(i for i, line in enumerate(lines) if line.startswith("checkpoint"))]
    assert len(drawing) > 10 and all(visible_width(line) <= 80 for line in drawing)
    assert "ep04 (final)" in out and "0.5" in out
    table = [line for line in lines[len(drawing):] if line.startswith(("checkpoint", "ep02 ", "ep04 "))]
    assert table[0].split() == ["checkpoint", "weight", "score", "resemblance", "flexibility", "damage"]
    assert len(table) == 11 and sum("\u25c9" in line for line in table) == 1
    assert "Grid: 2 checkpoints x 5 weights = 10 cells in " in out and "0 rendered, 10 from the cache, 0 failed" in out
    assert "Suggested: ep0" in out and f"Next: loratui install {project.root} --to LORA_DIR" in out


def _grid_text_subprocess(project, env: dict[str, str], *, terminal: bool) -> str:
    """`loratui grid DIR --text` in a new process, its stdout a pipe or a pseudo-terminal; what it wrote."""
    import pty
    import subprocess
    import sys

    argv = [sys.executable, "-m", "loratui", "grid", str(project.root), *CLI_OPTIONS, "--text"]
    env = {**{k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}, "HF_HUB_OFFLINE": "1",
           "COLUMNS": "80", **env}
    if not terminal:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout
    main_end, child_end = pty.openpty()
    child = subprocess.Popen(argv, stdout=child_end, stderr=subprocess.DEVNULL, env=env)
    os.close(child_end)
    chunks = []
    while True:  # read while it writes: a pty's buffer is smaller than a coloured grid
        try:
            chunk = os.read(main_end, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_end)
    assert child.wait(timeout=120) == 0
    return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


def test_text_to_a_pipe_is_plain_and_to_a_terminal_in_colour(project, first) -> None:
    piped = _grid_text_subprocess(project, {}, terminal=False)
    assert "\x1b" not in piped and "\u2580" not in piped
    assert "ep04 (final)" in piped and "checkpoint    weight  score" in piped
    on_a_terminal = _grid_text_subprocess(project, {"TERM": "xterm-256color"}, terminal=True)
    assert "\x1b[38;2;" in on_a_terminal and "\x1b[48;2;" in on_a_terminal and "\u2580" in on_a_terminal
    assert "checkpoint    weight  score" in on_a_terminal
    no_color = _grid_text_subprocess(project, {"NO_COLOR": "1", "TERM": "xterm-256color"}, terminal=True)
    assert "\x1b" not in no_color and "ep04 (final)" in no_color
    empty = _grid_text_subprocess(project, {"NO_COLOR": "", "TERM": "xterm-256color"}, terminal=True)
    assert "\x1b[38;2;" in empty  # NO_COLOR set but empty does not count (no-color.org)


def test_the_job_writes_progress_cell_and_done_events(project, first, capsys) -> None:
    from loratui.jobs.kinds import DONE
    from loratui.jobs.status import job_status

    assert main(["grid", str(project.root), "--weights", "0.9", "--steps", str(STEPS), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run"]["rendered"] == 2 and report["run"]["cells"] == 2 and len(report["cells"]) == 2
    assert report["settings"]["weights"] == [0.9] and report["png"].startswith("preview/grid-")
    events = job_events(project, "grid")
    kinds = [e["type"] for e in events]
    assert "progress" in kinds and kinds.count("cell") == 2 and kinds[-1] == "done"
    cell = next(e for e in events if e["type"] == "cell")
    assert cell["weight"] == 0.9 and cell["file"].startswith("preview/cells/") and cell.get("error") is None
    assert events[-1]["summary"]["rendered"] == 2 and events[-1]["result"].startswith(str(project.root))
    status = job_status(project)
    assert status.kind == "grid" and status.state == DONE and status.cells == 2


def test_a_detached_grid_runs_as_a_job(project, first, capsys) -> None:
    from loratui.jobs.kinds import DONE
    from loratui.jobs.status import job_status

    assert main(["grid", str(project.root), *CLI_OPTIONS, "--no-score", "--detach"]) == 0
    assert "Started the grid job in the background" in capsys.readouterr().out
    deadline = time.monotonic() + 240
    while job_status(project).alive or job_status(project).starting:
        assert time.monotonic() < deadline, "the detached grid job did not finish"
        time.sleep(0.5)
    status = job_status(project)
    assert status.kind == "grid" and status.state == DONE, status.message
    assert read_grid(project).settings["weights"] == WEIGHTS


def test_an_sdxl_grid(project, tmp_path: Path, tiny_sdxl_dir: Path) -> None:
    from loratui.demo.sd_models import tiny_sdxl_pipeline

    sdxl, config = make_project(tmp_path, {"akari": (1, [(64, 64)])})
    config.project.base_model = str(tiny_sdxl_dir)
    config.preview.width = config.preview.height = SIZE
    sdxl.save(config)
    _lora_file(tiny_sdxl_pipeline(0), sdxl.output_dir / "project.safetensors", seed=5, epoch=1, text_encoders=False)
    result = run_grid(sdxl, sdxl.load(), GridOptions(weights=[0.0, 1.0], steps=STEPS, score=False))
    assert result.failed == 0 and result.rendered == 2 and result.suggestion is None
    base, lora = (_pixels(c.file) for c in result.cells)
    assert base.shape == (SIZE, SIZE, 3) and not np.array_equal(base, lora)
    # The SDXL LoRA on an SD1.5 base model: refused by its header, with both families named.
    wrong = run_grid(project, project.load(), GridOptions(checkpoints=[str(sdxl.output_dir / "project.safetensors")],
                                                          weights=[1.0], steps=STEPS, score=False))
    assert wrong.failed == 1 and "made for SDXL, but the base model is SD1.x" in wrong.cells[0].error
