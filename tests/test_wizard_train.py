"""Step 5 Train (design §4.5, §6), driven with Pilot at 80x24 on tiny trainable projects (tiny SD1.5, four
pictures at 128 px, two steps an epoch): the checklist with its ✗ lines and fixes, ^r starts a detached run
whose sparkline fills, the stop dialog stops it (STOPPED), ^r resumes it to DONE with its checkpoints, quitting
while it runs leaves it running and a new app re-attaches with the loss history, a job that failed shows FAILED
and its reason, and ^n with no run trains first and then opens Preview."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pilot_helpers import until
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
from loratui.tui.widgets.train_checkpoints import CheckpointList

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
    await until(pilot, condition, seconds)


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
        assert "Training started" in _message(screen)
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
        assert app.screen is screen and "Training goes on." in _message(screen)
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
        assert "Training resumed" in _message(screen)
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
        rows = "\n".join(screen.query_one(CheckpointList).lines)
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
            said = _message(screen)  # whole: with the job's progress beside it, the line cuts it at 80 columns
            assert said.endswith("running under a minute.") and said.startswith("Re-attached: training started ")
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
            assert "Re-attached: training started " in _message(screen)
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
        assert "Not yet: base model: choose it on Params" in _message(screen)
        assert not job_status(trainable, "training").kind

        start_job(trainable, TrainOptions())  # as a script (or an older loratui) would
        await _until(pilot, lambda: screen.update.status.state == "failed", seconds=90)
        failed = _state(screen)
        assert failed.startswith("FAILED  ") and "gone.safetensors" in failed
        assert "Training FAILED" in _message(screen)


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
        assert app.screen is screen and "Not yet: pictures prepared" in _message(screen)


async def test_next_with_no_run_trains_first_then_opens_preview(tmp_path, tiny_sd15_dir):
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=1)
    app = WizardApp(project.root)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _open_train(pilot, app)
            await _until(pilot, lambda: screen.checklist is not None)
            await pilot.press("ctrl+n")
            assert app.screen is screen and "Preview opens when it is done" in _message(screen)
            await _until(pilot, lambda: app.current == 6 and getattr(app.screen, "_read_once", False))
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


# --- the palette's Train commands, enter on a checkpoint --------------------------------------------------------


def _hand_run(project, *, epochs: int = 4, every: int = 2, done: bool = True, alive_until=None) -> list[Path]:
    """A finished run written by hand through the job contract (two steps an epoch, a file every ``every``
    epochs, the final file last): no training. Returns the files in the order the run wrote them."""
    from loratui.jobs import events as ev
    from loratui.jobs.runner import job

    files: list[Path] = []
    total = epochs * 2
    with job(project, "train", ["train", str(project.root)]) as handle:
        handle.emit(ev.Plan(total_steps=total, steps_per_epoch=2, epochs=epochs, device="cpu"))
        for step in range(1, total + 1):
            handle.emit(ev.Step(step=step, total_steps=total, epoch=(step - 1) // 2 + 1, epochs=epochs,
                                loss=0.2 - step / 100, lr=1e-4, images_per_s=3.0))
            epoch = step // 2
            if step % 2 == 0 and (epoch % every == 0 or epoch == epochs):
                name = "project.safetensors" if epoch == epochs else f"project-{epoch:06d}.safetensors"
                path = project.output_dir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\0" * 1000)
                handle.emit(ev.Checkpoint(path=str(path), epoch=epoch, step=step))
                files.append(path)
        if done:
            handle.done(steps=total, total_steps=total)
    return files


async def _palette(pilot, app, words: str) -> None:
    from pilot_helpers import run_palette

    await run_palette(pilot, words)


def _message(screen) -> str:
    return screen.query_one(StatusLine).message  # whole: the status line cuts it at 80 columns


async def test_palette_shows_the_train_command_and_the_log_file(tmp_path, tiny_sd15_dir):
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=1)
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_train(pilot, app)
        await _palette(pilot, app, "train: show the command")
        assert app.screen is screen
        assert _message(screen) == f"From a shell: loratui train {app.root} --detach"
        await _palette(pilot, app, "train: show the log")
        assert _message(screen) == "No log file yet: no training job has run in this project (^r starts one)."
    _hand_run(project, done=True)  # a run in a terminal: no log file
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_train(pilot, app)
        await _palette(pilot, app, "train: show the log")
        assert _message(screen).startswith("No log file: this training ran in a terminal")


async def test_palette_start_from_scratch_asks_then_moves_the_old_run_aside_and_trains(tmp_path, tiny_sd15_dir):
    from loratui.tui.screens.train import ScratchDialog

    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=1)
    old = _hand_run(project)  # a finished run: ^r refuses to train over it
    try:
        app = WizardApp(project.root)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _open_train(pilot, app)
            assert screen.update.trained
            await _palette(pilot, app, "train: start again")
            assert isinstance(app.screen, ScratchDialog)
            await pilot.pause(DIALOG_KEY_GRACE_S + 0.05)
            text = str(app.screen.query_one("#replace-box Static").render())
            assert "its 2 LoRA files in output/ go to output/old-<time>/" in text and "nothing is deleted" in text
            assert app.screen.focused.id == "no"  # the safe answer is focused
            await pilot.press("enter")
            assert app.screen is screen and "The earlier run stays as it is." in _message(screen)
            assert not job_status(project, "training").alive and all(path.is_file() for path in old)
            await pilot.press("ctrl+r")  # ^r on a finished run asks the same
            assert isinstance(app.screen, ScratchDialog)
            await pilot.pause(DIALOG_KEY_GRACE_S + 0.05)
            await pilot.press("escape")
            assert app.screen is screen and "The earlier run stays as it is." in _message(screen)

            await _palette(pilot, app, "train: start again")
            await pilot.pause(DIALOG_KEY_GRACE_S + 0.05)
            await pilot.press("r")
            assert app.screen is screen and "Training started again from scratch" in _message(screen)
            await _until(pilot, lambda: job_status(project, "training").alive or screen.update.status.state == "done")
            # Refused while it runs (the same check as ^r's start).
            if screen._alive():
                await _palette(pilot, app, "train: start again")
                assert app.screen is screen and "Training is running: stop it first" in _message(screen)
            await _until(pilot, lambda: screen.update.status.state == "done" and not screen._launched)
            await pilot.pause(0.3)  # the run's end said first: the log's path is the last message then
            await _palette(pilot, app, "train: show the log")
            log = job_status(project, "training").log_path
            assert log and _message(screen) == f"Log: {log}"
        assert "--from-scratch" in job_status(project, "training").argv  # through start_job, as ^r starts
        archived = list(project.output_dir.glob("old-*"))
        assert len(archived) == 1
        assert sorted(p.name for p in archived[0].glob("*.safetensors")) == sorted(p.name for p in old)
        assert (project.output_dir / "project.safetensors").is_file()  # the new run's own final file
    finally:
        _end_job(project)


async def test_palette_start_from_scratch_is_refused_while_training_runs(tmp_path, tiny_sd15_dir):
    from loratui.jobs import events as ev
    from loratui.jobs.runner import job

    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=4)
    with job(project, "train", ["train", str(project.root)]) as handle:
        handle.emit(ev.Plan(total_steps=8, steps_per_epoch=2, epochs=4, device="cpu"))
        handle.emit(ev.Step(step=1, total_steps=8, epoch=1, epochs=4, loss=0.2, lr=1e-4, images_per_s=3.0))
        app = WizardApp(project.root)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _open_train(pilot, app)
            assert screen.update.status.alive
            await _palette(pilot, app, "train: start again")
            assert app.screen is screen  # no dialog
            assert _message(screen) == "Training is running: stop it first (^r asks), then start again from scratch."
        handle.done(steps=1, total_steps=8)


async def test_enter_on_a_checkpoint_opens_preview_on_its_row(tmp_path, tiny_sd15_dir):
    from loratui.tui.screens.preview import PreviewScreen

    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=6)
    files = _hand_run(project, epochs=6)  # ep02, ep04 and the final file (ep06)
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_train(pilot, app)
        checkpoints = screen.query_one(CheckpointList)
        await _until(pilot, lambda: len(checkpoints.rows) == 3)
        assert [line[:6] for line in checkpoints.lines] == ["  ep02", "  ep04", "▸ ep06"]  # the newest marked
        # Focus order (design §4.5): the log, then the checkpoints.
        assert screen.focused is screen.query_one(TrainLog)
        await pilot.press("tab")
        assert screen.focused is checkpoints
        await pilot.press("up", "up")  # the mark follows the highlight
        assert checkpoints.lines[0].startswith("▸ ep02") and checkpoints.lines[2].startswith("  ep06")
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, PreviewScreen) and app.screen._read_once)
        preview = app.screen
        assert app.current == 6
        row = next(c.row for c in preview.view.cells if (project.root / c.checkpoint).resolve() == files[0].resolve())
        await _until(pilot, lambda: preview.cursor[0] == row)
        assert row == 0 and preview.current_cell().checkpoint.endswith("project-000002.safetensors")

        # Back on Train, the last checkpoint this time.
        await pilot.press("ctrl+g", "5")
        await _until(pilot, lambda: app.screen is screen)
        checkpoints.focus()
        await pilot.press("end", "enter")
        await _until(pilot, lambda: app.screen is preview)
        last = next(c.row for c in preview.view.cells if (project.root / c.checkpoint).resolve() == files[-1].resolve())
        await _until(pilot, lambda: preview.cursor[0] == last)
        assert last == len(preview.view.rows) - 1 != row
