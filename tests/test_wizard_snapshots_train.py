"""Snapshots of step 5 Train at 80x24 with NO_COLOR=1: before the first run (the checklist), running, done,
failed, and the stop dialog. The jobs are written by hand with the engine's job contract (fixed times, losses and
files), never a live run, so each frame is the same every time; the clock the screen reads is fixed too.

Update after a deliberate change with `pytest tests/test_wizard_snapshots_train.py --snapshot-update`."""

from __future__ import annotations

import math
import shutil
import time
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_data import make_project
from test_wizard_snapshots import _settle, quiet_env  # noqa: F401 (quiet_env is a fixture)

from loratui.errors import LoratuiError
from loratui.jobs import events as ev
from loratui.jobs.record import read_record, write_record
from loratui.jobs.runner import job
from loratui.tui.app import WizardApp

FIXED = Path("/tmp/loratui-snapshots-train")
T0 = 1796000000.0  # 2026-11-29 ... UTC: when the made-up run started
STEPS, PER_EPOCH, EPOCHS = 1920, 96, 20


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch):
    """UTC, the checklist's disk and GPU figures fixed, and a settable "now" for the screen's own clock."""
    import loratui.training.checklist as checklist
    import loratui.tui.screens.train as train

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checklist.shutil, "disk_usage", lambda path: usage(100e9, 50e9, 50e9))
    monkeypatch.setattr(checklist, "nvidia_smi", lambda: None)
    clock = SimpleNamespace(now=T0)
    monkeypatch.setattr(train, "time", SimpleNamespace(time=lambda: clock.now, strftime=time.strftime,
                                                       localtime=time.localtime))
    yield clock
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.fixture
def train_project(quiet_env, fixed_clock, tiny_sd15_dir):  # noqa: F811
    """Four prepared, captioned pictures and the tiny SD1.5 inside the project (its path is on screen)."""
    shutil.rmtree(FIXED, ignore_errors=True)
    FIXED.mkdir(parents=True)
    project, config = make_project(FIXED, {"akari": (1, [(128, 128)] * 4)})
    shutil.copytree(tiny_sd15_dir, project.root / "models" / "tiny-sd15")
    config.project.base_model = "models/tiny-sd15"
    config.training.epochs, config.training.save_every_n_epochs, config.training.lr_scheduler = EPOCHS, 2, "cosine"
    project.save(config)
    return project


def _loss(step: int) -> float:
    """A falling loss with a fixed wobble: what a run's sparkline looks like."""
    return 0.09 + 0.07 * math.exp(-step / 250) + 0.012 * math.sin(step * 1.7)


def _write_run(handle, project, last_step: int) -> None:
    handle.emit(ev.Plan(total_steps=STEPS, steps_per_epoch=PER_EPOCH, epochs=EPOCHS, device="cuda:0", family="sd15",
                        config={"training": {"save_every_n_epochs": 2, "lr_scheduler": "cosine"}}, time=T0 + 5))
    for step in range(1, last_step + 1):
        epoch = (step - 1) // PER_EPOCH + 1
        handle.emit(ev.Step(step=step, total_steps=STEPS, epoch=epoch, epochs=EPOCHS, loss=_loss(step),
                            lr=1e-4 * (0.5 + 0.5 * math.cos(math.pi * step / STEPS)), images_per_s=3.1,
                            elapsed_s=step / 1.55, vram_gb=7.9, vram_total_gb=24.0, time=T0 + 5 + step / 1.55))
        if step % (2 * PER_EPOCH) == 0 and step < STEPS:  # the last epoch writes only the final file
            path = project.output_dir / f"project-{step // PER_EPOCH:06d}.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\0" * 37_000)
            handle.emit(ev.Checkpoint(path=str(path), epoch=step // PER_EPOCH, step=step, time=T0 + 5 + step / 1.55))


def _fix_record(project, *, finished: float | None = None) -> None:
    record = read_record(project, "training")
    record.started, record.pid = T0, 48211  # both are on screen (the quit dialog names the job by its pid)
    if finished is not None:
        record.finished = finished
    write_record(project, record)


async def _open_train(pilot) -> None:
    await pilot.press("ctrl+g", "5")
    await _settle(pilot)
    await pilot.pause(0.3)  # the feed's first read
    await _settle(pilot)


def test_train_before_the_first_run(snap_compare, train_project):
    assert snap_compare(WizardApp(train_project.root), terminal_size=(80, 24), run_before=_open_train)


def test_train_running(snap_compare, train_project, fixed_clock):
    fixed_clock.now = T0 + 38 * 60
    with job(train_project, "train", ["train", str(train_project.root)]) as handle:
        _write_run(handle, train_project, 768)
        _fix_record(train_project)
        assert snap_compare(WizardApp(train_project.root), terminal_size=(80, 24), run_before=_open_train)


def test_train_stop_dialog(snap_compare, train_project, fixed_clock):
    fixed_clock.now = T0 + 38 * 60

    async def stop(pilot):
        await _open_train(pilot)
        await pilot.press("ctrl+r")
        await _settle(pilot)

    with job(train_project, "train", ["train", str(train_project.root)]) as handle:
        _write_run(handle, train_project, 768)
        _fix_record(train_project)
        assert snap_compare(WizardApp(train_project.root), terminal_size=(80, 24), run_before=stop)


def test_train_done(snap_compare, train_project, fixed_clock):
    with job(train_project, "train", ["train", str(train_project.root)]) as handle:
        _write_run(handle, train_project, STEPS)
        final = train_project.output_dir / "project.safetensors"
        final.write_bytes(b"\0" * 37_000)
        handle.emit(ev.Checkpoint(path=str(final), epoch=EPOCHS, step=STEPS, time=T0 + 1268))
        handle.emit(ev.Done(result=str(final), seconds=1262, summary={"steps": STEPS, "total_steps": STEPS},
                            time=T0 + 1270))
    _fix_record(train_project, finished=T0 + 1270)
    fixed_clock.now = T0 + 1270 + 21 * 60
    assert snap_compare(WizardApp(train_project.root), terminal_size=(80, 24), run_before=_open_train)


def test_train_failed(snap_compare, train_project, fixed_clock):
    with pytest.raises(LoratuiError), job(train_project, "train", ["train", str(train_project.root)]) as handle:
        _write_run(handle, train_project, 12)
        reason = ("loss became NaN at step 12: lower the learning rate or use bf16 (training.mixed_precision), or "
                  "set training.no_half_vae = true; the checkpoints written before it are kept")
        handle.emit(ev.JobError(message=reason, time=T0 + 25))
        raise LoratuiError(reason)
    _fix_record(train_project, finished=T0 + 30)
    fixed_clock.now = T0 + 30 + 5 * 60
    assert snap_compare(WizardApp(train_project.root), terminal_size=(80, 24), run_before=_open_train)


def test_train_quit_dialog(snap_compare, train_project, fixed_clock):
    fixed_clock.now = T0 + 38 * 60

    async def quit_(pilot):
        await _open_train(pilot)
        await pilot.press("ctrl+q")
        await _settle(pilot)

    with job(train_project, "train", ["train", str(train_project.root)]) as handle:
        _write_run(handle, train_project, 768)
        _fix_record(train_project)
        assert snap_compare(WizardApp(train_project.root), terminal_size=(80, 24), run_before=quit_)
