"""The pre-flight checklist before a run (loratui.training.checklist, `loratui check DIR --train`): every check
as a line with what was found and its fix, all of them at once rather than the first problem only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_data import make_project

from loratui.cli import main
from loratui.training.checklist import FAIL, OK, WARN, GpuFacts, GpuProcess, train_checklist

NO_GPU = lambda: None  # noqa: E731
FREE_GPU = lambda: GpuFacts("NVIDIA RTX 4090", 0.4, 24.0)  # noqa: E731


def _lines(checklist) -> dict[str, tuple[str, str, str]]:
    return {line.name: (line.state, line.found, line.fix) for line in checklist.lines}


@pytest.fixture
def ready(tmp_path: Path, tiny_sd15_dir: Path):
    project, config = make_project(tmp_path, {"akari": (1, [(128, 128)] * 4)})
    config.project.base_model = str(tiny_sd15_dir)
    project.save(config)
    return project


def test_a_prepared_project_passes_with_the_step_count_as_a_warning(ready) -> None:
    checklist = train_checklist(ready, gpu_probe=FREE_GPU)
    lines = _lines(checklist)
    assert checklist.ready
    assert lines["pictures prepared"] == (OK, "4 in dataset/1_akari/", "")
    assert lines["captions, trigger first"][:2] == (OK, '4 with "akari" first')
    assert lines["base model"][0] == OK and lines["base model"][1].startswith("sd15 (diffusers folder")
    state, found, fix = lines["total steps"]
    assert state == WARN and found.startswith("20 steps (10 epochs x 2)") and "below 1500" in fix
    assert lines["output folder writable"][0] == OK and lines["free disk"][0] == OK
    assert lines["GPU"] == (OK, "NVIDIA RTX 4090 free, 0.4 of 24 GB in use", "")
    assert [line.name for line in checklist.lines] == ["pictures prepared", "captions, trigger first", "base model",
                                                      "total steps", "output folder writable", "free disk", "GPU"]


def test_every_problem_is_listed_with_its_fix(tmp_path: Path) -> None:
    project, config = make_project(tmp_path, {"akari": (1, [(128, 128)] * 3)}, captions=False)
    config.project.base_model = "models/nowhere.safetensors"
    project.save(config)
    busy = lambda: GpuFacts("RTX 3090", 21.0, 24.0, (GpuProcess(4711, "python3", 20.1),))  # noqa: E731
    checklist = train_checklist(project, gpu_probe=busy)
    lines = _lines(checklist)
    assert not checklist.ready
    state, found, fix = lines["captions, trigger first"]
    assert state == FAIL and found == "no captions for the 3 pictures of akari" and "^r on Tags" in fix
    state, found, fix = lines["base model"]
    assert state == FAIL and "nowhere.safetensors" in found and fix.startswith("choose it on Params")
    assert lines["GPU"][0] == WARN and lines["GPU"][1] == "RTX 3090: python3 (pid 4711) uses 20.1 GB"
    by_name = {line.name: line for line in checklist.lines}
    assert by_name["captions, trigger first"].step == 3 and by_name["base model"].step == 4


def test_an_unprepared_project_says_to_prepare(tmp_path: Path) -> None:
    from loratui.demo.images import build_demo_images
    from loratui.project import create_project

    build_demo_images(tmp_path / "pics", count=2)
    project, _ = create_project(tmp_path / "proj", tmp_path / "pics", "akari")
    checklist = train_checklist(project, gpu_probe=NO_GPU)
    line = checklist.lines[0]
    assert (line.name, line.state, line.step) == ("pictures prepared", FAIL, 2)
    assert line.found == "none in dataset/5_akari/" and f"loratui prepare {project.root}" in line.fix
    assert _lines(checklist)["GPU"][0] == WARN  # no GPU: a warning, the demo trains on the CPU


def test_a_trigger_missing_from_the_captions_fails(ready) -> None:
    for caption in ready.dataset_dir.rglob("*.txt"):
        caption.write_text("tag 1, extra\n", encoding="utf-8")
    state, found, fix = _lines(train_checklist(ready, gpu_probe=NO_GPU))["captions, trigger first"]
    assert state == FAIL and found == 'trigger "akari" starts no caption: the LoRA would not learn it'
    first = sorted(ready.dataset_dir.rglob("*.txt"))[0]
    first.write_text("akari, tag 1\n", encoding="utf-8")
    state, found, _ = _lines(train_checklist(ready, gpu_probe=NO_GPU))["captions, trigger first"]
    assert state == WARN and found == '3 of 4 captions do not start with "akari"'


def test_the_cli_prints_the_checklist(ready, capsys) -> None:
    code = main(["check", str(ready.root), "--train"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0] == "✓ pictures prepared: 4 in dataset/1_akari/"
    assert any(line.startswith("! total steps: 20 steps") for line in out)
    assert out[-1] == f"Ready: loratui train {ready.root} --detach"
    for caption in ready.dataset_dir.rglob("*.txt"):
        caption.unlink()
    assert main(["check", str(ready.root), "--train", "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["ready"] is False
    assert {"name": "captions, trigger first", "state": "fail"}.items() <= data["lines"][1].items()


def test_too_little_free_disk_fails_with_the_figures(ready, monkeypatch) -> None:
    from collections import namedtuple

    import loratui.training.checklist as checklist

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checklist.shutil, "disk_usage", lambda path: usage(10e9, 10e9 - 5e6, 5e6))
    state, found, fix = _lines(train_checklist(ready, gpu_probe=NO_GPU))["free disk"]
    assert state == FAIL and found.startswith("5.0 MB free, the run writes ~") and "save_every_n_epochs" in fix
