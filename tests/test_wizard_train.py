"""Step 5 Train (design §4.5, §6), driven with Pilot at 80x24 on tiny trainable projects (tiny SD1.5, four
pictures at 128 px, two steps an epoch): the checklist with its ✗ lines and fixes, ^r starts a detached run
whose sparkline fills, the stop dialog stops it (STOPPED), ^r resumes it to DONE with its checkpoints, quitting
while it runs leaves it running and a new app re-attaches with the loss history, a job that failed shows FAILED
and its reason, and ^n with no run trains first and then opens Preview."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_train import tiny_project
from textual.widgets import Sparkline

from loratui.jobs.command import TrainOptions
from loratui.jobs.detached import start_job
from loratui.jobs.status import job_status
from loratui.jobs.stop import request_stop
from loratui.tui.app import DIALOG_KEY_GRACE_S, WizardApp
from loratui.tui.screens.quit_dialog import QuitDialog
from loratui.tui.screens.stop_dialog import StopDialog
from loratui.tui.screens.train import TrainScreen
from loratui.tui.widgets.log_view import TrainLog
from loratui.tui.widgets.status_line import StatusLine

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def _offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LORATUI_DATA_DIR", str(tmp_path / "user-data"))  # the jobs inherit it


@pytest.fixture
def trainable(tmp_path: Path, tiny_sd15_dir: Path):
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=10, save_every_n_epochs=2)
    yield project
    _end_job(project)


def _end_job(project) -> None:
    """A run still going when a test ends is stopped, so the test's folder is not pulled from under it."""
    status = job_status(project, "training")
    if status.alive:
        request_stop(project, "training")
        for _ in range(600):
            if not job_status(project, "training").alive:
                return
            time.sleep(0.1)


def _text(widget) -> str:
    return str(widget.render())


