"""Step 6 Preview's opt-in terminal graphics, driven with Pilot: with app.graphics faked to Kitty (or Sixel) the
palette offers it, choosing it writes the highlighted cell's picture at the cell box (captured where the screen
writes to the terminal), moving writes the next cell, turning it off deletes it; without support or inside tmux
the entry is absent and nothing is written."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from pilot_helpers import until as _until
from preview_fixtures import checkpoint_project, write_rendered_grid

from loratui.project import Project
from loratui.tui import terminal_graphics as tg
from loratui.tui.app import WizardApp
from loratui.tui.screens import preview_graphics
from loratui.tui.screens.preview import PreviewScreen
from loratui.tui.screens.preview_palette import PreviewCommands
from loratui.tui.widgets.picture import Picture
from loratui.tui.widgets.status_line import StatusLine

pytestmark = pytest.mark.asyncio
ENTRY = "Preview: use terminal graphics (Kitty/Sixel)"


@pytest.fixture
def rendered(tmp_path: Path, monkeypatch) -> Project:
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.delenv("STY", raising=False)
    project = checkpoint_project(tmp_path)
    write_rendered_grid(project)
    return project


@pytest.fixture
def written(monkeypatch) -> list[str]:
    out: list[str] = []
    monkeypatch.setattr(preview_graphics, "write_to_terminal", lambda app, data: out.append(data))
    return out


async def _open(pilot, app) -> PreviewScreen:
    await pilot.pause()
    await pilot.press("ctrl+g", "6")
    await _until(pilot, lambda: isinstance(app.screen, PreviewScreen) and app.screen._read_once)
    await pilot.pause()
    return app.screen


async def _palette(pilot, words: str) -> None:
    from pilot_helpers import run_palette

    await run_palette(pilot, words)


def _titles(screen) -> list[str]:
    return [title for title, _, _ in PreviewCommands(screen)._commands()]


def _said(screen) -> str:
    return screen.query_one(StatusLine).message


async def test_kitty_draws_the_highlighted_cell_at_the_box_and_off_deletes_it(rendered, written):
    app = WizardApp(rendered.root)
    app.graphics = tg.Support(kitty=True, sixel=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        assert ENTRY in _titles(screen) and not screen.graphics_on
        assert written == []
        await _palette(pilot, "terminal graphics")
        assert screen.graphics_on
        assert _said(screen) == "Terminal graphics on (Kitty): the cell is drawn at full resolution."
        await _until(pilot, lambda: any("\x1b_Ga=T" in data for data in written))
        cell = screen.current_cell()
        region = screen.query_one("#pv-picture").content_region
        place, want = preview_graphics.encode("kitty", Path(cell.file), region)
        assert written == [want]  # one picture, at the box (its row;col, 1-based), cursor saved and restored
        assert f"\x1b[{place.y + 1};{place.x + 1}H" in want and region.contains_region(place)
        data = "".join(re.findall(r"\x1b_G[^;]*;([^\x1b]*)\x1b\\", want))
        assert base64.standard_b64decode(data) == Path(cell.file).read_bytes()
        assert screen.query_one(Picture).path is None  # the half-cell picture makes room
        assert "Preview: stop terminal graphics" in _titles(screen)

        written.clear()
        await pilot.press("left")  # another cell: its picture replaces the first
        await _until(pilot, lambda: written)
        other = screen.current_cell()
        assert other.file != cell.file
        assert written == [preview_graphics.encode("kitty", Path(other.file), region)[1]]

        written.clear()
        await _palette(pilot, "stop terminal graphics")
        assert not screen.graphics_on
        assert written[-1] == tg.kitty_delete()  # (the palette closing may redraw it first: then it goes)
        await _until(pilot, lambda: screen.query_one(Picture).path == Path(other.file))  # half-cells again
        written.clear()
        await pilot.press("right")
        await pilot.pause(0.3)
        assert written == []  # off: nothing is written


async def test_leaving_the_screen_deletes_the_picture_and_coming_back_draws_it_again(rendered, written):
    app = WizardApp(rendered.root)
    app.graphics = tg.Support(kitty=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await _palette(pilot, "terminal graphics")
        await _until(pilot, lambda: any("a=T" in data for data in written))
        written.clear()
        await pilot.press("question_mark")  # help covers the box
        await pilot.pause()
        assert written == [tg.kitty_delete()]
        await pilot.press("escape")
        await _until(pilot, lambda: any("a=T" in data for data in written))
        assert app.screen is screen


async def test_sixel_writes_a_sixel_picture(rendered, written, monkeypatch):
    repaints = []
    app = WizardApp(rendered.root)
    app.graphics = tg.Support(sixel=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await _palette(pilot, "terminal graphics")
        assert _said(screen) == "Terminal graphics on (Sixel): the cell is drawn at full resolution."
        await _until(pilot, lambda: any("\x1bPq" in data for data in written))
        assert written[0].startswith("\x1b7\x1b[") and written[0].endswith("\x1b\\\x1b8")
        monkeypatch.setattr(app, "refresh", lambda **kw: repaints.append(kw) or app)
        screen.action_terminal_graphics()  # off: a full repaint removes a Sixel picture
        assert repaints == [{"layout": True, "repaint": True}]


@pytest.mark.parametrize("support", [None, tg.Support(reason=tg.NO_ANSWER)])
async def test_without_support_the_entry_is_absent_and_nothing_is_written(rendered, written, support):
    app = WizardApp(rendered.root)
    app.graphics = support
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        assert not any("terminal graphics" in title for title in _titles(screen))
        screen.action_terminal_graphics()
        assert not screen.graphics_on
        assert _said(screen) == tg.NO_ANSWER
        await pilot.pause(0.2)
        assert written == []


async def test_inside_tmux_the_entry_is_absent_even_when_the_probe_said_kitty(rendered, written, monkeypatch):
    monkeypatch.setenv("TMUX", "/tmp/tmux-1000/default,1,0")
    app = WizardApp(rendered.root)
    app.graphics = tg.Support(kitty=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        assert not any("terminal graphics" in title for title in _titles(screen))
        screen.action_terminal_graphics()
        assert not screen.graphics_on
        assert _said(screen) == "Not inside tmux: its panes cannot pass pictures through"
        assert written == []
