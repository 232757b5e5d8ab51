"""What `status` and `logs` say: every event as a sentence, a stop the user asked for is no warning, the other
jobs' results, no ETA from the first step, and where a stopped training run goes on."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from loratui.cli import main
from loratui.errors import LoratuiError
from loratui.jobs import events as ev
from loratui.jobs.kinds import STOPPED
from loratui.jobs.runner import job
from loratui.jobs.status import job_status
from loratui.project import Project

AT = 1_800_000_000.0


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "loratui.toml").write_text("")
    return Project(root)


def _status(project: Project, capsys, *flags: str) -> list[str]:
    assert main(["status", str(project.root), *flags]) == 0
    return capsys.readouterr().out.splitlines()


def _logs(project: Project, capsys, *flags: str) -> tuple[list[str], str]:
    assert main(["logs", str(project.root), *flags]) == 0
    captured = capsys.readouterr()
    return [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in captured.out.splitlines()], captured.err


def _stopped_run(project: Project, **done: object) -> None:
    with job(project, "train", ["train", str(project.root)]) as handle:
        handle.emit(ev.Plan(total_steps=10, steps_per_epoch=5, epochs=2))
        handle.emit(ev.Step(step=3, total_steps=10, epoch=1, loss=0.1, lr=1e-4, images_per_s=2.0, eta_s=7))
        handle.done(stopped=True, result=str(project.output_dir / "proj-step00000003.safetensors"), steps=3,
                    total_steps=10, **done)


def _save_state(project: Project, step: int, total: int) -> None:
    """The state a stop saves (only state.json matters to `status`: where the run stands)."""
    folder = project.state_dir / "state"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.json").write_text(json.dumps({"version": 2, "step": step, "epoch": 0, "batches_done": step,
                                                   "total_steps": total, "settings": {}}))


# --- sentences ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "done", "expected"), [
    ("train", ev.Done(result="output/d1.safetensors", seconds=17.3,
                      summary={"steps": 96, "total_steps": 96, "early": False}),
     "done in 17s: 96 of 96 steps; LoRA output/d1.safetensors"),
    ("train", ev.Done(result="output/d1.safetensors", summary={"steps": 10, "total_steps": 10, "early": True}),
     "done: 10 of 10 steps, ended early at --max-steps; LoRA output/d1.safetensors"),
    ("train", ev.Done(stopped=True, result="output/d1-step00000480.safetensors", seconds=600,
                      summary={"steps": 480, "total_steps": 960, "stopped_by": "Ctrl-C"}),
     "stopped after 10m00s at step 480 of 960 (Ctrl-C); LoRA so far output/d1-step00000480.safetensors"),
    ("train", ev.Done(stopped=True), "stopped"),
    ("grid", ev.Done(result="preview/grid-1.png", summary={"cells": 10, "rendered": 10, "cached": 0, "failed": 0,
                                                          "seconds": 3.7, "suggestion": "ep02 at 0.6"}),
     "done in 4s: 10 cells, 10 rendered, 0 from the cache, 0 failed, suggested ep02 at 0.6; PNG preview/grid-1.png"),
    ("grid", ev.Done(summary={"cells": 2, "rendered": 2, "cached": 0, "failed": 0, "suggestion": None,
                              "warnings": []}),  # as an older loratui wrote it
     "done: 2 cells, 2 rendered, 0 from the cache, 0 failed, no suggestion, 0 warnings"),
    ("prepare", ev.Done(result="/p/dataset", summary={"prepared": 24, "unchanged": 0, "skipped": 1, "warnings": 2}),
     "done: 24 prepared, 0 unchanged, 1 skipped, 2 warnings; pictures in /p/dataset"),
    ("tag", ev.Done(summary={"tagged": 24, "skipped": 0, "warnings": 1}), "done: 24 tagged, 0 skipped, 1 warning"),
])
def test_every_end_reads_as_a_sentence(kind: str, done: ev.Done, expected: str) -> None:
    from loratui.commands.event_lines import format_event

    context: dict = {}
    format_event(ev.Start(kind=kind, pid=1, argv=[kind, "P"], time=AT), context)
    line = format_event(done, context)
    assert line.split(" ", 1)[1] == expected
    assert "False" not in line and "[]" not in line and "{" not in line


def test_a_checkpoint_says_when_it_was_saved() -> None:
    from loratui.commands.event_lines import format_event

    assert format_event(ev.Checkpoint(path="output/a-000002.safetensors", epoch=2, step=48, time=AT)).endswith(
        "checkpoint after epoch 2 (step 48): output/a-000002.safetensors")
    assert format_event(ev.Checkpoint(path="output/a-step00000002.safetensors", epoch=0, step=2, time=AT)).endswith(
        "checkpoint during epoch 1 (step 2): output/a-step00000002.safetensors")
    assert format_event(ev.Checkpoint(path="a.safetensors", time=AT)).endswith("checkpoint saved: a.safetensors")


def test_an_event_of_a_newer_loratui_is_named_in_words() -> None:
    from loratui.commands.event_lines import format_event

    line = format_event(ev.Unknown(type="sample", fields={"prompt": "akari", "preview_cells": 4}, time=AT))
    assert line.endswith("sample (an event of a newer loratui): prompt akari, preview cells 4")


# --- stops are no warnings -----------------------------------------------------------------------------------


def test_a_stop_the_user_asked_for_is_not_a_warning(project, capsys):
    _stopped_run(project, stopped_by="Ctrl-C")
    status = job_status(project)
    assert (status.state, status.warnings, status.stop_reason) == (STOPPED, 0, "Ctrl-C")
    out = _status(project, capsys)
    assert "Message     stopped: Ctrl-C" in out and not any(line.startswith("Warnings") for line in out)
    lines, _ = _logs(project, capsys)
    assert lines[-1] == ("stopped at step 3 of 10 (Ctrl-C); LoRA so far "
                         f"{project.output_dir / 'proj-step00000003.safetensors'}")


def test_a_stop_written_as_a_warning_by_an_older_loop_is_not_counted_either(project, capsys):
    with job(project, "train", ["train"]) as handle:
        handle.warning("3 pictures are smaller than 512 px")
        handle.warning("stopped by request at step 3")
        handle.done(stopped=True, steps=3, total_steps=10)
    out = _status(project, capsys)
    assert f"Warnings    1 (loratui logs {project.root} shows them)" in out
    assert "Message     stopped by request at step 3" in out
    lines, _ = _logs(project, capsys)
    assert lines[1:] == ["warning: 3 pictures are smaller than 512 px", "stopping: stopped by request at step 3",
                         "stopped at step 3 of 10"]


def test_ctrl_c_in_a_tag_job_is_a_stop_not_a_warning(project, capsys):
    with pytest.raises(KeyboardInterrupt), job(project, "tag", ["tag"]):
        raise KeyboardInterrupt
    out = _status(project, capsys)
    assert "State       STOPPED" in out and "Message     interrupted (Ctrl-C)" in out
    assert not any(line.startswith("Warnings") for line in out)


# --- the other jobs ------------------------------------------------------------------------------------------


def test_status_shows_the_training_result_under_the_latest_grid(project, capsys):
    with job(project, "train", ["train", str(project.root)]) as handle:
        handle.done(result=str(project.output_dir / "proj.safetensors"), seconds=17, steps=96, total_steps=96,
                    early=False)
    time.sleep(1.05)  # records are ordered by their start time
    with job(project, "grid", ["grid", str(project.root)]) as handle:
        handle.done(result=str(project.preview_dir / "grid-1.png"), cells=10, rendered=10, cached=0, failed=0,
                    suggestion="ep02 at 0.6")
    out = _status(project, capsys)
    assert out[0].startswith("Job         grid") and "Result      preview/grid-1.png" in out
    assert out[out.index("") + 1] == (f"Other jobs  (`loratui status {project.root} --job KIND` shows one in "
                                      "full)")
    train = next(line for line in out if line.startswith("  train     DONE "))
    assert train.endswith(": 96 of 96 steps; LoRA output/proj.safetensors")


# --- the ETA -------------------------------------------------------------------------------------------------


def test_no_eta_until_steps_after_the_first_are_timed(project, capsys):
    """Step 1 ended 5 s in (one-off costs), the next ones 0.3 s apart: the loop's 475 s is not shown."""
    steps = [(1, 5.0, 475.0), (2, 5.3, 141.0), (3, 5.6, 84.0), (4, 5.9, 65.0)]
    written = [threading.Event(), threading.Event()]  # after steps 1-2, after steps 3-4
    go_on, finish = threading.Event(), threading.Event()

    def run() -> None:
        with job(project, "train", ["train"]) as handle:
            handle.emit(ev.Plan(total_steps=96, steps_per_epoch=24, epochs=4))
            for index, (step, elapsed, eta) in enumerate(steps):
                handle.emit(ev.Step(step=step, total_steps=96, epoch=1, loss=1.0, lr=1e-3, images_per_s=4.0,
                                    eta_s=eta, elapsed_s=elapsed))
                if index == 1:
                    written[0].set()
                    go_on.wait(30)
            written[1].set()
            finish.wait(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert written[0].wait(30)
        training = next(line for line in _status(project, capsys) if line.startswith("Training"))
        assert "ETA" not in training
        go_on.set()
        assert written[1].wait(30)
        training = next(line for line in _status(project, capsys) if line.startswith("Training"))
        assert training.endswith("ETA 28s")  # 92 steps x 0.3 s
        lines, _ = _logs(project, capsys)
        assert [line.split(" img/s")[1] for line in lines if line.startswith("step ")] == ["", "", "", " ETA 28s"]
    finally:
        go_on.set()
        finish.set()
        thread.join(30)


# --- where a stopped run goes on -----------------------------------------------------------------------------


def test_status_and_logs_name_the_resume_of_a_stopped_run(project, capsys):
    _stopped_run(project, stopped_by="Ctrl-C")
    _save_state(project, 3, 10)
    root = project.root
    assert f"Next        loratui train {root} --resume (goes on from step 3 of 10)" in _status(project, capsys)
    _, err = _logs(project, capsys)
    assert err.splitlines()[-1] == f"Next: loratui train {root} --resume (goes on from step 3 of 10)"


def test_a_failed_resume_keeps_the_earlier_run_in_sight(project, capsys):
    _stopped_run(project, stopped_by="Ctrl-C")
    _save_state(project, 3, 10)
    earlier = job_status(project).events_path
    root = project.root
    # `train --resume` fails at once, in a job of its own
    message = "out of memory loading the model or in the first step: try a smaller batch"
    with pytest.raises(LoratuiError), job(project, "train", ["train", str(root), "--resume"]):
        raise LoratuiError(message)
    out = _status(project, capsys)
    assert "State       FAILED" in out and f"Message     {message}" in out
    assert f"Next        loratui train {root} --resume (goes on from step 3 of 10) · loratui logs {root}" in out
    lines, err = _logs(project, capsys)
    shown = Path(earlier).relative_to(root).as_posix()
    assert lines[:2] == [f"start: train job (pid {os.getpid()}): loratui train {root} --resume",
                         f"error: {message}"]
    assert lines[2:4] == ["", f"This job ran no step; the run before it ({shown}) ended like this (last 4 of 4 "
                              "lines):"]
    assert lines[4].startswith("start: train job") and lines[-1].startswith("stopped at step 3 of 10 (Ctrl-C)")
    assert err.splitlines()[-1] == f"Next: loratui train {root} --resume (goes on from step 3 of 10)"


def test_a_resume_that_failed_on_the_state_itself_is_not_told_to_resume_again(project, capsys):
    _stopped_run(project, stopped_by="Ctrl-C")
    _save_state(project, 3, 10)
    root = project.root
    message = (f"{project.state_dir / 'state'}: cannot read the training state (gone): start over with "
               f"`loratui train {root} --from-scratch` (the files so far are kept)")
    with pytest.raises(LoratuiError), job(project, "train", ["train", str(root), "--resume"]):
        raise LoratuiError(message)
    out = _status(project, capsys)
    assert f"Message     {message}" in out and f"Next        loratui logs {root}" in out
    assert "--resume (goes on" not in out