async def _until(pilot, condition, seconds: float = 120.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError("timed out waiting for the screen")


async def _open_train(pilot, app) -> TrainScreen:
    await pilot.pause()
    if not isinstance(app.screen, TrainScreen):
        await pilot.press("ctrl+g", "5")
    await _until(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.update is not None)
    return app.screen


def _state(screen) -> str:
    return _text(screen.query_one("#train-state"))


def _said(screen) -> str:
    return _text(screen.query_one(StatusLine))


def _footer_keys(screen) -> dict[str, str]:
    return {key: binding.binding.description for key, binding in screen.active_bindings.items()
            if binding.binding.show}


async def test_start_watch_stop_resume_and_train_to_done(trainable):
    app = WizardApp(trainable.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_train(pilot, app)
        await _until(pilot, lambda: screen.checklist is not None)
        assert _state(screen) == "READY  every check passed: ^r starts training"
        checks = _text(screen.query_one("#check-lines"))
        assert "✓ pictures prepared: 4 in dataset/1_akari/" in checks and "✓ base model: sd15" in checks
        assert _footer_keys(screen)["ctrl+r"] == "Start"

        await pilot.press("ctrl+r")
        assert "Training started" in _said(screen)
        assert _footer_keys(screen)["ctrl+r"] == "Stop..."
        spark = screen.query_one(Sparkline)
        await _until(pilot, lambda: len(spark.data) >= 1)
        assert _state(screen).startswith("RUNNING  epoch ")
        assert "now " in _text(screen.query_one("#loss-now")) and "VRAM: n/a (CPU)" in _text(
            screen.query_one("#loss-lr"))

        # ^r while running asks first; the safe answer is focused and enter keeps it going.
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, StopDialog)
        await pilot.pause(DIALOG_KEY_GRACE_S + 0.05)
        assert str(app.screen.query_one("#keep").label) == "▸ Keep training"
        await pilot.press("enter")
        assert app.screen is screen and "Training goes on." in _said(screen)
        await pilot.press("ctrl+r")
        await pilot.pause(DIALOG_KEY_GRACE_S + 0.05)
        await pilot.press("s")  # stop and save
        assert app.screen is screen
        assert _state(screen).startswith("STOPPING")
        await _until(pilot, lambda: screen.update.status.state == "stopped")
        stopped = _state(screen)
        step = screen.update.status.step
        assert stopped == f"STOPPED at step {step} of 20. ^r resumes exactly where it was."
        assert _footer_keys(screen)["ctrl+r"] == "Resume"

        await pilot.press("ctrl+r")  # resume
        assert "Training resumed" in _said(screen)
        log = screen.query_one(TrainLog)
        await _until(pilot, lambda: any(f" step {step + 1}/20 epoch " in line.text for line in log.every))
        assert any(" resuming at step " in line.text for line in log.every)

        # Scrolling the log back pauses following; end follows again; ^t shows warnings only.
        log.focus()
        await pilot.press("up")
        assert "paused" in screen.query_one("#log-box").border_title
        await pilot.press("end")
        assert screen.query_one("#log-box").border_title == "Log, all lines, following"
        await pilot.press("ctrl+t")
        assert "warnings only" in screen.query_one("#log-box").border_title
        await pilot.press("ctrl+t")
        await _until(pilot, lambda: screen.update.status.state == "done" and not screen._launched)
        done = _state(screen)
        assert done.startswith("DONE  10 epochs in 0:0") and done.endswith(". ^n compares them.")
        rows = _text(screen.query_one("#ckpt-lines"))
        assert "▸ ep10" in rows and " loss " in rows
        # Both parts' checkpoints: the ones saved before the stop are listed after the resume too.
        labels = [row.label for row in screen.update.checkpoints]
        assert labels == ["ep02", "ep04", "ep06", "ep08", "ep10"]  # ep10: the final file
        assert all(row.loss is not None for row in screen.update.checkpoints)  # from the part that wrote each
        # The sparkline shows the whole run, the part before the stop too: one loss per step.
        assert len(screen.query_one(Sparkline).data) == 20
        assert screen.query_one("#ckpt-box").border_title == "Checkpoints 5 of 5"
    names = sorted(p.name for p in trainable.output_dir.glob("*.safetensors"))
    assert "project.safetensors" in names and f"project-step{step:08d}.safetensors" in names


async def test_quit_while_training_and_a_new_app_reattaches_with_the_loss_history(tmp_path, tiny_sd15_dir):
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=60, save_every_n_epochs=20)
    try:
        start_job(project, TrainOptions())
        app = WizardApp(project.root)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _open_train(pilot, app)  # opens on the running job's step
            assert app.current == 5
            await _until(pilot, lambda: len(screen.query_one(Sparkline).data) >= 3)
            said = _said(screen)
            assert said.endswith("running under a minute.") and "Re-attached: training started " in said
            seen = len(screen.query_one(Sparkline).data)
            await _until(pilot, lambda: app.state is not None and app.state.running is not None)
            await pilot.press("ctrl+q")
            assert isinstance(app.screen, QuitDialog)
            await pilot.pause(DIALOG_KEY_GRACE_S)
            text = _text(app.screen.query_one("#quit-text"))
            assert text.startswith("Training keeps running after you quit:\njob ")
            assert f"Follow the log   loratui logs {project.root} --follow" in text
            assert f"Stop it          loratui stop {project.root}" in text
            assert str(app.screen.query_one("#quit").label) == "▸ Quit, keep training"
            await pilot.press("enter")
            await pilot.pause()
        assert app.return_value == [f"loratui {project.root}", f"loratui logs {project.root} --follow",
                                    f"loratui stop {project.root}"]
        assert app.quit_lines[0] == "Training keeps running after you quit:"
        assert job_status(project, "training").alive  # quitting never stops it

        again = WizardApp(project.root)
        async with again.run_test(size=(80, 24)) as pilot:
            screen = await _open_train(pilot, again)
            spark = screen.query_one(Sparkline)
            await _until(pilot, lambda: len(spark.data) >= seen)
            # The whole history from the job's events, not only what came after the new app opened.
            assert spark.data[:seen] == job_status(project, "training").losses[:seen]
            assert "Re-attached: training started " in _said(screen)
            assert _state(screen).startswith("RUNNING  epoch ")
            assert len(screen.query_one(TrainLog).every) >= seen
    finally:
        _end_job(project)


