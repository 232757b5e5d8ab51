"""Snapshots of every wizard screen and dialog, at 80x24 and 120x40, with NO_COLOR=1 (state must read without
colour). Update after a deliberate change with `pytest tests/test_wizard_snapshots.py --snapshot-update` and
look at the SVGs in tests/__snapshots__/ before committing them.

The projects live at fixed paths (paths are on screen) and the user data folder is empty (no recent projects)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loratui.jobs.runner import job
from loratui.project import Project, create_project
from loratui.tui.app import WizardApp

FIXED = Path("/tmp/loratui-snapshots")
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


@pytest.fixture
def quiet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("LORATUI_DATA_DIR", str(tmp_path / "user-data"))
    for name in ("TMUX", "STY"):
        monkeypatch.delenv(name, raising=False)
    # The free disk changes from run to run: a fixed figure in the 120-column status line.
    monkeypatch.setattr(WizardApp, "machine_facts", lambda self: "CPU · 50.0 GB free")
    # The Train checklist's GPU line asks nvidia-smi: the same answer (no GPU) on every machine.
    import loratui.training.checklist

    monkeypatch.setattr(loratui.training.checklist, "nvidia_smi", lambda: None)


@pytest.fixture
def snap_project(quiet_env) -> Project:
    """The same small project every run, at the same path: four made-up pictures, nothing prepared yet."""
    from loratui.demo.images import build_demo_images

    shutil.rmtree(FIXED, ignore_errors=True)
    build_demo_images(FIXED / "pictures", count=4)
    project, _ = create_project(FIXED / "akari", FIXED / "pictures", "akari", trigger="akari")
    return project


@pytest.mark.parametrize("size", SIZES)
def test_welcome(snap_compare, quiet_env, size):
    shutil.rmtree(FIXED / "new", ignore_errors=True)
    (FIXED / "new").mkdir(parents=True)
    assert snap_compare(WizardApp(FIXED / "new"), terminal_size=SIZES[size], run_before=_settle)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("step", [1, 2, 3, 4, 5, 6])
def test_step(snap_compare, snap_project, size, step):
    async def go(pilot):
        await pilot.press("ctrl+g", str(step))
        await _settle(pilot)

    assert snap_compare(WizardApp(snap_project.root), terminal_size=SIZES[size], run_before=go)


# (The command palette is Textual's own, filled by an async search: its frame is not the same twice.)
@pytest.mark.parametrize("keys", [("f1",), ("ctrl+g",)], ids=["help", "goto"])
def test_overlays(snap_compare, snap_project, keys):
    async def open_it(pilot):
        await pilot.press("ctrl+g", "4", *keys)
        await _settle(pilot)

    assert snap_compare(WizardApp(snap_project.root), terminal_size=(80, 24), run_before=open_it)


def test_new_project_dialog(snap_compare, quiet_env):
    shutil.rmtree(FIXED / "new", ignore_errors=True)
    (FIXED / "new").mkdir(parents=True)

    async def open_it(pilot):
        await _settle(pilot)
        await pilot.press("enter")
        await _settle(pilot)

    assert snap_compare(WizardApp(FIXED / "new"), terminal_size=(80, 24), run_before=open_it)


def test_quit_dialog_while_a_job_runs(snap_compare, snap_project):
    async def quit_(pilot):
        await pilot.press("ctrl+g", "4", "ctrl+q")
        await _settle(pilot)

    with job(snap_project, "prepare", ["prepare", str(snap_project.root)]):
        assert snap_compare(WizardApp(snap_project.root), terminal_size=(80, 24), run_before=quit_)


def test_too_small(snap_compare, snap_project):
    assert snap_compare(WizardApp(snap_project.root), terminal_size=(72, 20), run_before=_settle)


async def _settle(pilot) -> None:
    """Let threads (machine check, picture decode, scan) and the first state poll finish."""
    for _ in range(10):
        await pilot.pause(0.1)
    await pilot.app.workers.wait_for_complete()
    from textual.widgets import Input

    for field in pilot.app.screen.query(Input):  # a blinking cursor is drawn or not by when the frame is taken
        field.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_images_thumbnails(snap_compare, snap_project, size):
    async def thumbs(pilot):
        await pilot.press("ctrl+g", "1")
        await _settle(pilot)
        await pilot.press("ctrl+t", "right")
        await _settle(pilot)

    assert snap_compare(WizardApp(snap_project.root), terminal_size=SIZES[size], run_before=thumbs)


def test_folder_dialog(snap_compare, snap_project):
    async def open_it(pilot):
        await pilot.press("ctrl+g", "1")
        await _settle(pilot)
        await pilot.press("ctrl+o")
        await _settle(pilot)

    assert snap_compare(WizardApp(snap_project.root), terminal_size=(80, 24), run_before=open_it)


def test_tagger_dialog_in_ascii(snap_compare, snap_project, monkeypatch):
    """--ascii on a dialog with Textual's buttons and a list: plain characters only."""
    import time
    from types import SimpleNamespace

    from loratui.cli import main
    from loratui.tui.widgets import status_line

    # The status line says when prepare finished: the same minute in every run.
    monkeypatch.setattr(status_line, "time", SimpleNamespace(localtime=time.localtime,
                                                             strftime=lambda fmt, when=None: "12:00"))

    assert main(["prepare", str(snap_project.root)]) == 0

    async def open_it(pilot):
        await pilot.press("ctrl+g", "3")
        await _settle(pilot)
        await pilot.press("ctrl+r")
        await _settle(pilot)

    assert snap_compare(WizardApp(snap_project.root, ascii_only=True), terminal_size=(80, 24), run_before=open_it)


