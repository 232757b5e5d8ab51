"""Step 1 Images (design §4.1), driven with Pilot at 80x24: the scan's rows (a broken file among them), keep/EXCL
written to the concept's exclude list in loratui.toml and undone with ^z, the filter, the picture's facts, the
^f views and the ^o folder dialog that changes the concept's source and rescans."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Static

from loratui.project import Project, create_project
from loratui.tui.app import WizardApp
from loratui.tui.screens.images import FolderDialog, ImagesScreen, ZoomScreen
from loratui.tui.steps import ProjectState
from loratui.tui.widgets.picture import Picture
from loratui.tui.widgets.status_line import StatusLine

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def open_on_images(monkeypatch):
    # a project with pictures opens on Crop; these tests are about step 1
    monkeypatch.setattr(ProjectState, "first_open_step", lambda self: 1)


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    from loratui.demo.images import build_demo_images

    folder = tmp_path / "pictures"
    build_demo_images(folder, count=4)
    (folder / "zz_cut.png").write_bytes(b"this is no picture at all " * 20)
    shutil.copy(folder / "demo_001.png", folder / "demo_001_copy.png")  # a near-duplicate of demo_001
    return folder


@pytest.fixture
def project(tmp_path: Path, pictures: Path) -> Project:
    created, _ = create_project(tmp_path / "akari", pictures, "akari", trigger="akari")
    return created


def _text(widget) -> str:
    return str(widget.render())


def _rows(screen: ImagesScreen) -> list[str]:
    listing = screen.query_one("#images-list", OptionList)
    return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]


async def _scanned(pilot, screen: ImagesScreen, timeout: float = 20.0) -> None:
    waited = 0.0
    while not screen.scanned_all and not screen.error:
        await pilot.pause(0.05)
        waited += 0.05
        assert waited < timeout, "the scan did not finish"
    await pilot.pause()


def _exclude(project: Project) -> list[str]:
    return list(project.load().concepts[0].exclude)


async def test_the_scan_lists_every_file_problems_first_with_the_broken_one(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ImagesScreen)
        await _scanned(pilot, screen)
        rows = _rows(screen)
        assert len(rows) == 6  # 4 demo pictures, the copy, the broken file
        assert rows[0].startswith("▸ ✗") and "zz_cut.png" in rows[0] and "broken file" in rows[0]
        assert "dup A best" in rows[1] and "demo_001.png" in rows[1]
        assert "dup A" in rows[2] and "demo_001_copy" in rows[2]
        assert all(" keep " in row for row in rows[1:])
        left = screen.query_one("#images-left")
        assert left.border_title == "5 keep  0 EXCL  1 broken"
        assert left.border_subtitle == "problems first"
        source = _text(screen.query_one("#images-source"))
        assert "concept akari" in source and "6 files" in source and "^o change" in source
        # the broken file's reason is in the facts, and nothing pretends to draw it
        facts = _text(screen.query_one("#images-facts"))
        assert facts.startswith("✗ broken file:") and len(facts) > len("✗ broken file: ")
        assert screen.query_one(Picture).path is None
        checks = _text(screen.query_one("#images-checks")).splitlines()
        assert checks[0].startswith(" ! 5 pictures (15+ needed, 20-50 ideal)") and "✗ 1 unreadable" in checks[0]
        assert "near-duplicate" in checks[1]
        assert all(len(line) <= 80 for line in checks)
        status = _text(screen.query_one(StatusLine))
        assert "Scan done: 6 files" in status and "1 unreadable (zz_cut.png)" in status


async def test_space_excludes_into_loratui_toml_and_ctrl_z_undoes_it(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        await pilot.press("down", "down")  # demo_001_copy.png
        assert "demo_001_copy" in _rows(screen)[2]
        await pilot.press("space")
        assert _exclude(project) == ["demo_001_copy.png"]
        assert "EXCL" in _rows(screen)[2] and _rows(screen)[2].startswith("▸")
        assert screen.query_one("#images-left").border_title == "4 keep  1 EXCL  1 broken"
        assert "EXCL: left out" in _text(screen.query_one("#images-facts"))
        assert "saved in loratui.toml, ^z undoes" in _text(screen.query_one(StatusLine))
        # the near-duplicate warning is gone once the copy is out
        assert "near-duplicate" not in _text(screen.query_one("#images-checks"))
        await pilot.press("ctrl+z")
        assert _exclude(project) == []
        assert " keep " in _rows(screen)[2]
        assert "Undone: demo_001_copy.png EXCL" in _text(screen.query_one(StatusLine))
        await pilot.press("ctrl+z")
        assert "Nothing to undo." in _text(screen.query_one(StatusLine))
        # an excluded file stays excluded on a rescan, read from loratui.toml
        await pilot.press("space")
        await pilot.press("ctrl+r")
        await _scanned(pilot, screen)
        assert any("EXCL" in row and "demo_001_copy" in row for row in _rows(screen))


async def test_letters_filter_the_rows_and_esc_clears_the_filter(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        await pilot.press("c", "o", "p")
        field = screen.query_one("#images-filter", Input)
        assert field.value == "cop"
        rows = _rows(screen)
        assert len(rows) == 1 and "demo_001_copy" in rows[0]
        assert screen.query_one("#images-left").border_title.endswith("1 shown")
        await pilot.press("down")  # back to the list; space toggles the one row left
        await pilot.press("space")
        assert _exclude(project) == ["demo_001_copy.png"]
        await pilot.press("x", "y", "z")
        assert "No file matches the filter" in _rows(screen)[0]
        await pilot.press("escape")
        assert field.value == "" and len(_rows(screen)) == 6
        assert app.screen is screen  # esc cleared the filter and did not leave the step


async def test_the_highlighted_picture_shows_its_facts_and_zooms(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        await pilot.press("down")  # demo_001.png, the best of its group
        facts = _text(screen.query_one("#images-facts"))
        assert facts.splitlines()[0].startswith("512x768  PNG")
        assert "1.0x of 512 px" in facts and "dup A with demo_001_copy" in facts and "the best of them" in facts
        assert screen.query_one(Picture).path == project.source_dir(project.load().concepts[0]) / "demo_001.png"
        assert screen.query_one("#images-right").border_title == "demo_001.png"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ZoomScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_ctrl_f_cycles_problems_all_and_excluded_only(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        await pilot.press("ctrl+f")
        rows = _rows(screen)
        assert screen.query_one("#images-left").border_subtitle == "all by name"
        assert "demo_001.png" in rows[0] and "zz_cut.png" in rows[-1]
        await pilot.press("home", "space")  # demo_001.png
        await pilot.press("ctrl+f")
        assert screen.query_one("#images-left").border_subtitle == "EXCL only"
        rows = _rows(screen)
        assert len(rows) == 1 and "EXCL" in rows[0] and "demo_001.png" in rows[0]


async def test_ctrl_o_changes_the_source_folder_and_rescans(project, tmp_path):
    from loratui.demo.images import build_demo_images

    other = tmp_path / "more pictures"
    build_demo_images(other, count=3, seed=3)
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        await pilot.press("down", "space")  # an exclusion of the old folder
        await pilot.press("ctrl+o")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, FolderDialog)
        field = dialog.query_one("#folder-path", Input)
        field.value = str(tmp_path / "nowhere")
        await pilot.press("enter")
        assert "no such folder" in _text(dialog.query_one("#folder-error", Static))
        assert app.screen is dialog
        field.value = str(other)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        await _scanned(pilot, screen)
        concept = project.load().concepts[0]
        assert Path(concept.source) == other.resolve() and concept.exclude == []
        assert len(_rows(screen)) == 3 and "3 files" in _text(screen.query_one("#images-source"))
        # ^z puts the old folder and its exclusion back
        await pilot.press("ctrl+z")
        await _scanned(pilot, screen)
        concept = project.load().concepts[0]
        assert concept.source == "../pictures" or Path(concept.source).name == "pictures"
        assert concept.exclude == ["demo_001.png"]
        assert len(_rows(screen)) == 6
        # esc in the dialog keeps the folder
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and "The folder stays as it was." in _text(screen.query_one(StatusLine))


async def test_bulk_exclude_is_one_undo_and_next_is_refused_with_nothing_kept(project, pictures):
    project.update(lambda config: config.concepts[0].exclude.extend(
        ["demo_001.png", "demo_002.png", "demo_003.jpg", "demo_004.png"]))
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        screen.action_exclude_duplicates()  # the palette's "Exclude extra near-duplicates"
        await pilot.pause()
        assert "demo_001_copy.png" in _exclude(project)
        assert screen.query_one("#images-left").border_title == "0 keep  5 EXCL  1 broken"
        assert _text(screen.query_one("#images-checks")).startswith(" ! 0 pictures")
        await pilot.press("ctrl+n")
        assert app.screen is screen and "No picture is kept" in _text(screen.query_one(StatusLine))
        screen.action_include_all()
        await pilot.pause()
        assert _exclude(project) == []
        await pilot.press("ctrl+z")
        assert len(_exclude(project)) == 5


async def test_a_missing_source_folder_is_one_line_not_a_traceback(project, pictures):
    shutil.rmtree(pictures)
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        assert "no such folder" in _rows(screen)[0]
        line = screen.query_one(StatusLine)
        assert line.level == "✗" and "no such folder" in line.message and "\n" not in line.message
        assert "✗" in _text(line) and len(_text(line)) <= 80  # one row: a long path is cut, ^p shows it whole


async def test_rows_come_from_the_listing_first_then_fill_in_as_the_scan_reads_them(project):
    from loratui.tui.screens.images import ScanDone, ScanFound, ScanListed

    messages: list = []
    sizes_when_listed: list[str] = []

    def hook(message) -> None:
        messages.append(message)
        if isinstance(message, ScanListed) and not sizes_when_listed:  # what the rows said when listed
            sizes_when_listed.extend(row.size for row in message.rows)

    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
    kinds = [type(m) for m in messages if isinstance(m, (ScanListed, ScanFound, ScanDone))]
    assert kinds[0] is ScanListed and kinds[-1] is ScanDone and ScanFound in kinds
    assert sizes_when_listed == ["..."] * 6  # every file is a row before one is read


async def test_with_two_concepts_the_first_is_shown_and_the_palette_switches_to_the_next(project, tmp_path):
    from loratui.config import Concept
    from loratui.demo.images import build_demo_images

    other = tmp_path / "style"
    build_demo_images(other, count=2)
    project.update(lambda config: config.concepts.append(Concept(name="style", source=str(other))))
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        assert "concept akari (1 of 2)" in _text(screen.query_one("#images-source"))
        await pilot.press("down", "space")
        config = project.load()
        assert config.concepts[0].exclude == ["demo_001.png"] and config.concepts[1].exclude == []
        # the palette's "Images: next concept": the second folder, its own exclude list
        screen.action_next_concept()
        await _scanned(pilot, screen)
        assert "concept style (2 of 2)" in _text(screen.query_one("#images-source"))
        assert len(_rows(screen)) == 2 and "demo_001.png" in _rows(screen)[0]
        await pilot.press("space")
        config = project.load()
        assert config.concepts[0].exclude == ["demo_001.png"] and config.concepts[1].exclude == ["demo_001.png"]
        await pilot.press("ctrl+z")  # undoes on the concept it was made on
        assert project.load().concepts[1].exclude == []
        screen.action_next_concept()  # back to the first; its undo still applies to it
        await _scanned(pilot, screen)
        assert "concept akari (1 of 2)" in _text(screen.query_one("#images-source"))
        await pilot.press("ctrl+z")
        config = project.load()
        assert config.concepts[0].exclude == [] and config.concepts[1].exclude == []


async def test_coming_back_after_the_resolution_changed_rescans_with_the_new_target(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        await pilot.press("down")  # demo_001.png, 512x768
        assert "1.0x of 512 px" in _text(screen.query_one("#images-facts"))
        await pilot.press("ctrl+g")  # any screen over this one; Params would change the resolution meanwhile
        await pilot.pause()

        def lower(config) -> None:
            config.dataset.resolution = 256

        project.update(lower)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        await _scanned(pilot, screen)
        assert screen.resolution == 256
        assert any("demo_001.png" in row and "small" not in row for row in _rows(screen))


async def test_reopening_takes_the_scan_from_the_cache_and_previews_from_thumbnails(project, monkeypatch):
    from loratui.dataset import image_stream
    from loratui.dataset.thumbnails import THUMBS_DIR

    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        first = _rows(screen)
        await pilot.press("end")  # the problems (the broken file) come first: the last row is a picture
        picture = screen.query_one("#images-picture", Picture)
        for _ in range(100):
            if picture.rows is not None:
                break
            await pilot.pause(0.05)
        assert picture.rows is not None
    assert (project.state_dir / "scan-cache.json").is_file()
    assert list((project.state_dir / THUMBS_DIR).glob("*.png"))  # the highlighted picture's thumbnail

    def no_decode(entry):
        raise AssertionError(f"{entry.path.name} decoded again")

    monkeypatch.setattr(image_stream, "_inspect_one", no_decode)
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        assert _rows(screen) == first  # the broken file's reason included
        assert "Scan done" in _text(screen.query_one(StatusLine))


async def test_ctrl_t_shows_thumbnails_that_move_toggle_filter_and_zoom_like_the_list(project):
    from test_wizard_tags import _until

    from loratui.tui.widgets.thumb_grid import ThumbGrid

    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await _scanned(pilot, screen)
        await pilot.press("ctrl+t")
        grid = screen.query_one(ThumbGrid)
        assert screen.has_class("-thumbs") and grid.has_focus
        assert not screen.query_one("#images-main").display  # the grid stands in for the list and preview
        assert grid.layout_now.columns == 4 and grid.layout_now.rows == 2  # 4x2 tiles at 80x24
        await _until(pilot, lambda: len(grid.drawn) >= sum(1 for tile in grid.tiles[:8] if tile.path is not None))
        text = str(grid.render())
        # problems first, as in the list: the broken file leads, drawn as words, the cursor on it
        assert "▸✗ zz_cut.png" in text and "✗ broken file" in text
        await pilot.press("right")  # demo_001.png, the list's cursor follows
        assert screen.query_one("#images-list", OptionList).highlighted == 1
        assert "▸keep demo_001.png" in str(grid.render())
        assert "demo_001.png" in str(screen.query_one("#images-grid-box").border_subtitle)
        await pilot.press("space")
        assert _exclude(project) == ["demo_001.png"]
        assert "▸EXCL demo_001.png" in str(grid.render())
        await pilot.press("ctrl+z")
        assert _exclude(project) == []
        await pilot.press("down")  # one tile row down: four tiles on
        assert screen.query_one("#images-list", OptionList).highlighted == 5
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ZoomScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("c", "o", "p")  # letters filter the tiles too
        assert screen.query_one("#images-filter", Input).value == "cop"
        assert len(grid.tiles) == 1 and "demo_001_copy" in grid.tiles[0].label
        await pilot.press("escape")  # clears the filter first ...
        assert len(grid.tiles) == 6 and screen.thumbs
        await pilot.press("escape")  # ... then goes back to the list
        assert not screen.thumbs and screen.query_one("#images-list").has_focus
        assert app.screen is screen
