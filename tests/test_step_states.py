"""loratui.tui.steps.read_state: the app reads it on every poll, so it keeps what it read from loratui.toml and
the folders until one of them changes; a change shows at the next read, and files written in the last two seconds
are never trusted to a folder's time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from loratui.cli import main
from loratui.dataset.image_scan import dataset_pictures
from loratui.project import Project, create_project
from loratui.tui import steps


@pytest.fixture
def prepared(tmp_path: Path) -> Project:
    from loratui.demo.images import build_demo_images

    build_demo_images(tmp_path / "pictures", count=4)
    project, _ = create_project(tmp_path / "akari", tmp_path / "pictures", "akari", trigger="akari")
    assert main(["prepare", str(project.root)]) == 0
    return project


def _age_everything(project: Project, seconds: float = 60.0) -> None:
    """Every file and folder of the project (and its pictures) as if written ``seconds`` ago."""
    then = time.time() - seconds
    config = project.load()
    roots = [project.root, *(project.source_dir(c) for c in config.concepts)]
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in files + dirs:
                os.utime(Path(folder) / name, (then, then))
            os.utime(folder, (then, then))


def test_an_unchanged_project_is_not_read_again_and_a_caption_written_is_seen(prepared, monkeypatch):
    _age_everything(prepared)
    first = steps.read_state(prepared)
    assert first.steps[2].mark == steps.DONE and first.steps[3].mark == steps.NOT_STARTED
    loads = []
    real_load = Project.load
    monkeypatch.setattr(Project, "load", lambda self: loads.append(1) or real_load(self))
    again = steps.read_state(prepared)
    assert loads == [] and again.steps == first.steps  # nothing changed: nothing parsed or listed
    concept = prepared.load().concepts[0]
    loads.clear()
    for picture in dataset_pictures(prepared.concept_dir(concept)):
        picture.with_suffix(".txt").write_text("akari, red hair\n", encoding="utf-8")
    seen = steps.read_state(prepared)
    assert loads and seen.steps[3].mark == steps.DONE  # the captions' folder changed: read again


def test_a_setting_saved_is_seen_and_fresh_folders_are_not_cached(prepared):
    _age_everything(prepared)
    steps.read_state(prepared)
    config = prepared.load()
    config.concepts[0].trigger = ""
    prepared.save(config)  # loratui.toml rewritten (by rename): its stamp changes
    state = steps.read_state(prepared)
    assert state.config is not None and state.config.concepts[0].trigger == ""
    assert prepared.root not in steps._FILES_SEEN  # written just now: not trusted to its stamp