@pytest.fixture
def prepared_snap(snap_project, monkeypatch) -> Project:
    """The snapshot project, prepared, with the status line's clock fixed (it says when prepare finished)."""
    import time
    from types import SimpleNamespace

    from loratui.cli import main
    from loratui.tui.widgets import status_line

    monkeypatch.setattr(status_line, "time", SimpleNamespace(localtime=time.localtime,
                                                             strftime=lambda fmt, when=None: "12:00"))
    monkeypatch.setenv("LORATUI_CONFIG_DIR", str(FIXED / "user-config"))
    config = snap_project.load()
    config.dataset.resolution = 256
    snap_project.save(config)
    assert main(["prepare", str(snap_project.root)]) == 0
    return snap_project


# Parameters: the beginner form with an epochs change (✎) and the estimate; the expert view scrolled to Learning
# with a refused value; the dialogs of the screen.
PARAMS_KEYS = {
    "beginner": ("ctrl+g", "4", "tab", "tab", "tab", "backspace", "backspace", "8", "0"),
    "expert": ("ctrl+g", "4", "ctrl+t", *("down",) * 10),  # then "50" in one go (below): refused
    "save-preset": ("ctrl+g", "4", "ctrl+s"),
    "choice": ("ctrl+g", "4", "ctrl+t", *("down",) * 12, "enter"),
    "browse": ("ctrl+g", "4", "ctrl+o"),
    # epochs changed (base model, output name, repeats, epochs), then back to the preset field: a replace dialog
    "load-over-changes": ("ctrl+g", "4", "tab", "tab", "tab", "backspace", "backspace", "8", "0", "shift+tab",
                          "shift+tab", "shift+tab", "shift+tab", "shift+tab", "enter", "down", "down", "enter"),
}


@pytest.mark.parametrize("view", PARAMS_KEYS)
def test_params(snap_compare, prepared_snap, view):
    async def go(pilot):
        await _settle(pilot)
        for key in PARAMS_KEYS[view]:
            await pilot.press(key)
            await pilot.pause(0.05)
        if view == "browse":  # the folder tree's loader is a worker that never ends: no waiting for workers
            await pilot.pause(1.0)
            return
        if view == "expert":
            # One change, not keystrokes: typed slowly, "5" alone is valid and saved before "50" is refused, so
            # the status line would depend on the machine's speed.
            pilot.app.screen.focused.value = "50"
        await _settle(pilot)
        await pilot.pause(0.5)  # past the save delay and the dialogs' key grace
        await _settle(pilot)

    assert snap_compare(WizardApp(prepared_snap.root), terminal_size=(80, 24), run_before=go)
