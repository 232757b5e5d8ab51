"""A new `loratui train` never destroys an earlier run: it refuses (naming --resume and --from-scratch), and
--from-scratch moves the old files to output/old-<time>/; `--resume` after a finished run says it is done."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_train import tiny_project

from loratui.cli import main
from loratui.jobs import events as ev
from loratui.jobs.runner import job


@pytest.fixture(autouse=True)
def _own_speed_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORATUI_DATA_DIR", str(tmp_path / "user-data"))


def _files(project) -> dict[str, str]:
    """Every file of output/ and the state folder, relative, with a hash of its bytes."""
    found = {}
    for folder in (project.output_dir, project.state_dir / "state"):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file():
                found[str(path.relative_to(project.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _stopped_run(tmp_path: Path, tiny_sd15_dir: Path):
    """A run of 3 epochs x 2 steps, checkpoint every epoch, stopped at step 3 (epoch 2's first step)."""
    from loratui.training.loop import run_training

    project, config = tiny_project(tmp_path, tiny_sd15_dir, epochs=3, save_every_n_epochs=1)
    with job(project, "train") as handle:
        handle.listen(lambda e: isinstance(e, ev.Step) and e.step == 3 and handle.stop_path.touch())
        assert run_training(project, config).stopped
    return project, config


def test_a_plain_train_over_a_stopped_run_refuses_and_changes_nothing(tmp_path, tiny_sd15_dir, capsys):
    project, _ = _stopped_run(tmp_path, tiny_sd15_dir)
    before = _files(project)
    assert "output/project-000001.safetensors" in before and "output/project-step00000003.safetensors" in before
    capsys.readouterr()
    assert main(["train", str(project.root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err == (f"loratui: {project.output_dir}: holds a stopped run that can go on (step 3 of 6; "
                   "project-000001.safetensors, project-step00000003.safetensors), which a new run would overwrite: "
                   f"continue it with `loratui train {project.root} --resume`, or start over with "
                   f"`loratui train {project.root} --from-scratch` (which moves them to output/old-<time>/, "
                   "deleting nothing)\n")
    assert _files(project) == before
    # --detach refuses the same way, before anything starts.
    assert main(["train", str(project.root), "--detach"]) == 2
    assert "--from-scratch" in capsys.readouterr().err and _files(project) == before


def test_from_scratch_moves_the_old_run_aside_and_trains_anew(tmp_path, tiny_sd15_dir, capsys):
    project, _ = _stopped_run(tmp_path, tiny_sd15_dir)
    before = _files(project)
    assert main(["train", str(project.root), "--from-scratch", "--max-steps", "3"]) == 0
    out = capsys.readouterr().out
    archives = list(project.output_dir.glob("old-*"))
    assert len(archives) == 1
    archive = archives[0]
    assert f"The earlier run's files are in output/{archive.name}/" in out
    moved = {name.replace(f"output/{archive.name}/state/", ".loratui/state/")
             .replace(f"output/{archive.name}/", "output/"): digest
             for name, digest in _files(project).items() if name.startswith(f"output/{archive.name}/")}
    assert moved == before  # every old byte kept, nothing deleted
    new = sorted(p.name for p in project.output_dir.glob("*.safetensors"))
    assert new == ["project-000001.safetensors", "project.safetensors"]  # only the new run's files


def test_resume_after_a_finished_run_says_it_is_done_and_rewrites_nothing(tmp_path, tiny_sd15_dir, capsys):
    project, _ = _stopped_run(tmp_path, tiny_sd15_dir)
    assert main(["train", str(project.root), "--resume"]) == 0
    assert "Done: 6/6 steps (resumed at step 3)" in capsys.readouterr().out
    before = _files(project)
    assert main(["train", str(project.root), "--resume"]) == 0
    out = capsys.readouterr().out
    assert out == (f"The run is done: its LoRA is {project.output_dir / 'project.safetensors'}. Nothing to resume; "
                   f"to train again: loratui train {project.root} --from-scratch (the old files are kept in "
                   "output/old-<time>/)\n")
    assert _files(project) == before
    # And a plain train over the finished run offers only --from-scratch (there is nothing to resume).
    assert main(["train", str(project.root)]) == 2
    err = capsys.readouterr().err
    assert "holds the files of an earlier run (project-000001.safetensors, project-000002.safetensors and 2 more)" \
        in err and "--resume" not in err and f"`loratui train {project.root} --from-scratch`" in err
    assert _files(project) == before


def test_a_finished_run_without_a_saved_state_is_done_too(tmp_path, tiny_sd15_dir, capsys):
    project, _ = tiny_project(tmp_path, tiny_sd15_dir, epochs=1, save_state=False)
    assert main(["train", str(project.root)]) == 0
    capsys.readouterr()
    assert main(["train", str(project.root), "--resume"]) == 0
    assert capsys.readouterr().out.startswith("The run is done: its LoRA is")


def test_resume_and_from_scratch_together_is_one_line(tmp_path, tiny_sd15_dir, capsys):
    project, _ = tiny_project(tmp_path, tiny_sd15_dir)
    assert main(["train", str(project.root), "--resume", "--from-scratch"]) == 2
    assert capsys.readouterr().err == ("loratui: --resume and --from-scratch: choose one (continue the stopped run, "
                                       "or move it aside and start over)\n")