async def test_a_missing_base_model_is_a_checklist_line_and_a_failed_job_shows_why(trainable):
    config = trainable.load()
    config.project.base_model = "models/gone.safetensors"
    trainable.save(config)
    app = WizardApp(trainable.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_train(pilot, app)
        await _until(pilot, lambda: screen.checklist is not None)
        checks = _text(screen.query_one("#check-lines"))
        assert "✗ base model: " in checks and "gone.safetensors" in checks
        assert "    choose it on Params (^o browses)" in checks
        assert _state(screen) == "NOT READY  1 check to fix first (✗ below)"
        await pilot.press("ctrl+r")  # refused, with the fix
        assert "Not yet: base model: choose it on Params" in _said(screen)
        assert not job_status(trainable, "training").kind

        start_job(trainable, TrainOptions())  # as a script (or an older loratui) would
        await _until(pilot, lambda: screen.update.status.state == "failed", seconds=90)
        failed = _state(screen)
        assert failed.startswith("FAILED  ") and "gone.safetensors" in failed
        assert "Training FAILED" in _said(screen)


async def test_a_project_not_prepared_shows_the_fix_on_its_checklist(tmp_path):
    from loratui.demo.images import build_demo_images
    from loratui.project import create_project

    build_demo_images(tmp_path / "pictures", count=3)
    project, _ = create_project(tmp_path / "akari", tmp_path / "pictures", "akari", trigger="akari")
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_train(pilot, app)
        await _until(pilot, lambda: screen.checklist is not None)
        lines = _text(screen.query_one("#check-lines")).splitlines()
        assert lines[0] == "✗ pictures prepared: none in dataset/5_akari/"
        assert lines[1] == f"    prepare them: ^r on Crop (loratui prepare {project.root})"
        assert "Fix the lines marked ✗ first" in _text(screen.query_one("#train-hint"))
        await pilot.press("ctrl+n")  # ^n cannot train an unprepared project: it says why and stays
        assert app.screen is screen and "Not yet: pictures prepared" in _said(screen)


async def test_next_with_no_run_trains_first_then_opens_preview(tmp_path, tiny_sd15_dir):
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=1)
    app = WizardApp(project.root)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _open_train(pilot, app)
            await _until(pilot, lambda: screen.checklist is not None)
            await pilot.press("ctrl+n")
            assert app.screen is screen and "Preview opens when it is done" in _said(screen)
            await _until(pilot, lambda: app.current == 6)
            assert job_status(project, "training").state == "done"
            assert (project.output_dir / "project.safetensors").is_file()
    finally:
        _end_job(project)


async def test_health_warnings_show_while_running_and_a_vanished_job_reads_lost(tmp_path, tiny_sd15_dir):
    """Figures written by hand through the job contract (no training): VRAM over 95 % is warned about in the loss
    box and the hint line; a job whose process vanished without a last word reads LOST with what to do."""
    from loratui.jobs import events as ev
    from loratui.jobs.record import read_record, write_record
    from loratui.jobs.runner import job

    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=6)
    with job(project, "train", ["train", str(project.root)]) as handle:
        handle.emit(ev.Plan(total_steps=12, steps_per_epoch=2, epochs=6, device="cuda:0"))
        for step in (1, 2, 3):
            handle.emit(ev.Step(step=step, total_steps=12, epoch=1, epochs=6, loss=0.2, lr=1e-4, images_per_s=3.0,
                                vram_gb=23.5, vram_total_gb=24.0))
        app = WizardApp(project.root)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _open_train(pilot, app)
            await _until(pilot, lambda: screen.update.warnings)
            assert _text(screen.query_one("#loss-health")).startswith("! VRAM 23.5 of 24 GB (98%)")
            assert _text(screen.query_one("#train-hint")).startswith(" ! VRAM 23.5 of 24 GB")
            assert "VRAM 23.5 of 24 GB" in _text(screen.query_one("#loss-lr"))
        handle.done(steps=3, total_steps=12)
    record = read_record(project, "training")
    record.status, record.finished = "running", None  # as a killed process leaves it: no lock, no last event
    write_record(project, record)
    lines = (Path(record.events).read_text(encoding="utf-8").splitlines())[:-1]  # its `done` never written
    Path(record.events).write_text("\n".join(lines) + "\n", encoding="utf-8")
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_train(pilot, app)
        assert _state(screen) == ("LOST: the job ended without a word (killed or out of memory?). Last state: step 3. "
                                  "^r starts again.")
