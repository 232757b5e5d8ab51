"""Step 2 Crop (design §4.2) driven with Pilot at 80x24: the resolution checked by loratui.toml's own rules, the
crop box edited with enter / arrows / + - / 0 and saved in loratui.toml, prepare run from the wizard (^r), and ^n
preparing an unprepared project before it moves on to step 3."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pilot_helpers import until
from textual.widgets import Input, OptionList, Static

from loratui.project import Project, create_project
from loratui.tui.app import WizardApp
from loratui.tui.screens.crop import CropScreen
from loratui.tui.widgets.status_line import StatusLine

pytestmark = pytest.mark.asyncio


@pytest.fixture
def project(tmp_path: Path) -> Project:
    from loratui.demo.images import build_demo_images

    pictures = tmp_path / "pictures"
    build_demo_images(pictures, count=4)
    created, _ = create_project(tmp_path / "akari", pictures, "akari", trigger="akari")
    return created


def _toml(project: Project) -> dict:
    return tomllib.loads(project.config_path.read_text())


def _text(widget) -> str:
    return str(widget.render())


async def _crop_screen(pilot, app) -> CropScreen:
    await pilot.pause()
    if not isinstance(app.screen, CropScreen):  # a project not prepared yet opens on its pictures (step 1)
        await pilot.press("ctrl+g", "2")
    for _ in range(100):  # the scan and the focal boxes come from thread workers
        await pilot.pause(0.05)
        screen = app.screen
        if isinstance(screen, CropScreen) and screen.pictures and len(screen.plans) == len(screen.pictures):
            return screen
    raise AssertionError("the crop screen never listed its pictures")


async def _until(pilot, condition, seconds: float = 60.0) -> None:
    await until(pilot, condition, seconds)


async def test_a_resolution_that_is_not_a_multiple_of_64_is_refused_and_512_is_saved(project):
    app = WizardApp(project.root)
    before = project.config_path.read_text()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _crop_screen(pilot, app)
        field = screen.query_one("#resolution", Input)
        field.focus()
        field.value = ""
        await pilot.press("5", "0", "0", "enter")
        assert "500 is not a multiple of 64: use 448 or 512" in _text(screen.query_one(StatusLine))
        assert "500 is not a multiple of 64" in _text(screen.query_one("#crop-summary"))
        assert project.config_path.read_text() == before  # nothing written
        await pilot.press("ctrl+n")  # refused: the field keeps the focus
        assert app.screen is screen and screen.focused is field
        field.value = ""
        await pilot.press("7", "6", "8", "enter")
        assert _toml(project)["dataset"]["resolution"] == 768
        assert "Resolution 768 saved" in _text(screen.query_one(StatusLine))


async def test_a_crop_box_is_moved_resized_saved_and_put_back_to_auto(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _crop_screen(pilot, app)
        listing = screen.query_one("#crop-list", OptionList)
        assert listing.has_focus and listing.highlighted == 0
        first = screen.shown[0]
        auto = screen.plans[first.key].box
        drawn = _text(screen.query_one("#crop-picture"))
        assert "┌" in drawn and "┘" in drawn  # the box is drawn in characters, not colour
        await pilot.press("enter")
        assert screen.editing == first.key and "-editing" in screen.query_one("#crop-preview").classes
        await pilot.press("minus", "minus", "down", "right")
        await pilot.pause()
        edited = screen.edit_box
        assert edited is not None and edited[2] - edited[0] < auto[2] - auto[0]
        assert "box " in _text(screen.query_one("#crop-info", Static))
        await pilot.press("enter")  # done: saved
        boxes = _toml(project)["dataset"]["crop_boxes"]
        assert boxes == {first.key: list(edited)}
        assert "Box saved for" in _text(screen.query_one(StatusLine))
        await _until(pilot, lambda: first.key in screen.plans)
        assert "MANUAL" in str(listing.get_option_at_index(0).prompt)
        await pilot.press("enter", "0")  # back to auto: the entry leaves loratui.toml
        await pilot.pause()
        assert _toml(project)["dataset"].get("crop_boxes", {}) == {}
        await pilot.press("escape")
        assert screen.editing is None and listing.has_focus
        await _until(pilot, lambda: first.key in screen.plans)
        assert "auto" in str(listing.get_option_at_index(0).prompt)
        await pilot.press("ctrl+z")  # undoes the 0: the hand-placed box is back
        assert _toml(project)["dataset"]["crop_boxes"] == {first.key: list(edited)}


async def test_prepare_runs_from_the_wizard_to_the_end(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _crop_screen(pilot, app)
        assert "4 to prepare" in _text(screen.query_one("#crop-summary"))
        await pilot.press("ctrl+r")
        await _until(pilot, lambda: "Prepared" in _text(screen.query_one(StatusLine)))
        await _until(pilot, lambda: "dataset up to date" in _text(screen.query_one("#crop-summary")))
        await pilot.press("ctrl+t")  # the prepared result
        assert "prepared " in _text(screen.query_one("#crop-info"))
        await pilot.press("ctrl+t")
        outputs = sorted(project.dataset_dir.rglob("*.png"))
        assert len(outputs) == 4 and all(p.parent.name.endswith("_akari") for p in outputs)
        written = {p: p.stat().st_mtime_ns for p in outputs}
        await pilot.press("enter", "minus", "enter")  # one box changed: only that picture is redone
        await _until(pilot, lambda: "1 to prepare" in _text(screen.query_one("#crop-summary")))
        await pilot.press("ctrl+r")
        await _until(pilot, lambda: "dataset up to date" in _text(screen.query_one("#crop-summary")))
    changed = [p for p, mtime in written.items() if p.stat().st_mtime_ns != mtime]
    assert changed == [project.concept_dir(project.load().concepts[0]) / outputs[0].name]


async def test_next_on_an_unprepared_project_prepares_then_opens_step_3(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _crop_screen(pilot, app)
        assert not list(project.dataset_dir.rglob("*.png"))
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen is screen  # not yet: prepare first
        assert "Preparing 4 pictures first" in _text(screen.query_one(StatusLine))
        await _until(pilot, lambda: app.screen.step.number == 3)
        assert app.screen is not screen
    assert len(list(project.dataset_dir.rglob("*.png"))) == 4


async def test_mode_none_shows_the_bucket_table_and_is_saved(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _crop_screen(pilot, app)
        screen.query_one("#mode").focus()
        await pilot.press("right", "right")  # focal -> centre -> none
        assert _toml(project)["dataset"]["crop"] == "none"
        assert "(◉) none: buckets" in _text(screen.query_one("#mode"))
        await _crop_screen(pilot, app)
        await _until(pilot, lambda: "buckets: " in _text(screen.query_one("#crop-buckets"))
                     and "to read" not in _text(screen.query_one("#crop-buckets")))
        assert "x" in _text(screen.query_one("#crop-buckets")).split("buckets: ")[1]


async def test_letters_filter_the_list_by_name_and_esc_clears_the_filter(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _crop_screen(pilot, app)
        listing = screen.query_one("#crop-list", OptionList)
        name = screen.pictures[2].relpath
        for key in name.split(".")[0][-3:]:  # "003" of demo_003
            await pilot.press(key)
        assert [p.relpath for p in screen.shown] == [name] and listing.option_count == 1
        assert "filter: 003" in str(listing.border_subtitle)
        await pilot.press("escape")  # clears the filter, stays on Crop
        assert listing.option_count == 4 and app.screen is screen
        await pilot.press("ctrl+f")  # manual only: none yet
        assert listing.option_count == 0
        assert "No picture matches" in _text(screen.query_one("#crop-info"))
