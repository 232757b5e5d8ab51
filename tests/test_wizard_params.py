"""Step 4 Parameters (design §4.4, §5), driven with Pilot at 80x24 on a prepared project: epochs change the total
steps and the range warning, Fit epochs lands in range, a bad learning rate is refused with the field named (and
^n refused), presets load and save (with the replace dialog), ^z puts a field back, the base model is checked in a
thread (missing, pickle, found), and a second wizard on the same project is read-only. Every change is checked on
disk: loratui.toml keeps its comments."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pilot_helpers import until as _until
from textual.widgets import Input

from loratui.cli import main
from loratui.project import Project, create_project
from loratui.tui.app import DIALOG_KEY_GRACE_S, WizardApp
from loratui.tui.screens.params import ParamsScreen
from loratui.tui.screens.preset_dialogs import ReplaceDialog, SavePresetDialog
from loratui.tui.widgets.form_fields import ChoiceDialog, FieldRow, Toggle
from loratui.tui.widgets.status_line import StatusLine

pytestmark = pytest.mark.asyncio


def _text(widget) -> str:
    return str(widget.render())


@pytest.fixture
def prepared(tmp_path: Path, monkeypatch) -> Project:
    from loratui.demo.images import build_demo_images

    monkeypatch.setenv("LORATUI_CONFIG_DIR", str(tmp_path / "user-config"))
    build_demo_images(tmp_path / "pictures", count=6)
    project, _ = create_project(tmp_path / "akari", tmp_path / "pictures", "akari", trigger="akari",
                                preset="sd15-character")
    config = project.load()
    config.dataset.resolution = 256  # quick to prepare; 6 pictures x 5 repeats / batch 1 = 30 steps per epoch
    project.save(config)
    text = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text("# my own note, keep it\n" + text, encoding="utf-8")
    assert main(["prepare", str(project.root)]) == 0
    return project


async def _open(pilot, app) -> ParamsScreen:
    await pilot.pause()
    await pilot.press("ctrl+g", "4")
    await _until(pilot, lambda: isinstance(app.screen, ParamsScreen) and app.screen.estimate is not None)
    return app.screen


def _row(screen: ParamsScreen, setting: str) -> FieldRow:
    return next(r for r in screen.rows if r.spec.setting == setting)


def _panel(screen) -> str:
    return _text(screen.query_one("#steps-panel"))


def _stored(project: Project) -> dict:
    return tomllib.loads(project.config_path.read_text(encoding="utf-8"))


async def _type(pilot, screen, setting: str, text: str, *, at_once: bool = False) -> None:
    """Type ``text`` into a field key by key, or as one change (``at_once``: for a value whose first characters
    are valid on their own, which a slow machine would save before the rest arrives)."""
    editor = _row(screen, setting).editor
    assert isinstance(editor, Input)
    editor.focus()
    await pilot.pause()
    editor.value = ""
    if at_once:
        editor.value = text
    else:
        await pilot.press(*list(text))
    await pilot.pause(0.05)
    await _until(pilot, lambda: screen._save_timer is None)  # the save delay is over (written, or refused)


async def test_epochs_change_the_total_and_fit_epochs_lands_in_range(prepared):
    app = WizardApp(prepared.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        # no base model yet: the focus starts there (design §4.4), and the row says it is required
        assert _row(screen, "project.base_model").editor is screen.focused
        assert "none: required" in _text(_row(screen, "project.base_model").query_one(".field-below"))
        panel = _panel(screen)
        assert "pictures" in panel and "= total steps" in panel and "300" in panel  # 6 x 5 x 10
        assert "! 300: below 1 500" in panel and "in range: 50-166 epochs" in panel
        assert screen.query_one("#fit-epochs").display and "[ Fit epochs ]" in _text(screen.query_one("#fit-epochs"))

        await _type(pilot, screen, "training.epochs", "60")
        panel = _panel(screen)
        assert "1 800" in panel and "✓ aim: 1 500 to 5 000" in panel and "!" not in panel
        assert not screen.query_one("#fit-epochs").has_class("-shown")
        assert "✎ preset: 10" in _text(_row(screen, "training.epochs").query_one(".field-note"))
        assert "1 changed ✎" in _text(screen.query_one("#params-changed"))
        assert _stored(prepared)["training"]["epochs"] == 60
        assert prepared.config_path.read_text(encoding="utf-8").startswith("# my own note, keep it\n")
        assert "Saved Epochs" in _text(screen.query_one(StatusLine))

        await _type(pilot, screen, "training.epochs", "400")  # 12 000 steps: above the range
        assert "! 12 000: above 5 000" in _panel(screen)
        screen.query_one("#fit-epochs").focus()
        await pilot.press("enter")
        await _until(pilot, lambda: _stored(prepared)["training"]["epochs"] == 166)
        assert _stored(prepared)["training"]["epochs"] == 166 and "4 980" in _panel(screen)

        # batch 2 halves the steps; the panel shows the division
        await _type(pilot, screen, "training.batch_size", "2")
        assert "/ batch 2 = steps" in _panel(screen) and "15" in _panel(screen)


async def test_a_bad_learning_rate_is_refused_with_the_field_named_and_next_waits(prepared):
    before = _stored(prepared)
    app = WizardApp(prepared.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await pilot.press("ctrl+t")  # expert view: every setting
        assert screen.expert and _row(screen, "training.unet_lr").display
        assert "Expert" in screen.query_one("#params-form").border_title
        headers = [_text(h) for h in screen.query(".group-header")]
        assert any("Learning" in h for h in headers) and any("Memory" in h for h in headers)

        await _type(pilot, screen, "training.unet_lr", "50", at_once=True)
        row = _row(screen, "training.unet_lr")
        assert "✗" in _text(row.query_one(".field-note"))
        assert "50 is too large: use 10.0 or less" in _text(row.query_one(".field-below"))
        assert "Learning rate: 50 is too large" in _text(screen.query_one("#params-valid"))
        assert _stored(prepared)["training"]["unet_lr"] == before["training"]["unet_lr"]  # not written

        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is screen and "Learning rate: 50 is too large" in _text(screen.query_one(StatusLine))

        await _type(pilot, screen, "training.unet_lr", "abc")
        assert "must be a number, not text" in _text(row.query_one(".field-below"))

        # a cross-check of the engine: warmup with the constant scheduler
        await _type(pilot, screen, "training.unet_lr", "2e-4")
        assert _stored(prepared)["training"]["unet_lr"] == 2e-4
        scheduler = _row(screen, "training.lr_scheduler").editor
        scheduler.focus()
        await pilot.press("enter")
        assert isinstance(app.screen, ChoiceDialog)
        await pilot.press("home", "enter")  # the first choice: constant
        await pilot.pause()
        await _type(pilot, screen, "training.lr_warmup_steps", "10", at_once=True)
        assert "constant scheduler cannot have warmup steps" in _text(
            _row(screen, "training.lr_warmup_steps").query_one(".field-below"))
        assert _stored(prepared)["training"]["lr_warmup_steps"] == 0

        # ^z puts the field back to the preset's value, which is valid again
        await pilot.press("ctrl+z")
        await pilot.pause(0.05)
        await _until(pilot, lambda: screen._save_timer is None)
        assert _row(screen, "training.lr_warmup_steps").editor.value == "0"
        assert "All settings valid" in _text(screen.query_one("#params-valid"))
        assert _stored(prepared)["training"]["lr_scheduler"] == "constant"

        # a switch: space flips it and it is saved
        switch = _row(screen, "training.flip_aug").editor
        assert isinstance(switch, Toggle) and "[ ] off" in _text(switch)
        switch.focus()
        await pilot.press("space")
        await pilot.pause(0.05)
        await _until(pilot, lambda: screen._save_timer is None)
        assert "[x] on" in _text(switch) and _stored(prepared)["training"]["flip_aug"] is True

        await pilot.press("ctrl+n")
        await _until(pilot, lambda: not isinstance(app.screen, ParamsScreen))  # valid now: on to Train


async def test_load_a_preset_then_save_yours_and_replace_it(prepared, tmp_path):
    app = WizardApp(prepared.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await _type(pilot, screen, "training.epochs", "60")
        assert "1 changed ✎" in _text(screen.query_one("#params-changed"))

        # load another preset over a changed field: asked first, "keep mine" focused
        screen.query_one(".preset-choice").focus()
        await pilot.press("enter")
        assert isinstance(app.screen, ChoiceDialog)
        options = app.screen.query_one("OptionList")
        options.highlighted = app.screen.choices.index("sd15-style")
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, ReplaceDialog))
        await pilot.pause(DIALOG_KEY_GRACE_S + 0.05)
        await pilot.press("r")
        await _until(pilot, lambda: _stored(prepared)["project"]["preset"] == "sd15-style")
        stored = _stored(prepared)
        assert stored["project"]["preset"] == "sd15-style"
        style = tomllib.loads((Path(__file__).parents[1] / "presets" / "sd15-style.toml").read_text())
        assert stored["training"]["epochs"] == style["training"]["epochs"]
        assert "no changes" in _text(screen.query_one("#params-changed"))

        await _type(pilot, screen, "training.epochs", "33")
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SavePresetDialog)
        await pilot.pause(DIALOG_KEY_GRACE_S + 0.05)
        name = app.screen.query_one("#preset-name", Input)
        name.value = "my-akari"
        await pilot.press("enter", "enter")  # name, then the description line saves
        saved = tmp_path / "user-config" / "presets" / "my-akari.toml"
        await _until(pilot, lambda: _stored(prepared)["project"]["preset"] == "my-akari")
        assert tomllib.loads(saved.read_text())["training"]["epochs"] == 33
        assert _stored(prepared)["project"]["preset"] == "my-akari"
        assert "no changes" in _text(screen.query_one("#params-changed"))  # compared with the new preset

        # the same name again: the replace dialog, keep is focused; r replaces
        await _type(pilot, screen, "training.epochs", "34")
        await pilot.press("ctrl+s")
        await pilot.pause(DIALOG_KEY_GRACE_S + 0.05)
        app.screen.query_one("#preset-name", Input).value = "my-akari"
        await pilot.press("enter", "enter")
        await _until(pilot, lambda: isinstance(app.screen, ReplaceDialog))
        assert app.screen.focused.id == "no"
        await pilot.pause(DIALOG_KEY_GRACE_S + 0.05)
        await pilot.press("r")
        await _until(pilot, lambda: tomllib.loads(saved.read_text())["training"]["epochs"] == 34)

        # a built-in name is refused with the engine's reason
        await pilot.press("ctrl+s")
        await pilot.pause(DIALOG_KEY_GRACE_S + 0.05)
        app.screen.query_one("#preset-name", Input).value = "sd15-character"
        await pilot.press("enter", "enter")
        await pilot.pause()
        assert "is a built-in preset" in _text(app.screen.query_one("#preset-error"))


async def test_the_base_model_is_checked_in_a_thread(prepared, tiny_single_file):
    (prepared.root / "old.ckpt").write_bytes(b"not really a pickle")
    app = WizardApp(prepared.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        below = _row(screen, "project.base_model").query_one(".field-below")
        assert "none: required" in _text(below)

        await _type(pilot, screen, "project.base_model", "/nowhere/model.safetensors")
        await _until(pilot, lambda: "not found" in _text(below))
        await _type(pilot, screen, "project.base_model", "old.ckpt")
        await _until(pilot, lambda: "ickle" in _text(below))  # refused, with the reason
        assert "✗" in _text(below)

        # ^o browses: the tree shows folders and model files; enter on a file takes it
        from loratui.tui.screens.model_browser import ModelBrowser

        await pilot.press("ctrl+o")
        assert isinstance(app.screen, ModelBrowser)
        path_input = app.screen.query_one("#browse-path", Input)
        path_input.focus()
        path_input.value = str(tiny_single_file.checkpoint)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ParamsScreen)
        await _until(pilot, lambda: "SD1.5, found ✓" in _text(below))
        await _until(pilot, lambda: screen._save_timer is None)
        assert _stored(prepared)["project"]["base_model"] == str(tiny_single_file.checkpoint)


async def test_a_second_wizard_on_the_project_is_read_only(prepared):
    from loratui.wizard_lock import SettingsClaim

    first = SettingsClaim(prepared.state_dir)
    assert first.acquire() is None
    try:
        before = prepared.config_path.read_bytes()
        app = WizardApp(prepared.root)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _open(pilot, app)
            assert "read-only: open in another loratui" in _text(screen.query_one("#params-valid"))
            editor = _row(screen, "training.epochs").editor
            assert editor.disabled
            await pilot.press("ctrl+s")
            assert app.screen is screen and "read-only" in _text(screen.query_one(StatusLine))
        assert prepared.config_path.read_bytes() == before
    finally:
        first.release()
    # once the first one is gone, a new wizard edits again
    app = WizardApp(prepared.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        assert not _row(screen, "training.epochs").editor.disabled


async def test_at_120x40_the_help_adds_the_default_the_preset_value_and_the_limits(prepared):
    app = WizardApp(prepared.root)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+g", "4")
        await _until(pilot, lambda: isinstance(app.screen, ParamsScreen) and app.screen.estimate is not None)
        screen = app.screen
        _row(screen, "training.epochs").editor.focus()
        await pilot.pause()
        help_text = _text(screen.query_one("#params-help"))
        assert "How many full passes" in help_text
        assert "Default 10 · preset sd15-character: 10 · allowed: 1 to 10,000" in help_text
        assert "bucket" in _panel(screen) and "batches" in _panel(screen)  # the per-bucket table
