"""Snapshots of step 6 Preview and its dialogs at 80x24 with NO_COLOR=1: no checkpoints, a rendered grid (cells
and grid.json written by the test, so every run draws the same), the install dialog, the exists choice and the
done message. Update with `pytest tests/test_wizard_snapshots_preview.py --snapshot-update` and look at them."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from preview_fixtures import LORA_FOLDER, checkpoint_project, write_rendered_grid
from test_wizard_snapshots import FIXED, _settle, quiet_env  # noqa: F401 - quiet_env is a fixture

from loratui.tui.app import DIALOG_KEY_GRACE_S, WizardApp

ROOT = FIXED / "preview"


@pytest.fixture
def preview_project(quiet_env, monkeypatch):  # noqa: F811
    # Only the project's own Lora folder: the machine's WebUI folders differ from one computer to the next.
    monkeypatch.setattr("loratui.preview.install.find_lora_folders", lambda *a, **k: [])
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    return checkpoint_project(ROOT)


@pytest.fixture
def rendered_project(preview_project):
    write_rendered_grid(preview_project)
    return preview_project


async def _open_preview(pilot) -> None:
    await pilot.press("ctrl+g", "6")
    await _settle(pilot)


async def _install_dialog(pilot) -> None:
    await _open_preview(pilot)
    await pilot.press("ctrl+s")
    await _settle(pilot)
    await pilot.pause(DIALOG_KEY_GRACE_S)


def test_preview_without_checkpoints(snap_compare, quiet_env):  # noqa: F811
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    project = checkpoint_project(ROOT, checkpoints=False)
    assert snap_compare(WizardApp(project.root), terminal_size=(80, 24), run_before=_open_preview)


def test_preview_with_a_grid(snap_compare, rendered_project):
    async def pick(pilot):
        await _open_preview(pilot)
        await pilot.press("up", "left", "space")  # ep04 at 0.8: picked, beside the suggestion
        await _settle(pilot)

    assert snap_compare(WizardApp(rendered_project.root), terminal_size=(80, 24), run_before=pick)


def test_install_dialog(snap_compare, rendered_project):
    assert snap_compare(WizardApp(rendered_project.root), terminal_size=(80, 24), run_before=_install_dialog)


def test_install_exists_choice(snap_compare, rendered_project):
    lora_dir = rendered_project.root / LORA_FOLDER
    shutil.copy(rendered_project.output_dir / "akari.safetensors", lora_dir / "akari.safetensors")
    two_days_ago = time.time() - 2 * 86400 - 60
    os.utime(lora_dir / "akari.safetensors", (two_days_ago, two_days_ago))

    async def ask(pilot):
        await _install_dialog(pilot)
        await pilot.press("enter")
        await _settle(pilot)

    assert snap_compare(WizardApp(rendered_project.root), terminal_size=(80, 24), run_before=ask)


def test_install_done(snap_compare, rendered_project):
    async def install(pilot):
        await _install_dialog(pilot)
        await pilot.press("enter")
        await _settle(pilot)

    assert snap_compare(WizardApp(rendered_project.root), terminal_size=(80, 24), run_before=install)


def test_preview_pictures_at_120x40(snap_compare, rendered_project):
    assert snap_compare(WizardApp(rendered_project.root), terminal_size=(120, 40), run_before=_open_preview)
