"""Step 6 Preview (design §4.6), driven with Pilot at 80x24: the score table with its marks, the highlighted
cell and its scores, space picks into grid.json, enter zooms, ^s installs (file and card on disk), the exists
choice keeps both or replaces, bad fields are refused by name, the empty state, waiting for a CPU training run,
and a real grid rendered by ^n as a `loratui grid` job on the tiny SD1.5 that then opens the install dialog."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import pytest
from pilot_helpers import until as _until
from preview_fixtures import LORA_FOLDER, checkpoint_project, write_rendered_grid
from textual.widgets import Input

from loratui.jobs.runner import job
from loratui.project import Project
from loratui.tui.app import DIALOG_KEY_GRACE_S, WizardApp
from loratui.tui.screens.images import ZoomScreen
from loratui.tui.screens.install_dialog import ExistsDialog, InstallDialog
from loratui.tui.screens.preview import EMPTY, LAST_EMPTY, PreviewScreen, cpu_wait_message
from loratui.tui.widgets.job_panel import JobPanel
from loratui.tui.widgets.score_grid import ScoreGrid
from loratui.tui.widgets.status_line import StatusLine

pytestmark = pytest.mark.asyncio


def _text(widget) -> str:
    return str(widget.render())


def _said(app) -> str:
    return app.screen.query_one(StatusLine).message


async def _open(pilot, app) -> PreviewScreen:
    await pilot.pause()
    if not isinstance(app.screen, PreviewScreen):
        await pilot.press("ctrl+g", "6")
    await _until(pilot, lambda: isinstance(app.screen, PreviewScreen) and app.screen._read_once)
    await pilot.pause()
    return app.screen


async def _dialog(pilot, app, kind) -> None:
    await _until(pilot, lambda: isinstance(app.screen, kind))
    await pilot.pause(DIALOG_KEY_GRACE_S)  # keys typed ahead of a dialog are dropped


@pytest.fixture
def rendered(tmp_path: Path) -> Project:
    project = checkpoint_project(tmp_path)
    write_rendered_grid(project)
    return project


def _grid(project: Project) -> dict:
    return json.loads((project.preview_dir / "grid.json").read_text(encoding="utf-8"))


async def test_the_score_table_shows_scores_marks_and_the_highlighted_cell(rendered):
    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        table = _text(screen.query_one(ScoreGrid)).splitlines()
        assert table[0].split() == [".6", ".8", "1.0"]
        assert table[1].split() == ["ep02", ".40", ".45", "✗.12"]  # damaged: written, not coloured
        assert table[3].split() == ["final", ".60", ".65", "▸.70◉"]  # the cursor starts on the suggestion
        assert screen.query_one("#pv-cell-box").border_title == "final at 1.0"
        info = _text(screen.query_one("#pv-cell-info"))
        assert "score .70  ◉ suggested" in info and "looks like your set .80" in info and "damage none" in info
        assert _text(screen.query_one("#pv-choice")).strip() == "Suggested: final at 1.0 (.70). space picks " \
                                                                  "another cell."
        assert "Grid PNG: preview/grid-1200.png (3 x 3 cells)" in _text(screen.query_one("#pv-png"))
        assert screen.query_one("#pv-prompt", Input).value == "akari, smile"
        assert screen.query_one("#pv-weights", Input).value == ".6 .8 1.0"
        await pilot.press("up", "up", "left")  # ep02 at 0.8, then the damaged cell beside it
        assert screen.query_one("#pv-cell-box").border_title == "ep02 at 0.8"
        await pilot.press("right")
        assert "✗ damage .50 flat" in _text(screen.query_one("#pv-cell-info"))
        await pilot.press("q")
        assert _said(app).startswith("^q quits")


async def test_space_picks_a_cell_into_grid_json_and_enter_zooms(rendered):
    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await pilot.press("up", "left", "space")  # ep04 at 0.8
        await _until(pilot, lambda: screen.view.picked is not None)
        picked = _grid(rendered)["picked"]
        assert (picked["checkpoint"], picked["weight"]) == ("output/akari-000004.safetensors", 0.8)
        assert _text(screen.query_one(ScoreGrid)).splitlines()[2].split() == ["ep04", ".50", "▸.55✓", ".60"]
        assert "You picked ep04 at 0.8 (.55); yours is used." in _text(screen.query_one("#pv-choice"))
        assert _said(app) == "Picked ep04 at 0.8 (.55): ^s installs it."
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, ZoomScreen))
        assert app.screen.query_one("#zoom-box").border_title.startswith("ep04 at 0.8 - akari, smile")
        await pilot.press("escape")
        await _until(pilot, lambda: app.screen is screen)


async def test_install_writes_the_file_and_card_then_keeps_both_or_replaces(rendered):
    lora_dir = rendered.root / LORA_FOLDER
    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await pilot.press("ctrl+s")
        await _dialog(pilot, app, InstallDialog)
        dialog = app.screen
        assert app.focused is dialog.query_one("#install")  # enter installs the focused default
        assert dialog.folder() == lora_dir
        assert "-> akari.safetensors" in _text(dialog.query_one("#install-file"))
        assert dialog.query_one("#install-weight", Input).value == "1.0"  # the suggestion's weight
        await pilot.press("enter")
        await _until(pilot, lambda: dialog.has_class("-done"))
        done = _text(dialog.query_one("#install-done"))
        assert "In A1111/Forge: <lora:akari:1.0>, akari" in done
        assert "In ComfyUI: a LoraLoader node with akari.safetensors, strength 1.0" in done
        installed = lora_dir / "akari.safetensors"
        assert installed.read_bytes() == (rendered.output_dir / "akari.safetensors").read_bytes()
        card = json.loads((lora_dir / "akari.json").read_text(encoding="utf-8"))
        assert card["activation text"] == "akari" and card["preferred weight"] == 1.0
        await pilot.press("enter")  # Close
        await _until(pilot, lambda: app.screen is screen)
        assert _said(app).startswith("Installed akari.safetensors: <lora:akari:1.0>, akari")

        # Again, on another cell: the file is there, so the dialog asks; keep both is focused
        await pilot.press("up", "space")
        await _until(pilot, lambda: screen.view.picked is not None)
        await pilot.press("ctrl+s")
        await _dialog(pilot, app, InstallDialog)
        assert "(already there)" in _text(app.screen.query_one("#install-file"))
        await pilot.press("enter")
        await _dialog(pilot, app, ExistsDialog)
        assert str(app.focused.label) == "▸ Keep both: akari-2"
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, InstallDialog) and app.screen.has_class("-done"))
        assert "<lora:akari-2:1.0>" in _text(app.screen.query_one("#install-done"))
        assert installed.read_bytes() == (rendered.output_dir / "akari.safetensors").read_bytes()  # untouched
        ep04 = (rendered.output_dir / "akari-000004.safetensors").read_bytes()
        assert (lora_dir / "akari-2.safetensors").read_bytes() == ep04
        assert (lora_dir / "akari-2.json").is_file()
        await pilot.pause(DIALOG_KEY_GRACE_S)  # the install dialog showed again as the question closed
        await pilot.press("escape")

        # And replace: `r` (never enter) overwrites the file and its card
        await _until(pilot, lambda: app.screen is screen)
        await pilot.press("ctrl+s")
        await _dialog(pilot, app, InstallDialog)
        await pilot.press("enter")
        await _dialog(pilot, app, ExistsDialog)
        await pilot.press("r")
        await _until(pilot, lambda: isinstance(app.screen, InstallDialog) and app.screen.has_class("-done"))
        assert "Replaced" in _text(app.screen.query_one("#install-done"))
        assert installed.read_bytes() == ep04
        assert "epoch 4" in json.loads((lora_dir / "akari.json").read_text(encoding="utf-8"))["description"]
        assert sorted(p.name for p in lora_dir.iterdir()) == ["akari-2.json", "akari-2.safetensors", "akari.json",
                                                              "akari.safetensors"]


async def test_the_install_dialog_refuses_a_bad_name_weight_or_folder_by_name(rendered):
    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(pilot, app)
        await pilot.press("ctrl+s")
        await _dialog(pilot, app, InstallDialog)
        dialog = app.screen
        dialog.query_one("#install-name", Input).value = "my lora"
        await pilot.press("enter")
        assert _text(dialog.query_one("#install-error")).startswith("✗ Name: name 'my lora': use letters")
        assert app.focused is dialog.query_one("#install-name")
        dialog.query_one("#install-name", Input).value = "akari"
        dialog.query_one("#install-weight", Input).value = "heavy"
        await pilot.press("enter")  # in the name field: enter installs, and the weight is refused
        assert "✗ Weight: heavy is not a number from -2 to 2" in _text(dialog.query_one("#install-error"))
        dialog.query_one("#install-weight", Input).value = "0.7"
        dialog.query_one("#install-other", Input).value = str(rendered.root / "no" / "such" / "Lora")
        await pilot.press("ctrl+o", "enter")  # ^o goes to the typed folder; enter installs
        await _until(pilot, lambda: "no such folder" in _text(dialog.query_one("#install-error")))
        assert not dialog.has_class("-done")
        await pilot.press("escape")
        await _until(pilot, lambda: isinstance(app.screen, PreviewScreen))
        assert _said(app) == "Nothing installed."
    assert list((rendered.root / LORA_FOLDER).iterdir()) == []


async def test_no_checkpoints_says_train_first(tmp_path):
    project = checkpoint_project(tmp_path, checkpoints=False)
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        assert _text(screen.query_one("#pv-note")) == EMPTY
        assert not screen.query_one(ScoreGrid).display
        assert app.focused is screen.query_one("#pv-prompt")
        await pilot.press("ctrl+r")
        assert _said(app) == EMPTY
        await pilot.press("ctrl+n")  # the last step: nothing to render, nothing moves
        assert _said(app) == LAST_EMPTY and app.screen is screen
    assert not (project.preview_dir / "grid.json").exists()


async def test_bad_fields_are_refused_by_name_and_good_ones_saved_on_render(rendered, monkeypatch):
    started = []
    monkeypatch.setattr(JobPanel, "start", lambda self, options: started.append(options) or True)
    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        weights = screen.query_one("#pv-weights", Input)
        weights.value = ".6 lots"
        await pilot.press("ctrl+r")
        assert _said(app).startswith("Weights .6 lots: 'lots' is not a number")
        assert app.focused is weights
        weights.value = ".6 .8 1 1.2"
        screen.query_one("#pv-steps", Input).value = "500"
        await pilot.press("ctrl+r")
        assert _said(app).startswith("Steps 500: use 1 to 150")
        screen.query_one("#pv-steps", Input).value = "20"
        screen.query_one("#pv-seed", Input).value = "42"
        await pilot.press("ctrl+r")
        assert len(started) == 1
        options = started[0]
        assert (options.weights, options.seed, options.steps, options.prompt) == ("0.6,0.8,1.0,1.2", 42, 20,
                                                                                   "akari, smile")
    preview = tomllib.loads(rendered.config_path.read_text(encoding="utf-8"))["preview"]
    assert (preview["seed"], preview["steps"], preview["weights"]) == (42, 20, [0.6, 0.8, 1.0, 1.2])
    assert preview["prompt"] == "{trigger}, smile"  # the default, filled in on screen, stays the template


async def test_while_cpu_training_runs_it_waits_then_renders_when_training_ends(rendered, monkeypatch):
    started = []
    monkeypatch.setattr(JobPanel, "start", lambda self, options: started.append(options) or True)
    monkeypatch.setattr("loratui.training.speed_history.detect_gpu_name", lambda: "CPU")
    write_rendered_grid(rendered, missing=((2, 0),))  # a checkpoint written since the last grid: one cell to do
    training = job(rendered, "train", ["train", str(rendered.root)])
    training.__enter__()  # a training run of this machine holds the training lock
    try:
        app = WizardApp(rendered.root)
        async with app.run_test(size=(80, 24)) as pilot:
            await _until(pilot, lambda: app.gpu_name == "CPU")
            screen = await _open(pilot, app)
            await _until(pilot, lambda: screen.waiting)
            assert _text(screen.query_one("#pv-note")) == cpu_wait_message()
            assert "two torch processes on" in cpu_wait_message()
            assert _said(app).startswith("Waiting for training to end before rendering (CPU only)")
            assert _text(screen.query_one(ScoreGrid)).splitlines()[3].split()[:2] == ["final", "?"]
            await pilot.pause(1.0)
            assert started == []  # still waiting
            training.__exit__(None, None, None)  # training ends
            training = None
            await _until(pilot, lambda: bool(started))
            assert started[0].KIND == "grid" and not screen.waiting
            assert _text(screen.query_one("#pv-note")) == ""
    finally:
        if training is not None:
            training.__exit__(None, None, None)


async def test_with_a_gpu_finished_checkpoints_render_while_training_runs(rendered, monkeypatch):
    started = []
    monkeypatch.setattr(JobPanel, "start", lambda self, options: started.append(options) or True)
    monkeypatch.setattr("loratui.training.speed_history.detect_gpu_name", lambda: "NVIDIA H200")
    write_rendered_grid(rendered, missing=((2, 0), (2, 1)))
    with job(rendered, "train", ["train", str(rendered.root)]):
        app = WizardApp(rendered.root)
        async with app.run_test(size=(80, 24)) as pilot:
            await _until(pilot, lambda: app.gpu_name == "NVIDIA H200")
            screen = await _open(pilot, app)
            if not started:  # the first read may come before the state poll has seen the training job
                screen.reload()
            await _until(pilot, lambda: bool(started))
            assert not screen.waiting and _said(app).startswith("Rendering 2 cells")


# --- a real grid: the tiny SD1.5, two LoRA files, `loratui grid` as a detached job ------------------------------


@pytest.fixture
def trained(tmp_path: Path, tiny_sd15_dir: Path) -> Project:
    """A project on the tiny SD1.5 with two checkpoints (random LoRA weights, as tests/test_grid.py makes them),
    the tiny tagger for the scores, 64 px cells, 2 sampling steps, 2 weights: 4 cells in seconds."""
    from test_data import make_project
    from test_grid import _lora_file

    from loratui.demo.sd_models import tiny_sd15_pipeline
    from loratui.demo.tagger_model import build_tiny_tagger

    project, config = make_project(tmp_path, {"akari": (2, [(128, 128)] * 4)})
    config.project.base_model = str(tiny_sd15_dir)
    config.tagging.model = str(build_tiny_tagger(tmp_path / "tagger"))
    config.preview.width = config.preview.height = 64
    config.preview.steps, config.preview.weights = 2, [0.5, 1.0]
    project.save(config)
    name = project.output_name(config)
    _lora_file(tiny_sd15_pipeline(0), project.output_dir / f"{name}-000002.safetensors", seed=1, epoch=2)
    _lora_file(tiny_sd15_pipeline(0), project.output_dir / f"{name}.safetensors", seed=2, epoch=4)
    (project.root / LORA_FOLDER).mkdir(parents=True)
    return project


async def test_next_renders_the_grid_as_a_job_then_opens_the_install_dialog_and_enter_installs(trained, monkeypatch):
    from loratui.tui import pacing

    # Read at the full rate throughout: with nobody typing the views read once a second (loratui.tui.pacing), and
    # 4 tiny cells can all finish between two such reads, so "one after another" could not be seen.
    monkeypatch.setattr(pacing, "QUIET_AFTER_S", float("inf"))
    app = WizardApp(trained.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        assert _text(screen.query_one(ScoreGrid)).splitlines()[1].split() == ["ep02", "▸?", "?"]
        await pilot.press("ctrl+n")  # no grid yet: render it, then install
        await _until(pilot, lambda: screen.query_one(JobPanel).running, 30)
        assert _said(app).startswith("Rendering 4 cells: ^r cancels")
        seen: set[int] = set()
        began = time.monotonic()
        while not isinstance(app.screen, InstallDialog) and time.monotonic() - began < 240:
            seen.add(screen.view.done)
            await pilot.pause(0.1)
        assert isinstance(app.screen, InstallDialog), _said(app)
        assert len(seen) >= 2  # cells appeared one after another, not all at the end
        table = _text(screen.query_one(ScoreGrid))
        assert "◉" in table and "?" not in table
        grid = _grid(trained)
        assert grid["suggestion"] is not None and len(grid["cells"]) == 4
        assert (trained.root / grid["png"]).is_file()
        assert _text(screen.query_one("#pv-png")).startswith(f" Grid PNG: {grid['png']} (2 x 2 cells)")
        await pilot.pause(DIALOG_KEY_GRACE_S)
        await pilot.press("enter")  # the focused default: Install, into the project's webui/models/Lora
        await _until(pilot, lambda: app.screen.has_class("-done"))
    name = trained.load().project.output_name or "project"
    lora_dir = trained.root / LORA_FOLDER
    assert sorted(p.suffix for p in lora_dir.iterdir()) == [".json", ".safetensors"]
    card = json.loads(next(lora_dir.glob("*.json")).read_text(encoding="utf-8"))
    assert card["preferred weight"] == grid["suggestion"]["weight"] and name


async def test_the_footer_fits_80_columns_and_no_key_is_bound_twice(rendered):
    from test_wizard_frame import _assert_footer_fits

    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        _assert_footer_fits(app, "preview, grid focused")
        keys = [key for b in [*PreviewScreen.BINDINGS, *ScoreGrid.BINDINGS] for key in b.key.split(",")]
        assert len(keys) == len(set(keys))
        await pilot.press("tab")
        assert app.focused is screen.query_one("#pv-prompt")  # tab goes from the grid to the fields
        await pilot.press("escape")  # and esc back to the grid, not a step back
        assert app.focused is screen.query_one(ScoreGrid) and app.screen is screen


async def test_pictures_view_at_120x40_and_what_t_says_at_80x24(rendered):
    from loratui.tui.widgets.picture import Picture
    from loratui.tui.widgets.tile_view import TileView

    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await pilot.press("ctrl+t")
        assert _said(app) == "The pictures view needs 120x40 (now 80x24); enter shows one cell full screen."
        assert screen.query_one(ScoreGrid).display
    app = WizardApp(rendered.root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, app)
        tiles = screen.query_one(TileView)
        assert tiles.display and not screen.query_one(ScoreGrid).display and app.focused is tiles
        labels = [_text(label) for label in tiles.query(".tile-label")]
        assert labels[:3] == [" ep02 at 0.6", " ep02 at 0.8", " ep02 at 1.0"] and "▸final at 1.0" in labels
        lines = [_text(line) for line in tiles.query(".tile-line")]
        assert " ✗.12" in lines and " .70◉" in lines
        await _until(pilot, lambda: all(p.rows is not None for p in tiles.query(Picture) if p.path))
        await pilot.press("left", "space")  # the keys work on the pictures too
        await _until(pilot, lambda: screen.view.picked is not None)
        assert " .65✓" in [_text(line) for line in tiles.query(".tile-line")]
        await pilot.press("ctrl+t")
        assert screen.query_one(ScoreGrid).display and app.focused is screen.query_one(ScoreGrid)


# --- the palette (design §4.6: render only the suggested row, the PNG path, negative prompt, sampling steps) ------


async def _palette(pilot, words: str) -> None:
    from pilot_helpers import run_palette

    await run_palette(pilot, words)


async def test_palette_renders_only_the_suggested_row_as_a_grid_job_of_that_checkpoint(rendered, monkeypatch):
    from loratui.jobs.command import command_line

    started = []
    monkeypatch.setattr(JobPanel, "start", lambda self, options: started.append(options) or True)
    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await _palette(pilot, "suggested row")  # every cell of the suggested row (final) is cached
        assert started == []
        assert _said(app).startswith("Every cell of final is rendered (cached)")
        write_rendered_grid(rendered, missing=((1, 0), (2, 0)))  # a cell missing in ep04's row and in final's
        screen.reload()
        await _until(pilot, lambda: screen.view.missing == 2)
        assert screen.view.cells[screen.view.suggested].label == "final"
        await _palette(pilot, "suggested row")
        await _until(pilot, lambda: bool(started))
        options = started[0]
        final = rendered.output_dir / "akari.safetensors"
        assert options.KIND == "grid" and options.checkpoints == (str(final),)
        assert ["--checkpoints", str(final.resolve())] == command_line(rendered.root, options)[2:4]
        assert _said(app).startswith("Rendering 1 cell of final: ^r cancels")


async def test_palette_shows_the_grid_png_path_in_full(rendered):
    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(pilot, app)
        await _palette(pilot, "grid png path")
        path = rendered.root / "preview" / "grid-1200.png"
        assert path.is_absolute() and _said(app) == f"Grid PNG: {path}"


async def test_palette_negative_prompt_esc_keeps_enter_saves_and_the_next_render_uses_it(rendered, monkeypatch):
    from loratui.config import PreviewSettings
    from loratui.jobs.command import command_line
    from loratui.tui.screens.preview_palette import NegativePromptDialog

    started = []
    monkeypatch.setattr(JobPanel, "start", lambda self, options: started.append(options) or True)
    default = PreviewSettings().negative_prompt
    before = rendered.config_path.read_text(encoding="utf-8")
    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await _palette(pilot, "negative prompt")
        await _dialog(pilot, app, NegativePromptDialog)
        field = app.screen.query_one("#negative", Input)
        assert field.value == default and app.screen.focused is field
        await pilot.press(*"x", "escape")  # esc keeps the saved one
        await _until(pilot, lambda: app.screen is screen)
        assert _said(app) == "Negative prompt kept."
        assert rendered.config_path.read_text(encoding="utf-8") == before

        await _palette(pilot, "negative prompt")
        await _dialog(pilot, app, NegativePromptDialog)
        app.screen.query_one("#negative", Input).value = ""
        await pilot.press(*"ugly, blurry", "enter")
        await _until(pilot, lambda: app.screen is screen)
        assert _said(app).startswith("Negative prompt saved")
        preview = tomllib.loads(rendered.config_path.read_text(encoding="utf-8"))["preview"]
        assert preview["negative_prompt"] == "ugly, blurry"
        # the grid is planned again with it: every cell is new (the cached ones had the old negative prompt)
        await _until(pilot, lambda: screen.view.options.negative_prompt == "ugly, blurry"
                     and screen.view.missing == len(screen.view.cells))
        await pilot.press("ctrl+r")
        await _until(pilot, lambda: bool(started))
        assert started[0].negative_prompt == "ugly, blurry" and started[0].checkpoints is None
        assert "--negative-prompt=ugly, blurry" in command_line(rendered.root, started[0])


async def test_palette_sampling_steps_focuses_the_steps_field(rendered):
    app = WizardApp(rendered.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        assert isinstance(app.focused, ScoreGrid)
        await _palette(pilot, "sampling steps")
        assert app.focused is screen.query_one("#pv-steps", Input)
        assert _said(app).startswith("Sampling steps: 1-150")
        await pilot.press("escape")  # back to the grid
        assert isinstance(app.focused, ScoreGrid)
