"""The larger layouts at 120x40 (design §4.1-§4.3): Images adds the format and the file size, Crop the scale and
how each box was found, Tags the kind of each tag and a third column with the picture and its whole caption;
back at 80x24 they go again."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_wizard_tags import _make_project, _open, _until
from textual.widgets import OptionList

from loratui.project import Project
from loratui.tui.app import WizardApp
from loratui.tui.screens.crop import CropScreen
from loratui.tui.screens.images import ImagesScreen
from loratui.tui.widgets.picture import Picture

pytestmark = pytest.mark.asyncio


@pytest.fixture
def tagged(tmp_path: Path, monkeypatch) -> Project:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return _make_project(tmp_path, tag=True)


async def _scanned_images(pilot, app) -> ImagesScreen:
    await pilot.press("ctrl+g", "1")
    screen = app.screen
    assert isinstance(screen, ImagesScreen)
    await _until(pilot, lambda: screen.scanned_all)
    return screen


async def _planned_crop(pilot, app) -> CropScreen:
    """Crop with every box worked out and its counts drawn (they are coalesced to 5 a second)."""
    await pilot.press("ctrl+g", "2")
    crop = app.screen
    assert isinstance(crop, CropScreen)
    await _until(pilot, lambda: len(crop.plans) == len(crop.pictures) and crop.pictures)
    await pilot.pause(0.4)
    return crop


def _prompts(listing: OptionList) -> list[str]:
    return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]


async def test_tags_at_120x40_has_three_columns_and_the_kind_of_each_tag(tagged):
    app = WizardApp(tagged.root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, app)
        assert screen.wide and screen.has_class("-wide")
        from loratui.dataset.tag_categories import tag_kind

        # "▸ keep  long hair           hair       6 100% ████████": the tag in columns 8-26, its kind in 28-37.
        rows = {line[8:27].strip(): line for line in _prompts(screen.query_one("#tags", OptionList))}
        assert rows["long hair"][28:38].strip() == "hair" and rows["solo"][28:38].strip() == "people"
        assert all(line[28:38].strip() == tag_kind(tag) for tag, line in rows.items())
        assert "kind" in str(screen.query_one("#tag-head").render())
        box = screen.query_one("#caption-box")
        assert box.display and not screen.query_one("#preview").display
        caption = str(screen.query_one("#caption-full").render())
        assert "after ^s:" in caption and caption.replace("\n", " ").split("after ^s: ")[1].startswith("akari")
        picture = screen.query_one("#caption-picture", Picture)
        await _until(pilot, lambda: picture.rows is not None)  # the highlighted picture, drawn
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not screen.wide and not box.display and screen.query_one("#preview").display
        assert "kind" not in str(screen.query_one("#tag-head").render())


async def test_images_and_crop_at_120x40_add_their_columns(tagged):
    app = WizardApp(tagged.root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _scanned_images(pilot, app)
        rows = _prompts(screen.query_one("#images-list", OptionList))
        name = next(path.name for path in sorted((tagged.root.parent / "pictures").iterdir()))
        row = next(line for line in rows if name in line)
        kb = round((tagged.root.parent / "pictures" / name).stat().st_size / 1024)
        assert row.split(name)[1].split()[1:3] == ["PNG" if name.endswith(".png") else "JPEG", str(kb)], row
        assert "file KB" in str(screen.query_one("#images-head").render())

        crop = await _planned_crop(pilot, app)
        line = _prompts(crop.query_one("#crop-list", OptionList))[0]
        # 6 demo pictures at 512 px: the box is shrunk ("/1.5") and was found on the drawn face.
        assert line.split()[-2].startswith("/") and line.split()[-1] == "face", line
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert _prompts(crop.query_one("#crop-list", OptionList))[0].split()[-1].endswith((".png", ".jpg", "UP"))


async def test_images_advice_is_a_side_column_and_crop_shows_the_output_sizes_at_120x40(tagged):
    app = WizardApp(tagged.root)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _scanned_images(pilot, app)
        await pilot.pause()
        side = screen.query_one("#images-advice")
        assert side.display and not screen.query_one("#images-checks").display
        lines = str(side.render()).split("\n")
        # every check of the engine's advice, each in full on its own line (the 80x24 rows hold two)
        assert lines[0].startswith("! 6 pictures") or lines[0].startswith("! Only 6 pictures"), lines
        assert any(line.startswith("i Short sides") for line in lines), lines
        assert any("clear subject" in line.lower() for line in lines)

        crop = await _planned_crop(pilot, app)
        histogram = crop.query_one("#crop-histogram")
        assert histogram.display and histogram.border_title == "output sizes"
        rows = str(histogram.render()).split("\n")
        # focal crops: every picture becomes one 512x512 square, so one full bar with the count
        assert len(rows) == 1 and rows[0].split()[0] == "512x512" and rows[0].split()[-1] == str(len(crop.plans))
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not histogram.display
        await pilot.press("ctrl+g", "1")  # Images follows the size when it is shown again
        await pilot.pause()
        assert screen.query_one("#images-checks").display and not side.display
