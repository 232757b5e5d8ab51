"""The whole walk of issue 12 item 6, at 80x24 on the demo: `^n` on every step, and `enter` to accept the install
dialog's focused default, goes from the pictures to an installed LoRA with its card in DIR/webui/models/Lora.
Crop prepares, Tags tags (nothing is tagged yet) with the demo's DELs and trigger, Parameters moves on, Train
trains to DONE, Preview renders the grid and opens the install dialog on the suggested cell. Real jobs, tiny
models: a few minutes on a 2-core CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from loratui.tui.app import DIALOG_KEY_GRACE_S, WizardApp
from loratui.tui.widgets.status_line import StatusLine

pytestmark = pytest.mark.asyncio


def _said(app) -> str:
    lines = list(app.screen.query(StatusLine))
    return str(lines[0].render()) if lines else ""


async def _until(pilot, condition, seconds: float, what: str) -> None:
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}; the status line says: {_said(pilot.app)}")


def _step(app) -> int | None:
    step = getattr(app.screen, "step", None)
    return step.number if step is not None else None


async def test_ctrl_n_alone_goes_from_the_pictures_to_an_installed_lora(tmp_path: Path, monkeypatch):
    from loratui.demo.build import build_demo_project
    from loratui.demo.headless import FEATURE_TAGS, LORA_FOLDER
    from loratui.tui.screens.install_dialog import InstallDialog

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    demo = build_demo_project(tmp_path / "demo")
    root = demo.project.root
    app = WizardApp(root, demo=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: _step(app) == 1 and getattr(app.screen, "scanned_all", False), 60,
                     "the Images scan")
        for step, seconds in ((1, 30), (2, 120), (3, 180), (4, 30)):
            await pilot.press("ctrl+n")
            await _until(pilot, lambda step=step: _step(app) == step + 1, seconds, f"step {step + 1}")
            await pilot.pause(0.3)
            if step == 2:
                assert demo.picture_count == len(list(demo.project.dataset_dir.rglob("*.png")))
            if step == 3:
                captions = sorted(demo.project.dataset_dir.rglob("*.txt"))
                assert len(captions) == demo.picture_count
                for caption in captions:
                    tags = [t.strip() for t in caption.read_text(encoding="utf-8").split(",")]
                    assert tags[0] == "akari" and not set(FEATURE_TAGS) & set(tags), caption
        # Train: nothing has run, so ^n trains; Preview opens when the run is DONE.
        await pilot.press("ctrl+n")
        await _until(pilot, lambda: _step(app) == 6, 600, "training to end and Preview to open")
        output = demo.project.output_dir
        assert (output / f"{demo.project.output_name(demo.project.load())}.safetensors").is_file()
        # Preview: no grid yet, so ^n renders it, then opens the install dialog on the suggested cell.
        await pilot.pause(0.5)
        await pilot.press("ctrl+n")
        await _until(pilot, lambda: isinstance(app.screen, InstallDialog), 600, "the grid and the install dialog")
        await pilot.pause(DIALOG_KEY_GRACE_S + 0.1)
        await pilot.press("enter")
        await _until(pilot, lambda: app.screen.has_class("-done"), 60, "the install")
    lora_dir = root / LORA_FOLDER
    files = sorted(p.name for p in lora_dir.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".safetensors"), files
    card = json.loads((lora_dir / files[0]).read_text(encoding="utf-8"))
    grid = json.loads((demo.project.preview_dir / "grid.json").read_text(encoding="utf-8"))
    assert card["activation text"].startswith("akari")
    assert card["preferred weight"] == grid["suggestion"]["weight"]
