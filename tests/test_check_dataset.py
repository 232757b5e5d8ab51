"""`loratui check` on the dataset: concept folders, stale folders, captions and trigger words; errors vs warnings."""

from __future__ import annotations

import json
import struct

import pytest
from PIL import Image

from loratui.cli import main
from loratui.errors import WARNING
from loratui.project import Project, check_dataset, check_project, create_project


def _fake_sd15(path):
    """A header-only SD1 single file: check reads headers, never weights."""
    header = json.dumps({key: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for key in (
        "model.diffusion_model.out.2.bias", "cond_stage_model.transformer.text_model.final_layer_norm.bias")})
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + bytes(4))
    return path


@pytest.fixture
def project(tmp_path) -> Project:
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for index in range(4):
        Image.new("RGB", (600, 520), (40 * index, 90, 160)).save(pictures / f"p{index}.png")
    project, _ = create_project(tmp_path / "proj", pictures, "akari", repeats=5,
                                base_model=str(_fake_sd15(tmp_path / "model.safetensors")))
    return project


def _prepare_by_hand(project: Project, folder: str, captions: dict[str, str | None]) -> None:
    """Pictures (and captions; None = no caption file) as `loratui prepare` / `tag` would leave them."""
    target = project.dataset_dir / folder
    target.mkdir(parents=True, exist_ok=True)
    for stem, caption in captions.items():
        Image.new("RGB", (64, 64), (200, 30, 30)).save(target / f"{stem}.png")
        if caption is not None:
            (target / f"{stem}.txt").write_text(caption, encoding="utf-8")


def _lines(project: Project) -> list[str]:
    return [f"{'warning' if p.is_warning else 'error'} {p.key}: {p.message}"
            for p in check_project(project.root, warnings=True)]


def test_an_unprepared_project_is_not_prepared_yet_but_has_no_error(project):
    assert check_project(project.root) == []
    [problem] = check_project(project.root, warnings=True)
    assert problem.severity == WARNING and problem.key == "dataset"
    assert problem.message == f"not prepared yet: run `loratui prepare {project.root}`"


def test_prepare_then_tags_makes_a_clean_dataset(project, capsys):
    assert main(["prepare", str(project.root)]) == 0
    missing = _lines(project)
    assert missing == [f"warning concepts[1]: 4 of 4 pictures have no caption file (p0.png, p1.png, p2.png, \u2026): "
                       f"they would train on the class word \"akari\" alone: run `loratui tag {project.root}`"]
    assert main(["tags", str(project.root), "--trigger", "akari"]) == 0
    assert _lines(project) == []
    capsys.readouterr()
    assert main(["check", str(project.root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{project.root}: no problems found"
    config = project.load()
    config.concepts[0].repeats = 8
    project.save(config)
    assert [line.split(":")[0] for line in _lines(project)] == ["warning dataset", "warning dataset"]
    assert "dataset/5_akari: left from repeats 5" in _lines(project)[0]
    assert main(["prepare", str(project.root)]) == 0  # follows the rename: 5_akari becomes 8_akari
    assert _lines(project) == []


def test_hand_written_captions_that_start_with_the_trigger_pass(project):
    _prepare_by_hand(project, "5_akari", {"a": "akari, 1girl, smile", "b": "Akari, red_hair\n"})
    assert check_project(project.root, warnings=True) == []


def test_an_empty_caption_is_an_error_and_check_exits_2(project, capsys):
    _prepare_by_hand(project, "5_akari", {"a": "akari, smile", "b": "", "c": " \n, \n"})
    [problem] = check_project(project.root)
    assert not problem.is_warning and problem.key == "concepts[1]"
    assert problem.message == (f"2 caption files are empty (b.txt, c.txt): kohya stops on an empty caption: run "
                               f"`loratui tag {project.root}` or write tags into them")
    assert main(["check", str(project.root)]) == 2
    out = capsys.readouterr().out
    assert "concepts[1]: 2 caption files are empty" in out and out.splitlines()[-1] == f"1 problem in {project.root}"


def test_captions_without_the_trigger_are_counted_with_the_fix(project, capsys):
    _prepare_by_hand(project, "5_akari", {"a": "akari, smile", "b": "1girl, akari", "c": "1girl, solo"})
    assert check_project(project.root) == []
    assert _lines(project) == [f"warning concepts[1]: 2 of 3 captions do not start with the trigger \"akari\" "
                               f"(b.txt, c.txt): `loratui tags {project.root} --trigger \"akari\"` fixes it"]
    assert main(["check", str(project.root)]) == 0  # warnings alone keep exit status 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == f"{project.root}: no problems found"
    [warning, count] = err.splitlines()
    assert warning.startswith(f"warning: {project.config_path}: concepts[1]: 2 of 3 captions do not start")
    assert count == f"1 warning in {project.root}"


def test_a_trigger_in_no_caption_is_one_line(project):
    _prepare_by_hand(project, "5_akari", {"a": "1girl, smile", "b": "solo"})
    assert _lines(project) == [f"warning concepts[1]: trigger \"akari\" is in no caption, so the LoRA will not learn "
                               f"it: `loratui tags {project.root} --trigger \"akari\"` puts it first in every caption"]


def test_a_trigger_of_several_tags_must_lead_in_order(project):
    config = project.load()
    config.concepts[0].trigger = "akari, school_uniform"
    project.save(config)
    _prepare_by_hand(project, "5_akari", {"a": "akari, school uniform, smile", "b": "school_uniform, akari"})
    [line] = _lines(project)
    assert line.startswith("warning concepts[1]: 1 of 2 captions do not start with the trigger") and "(b.txt)" in line


def test_a_missing_caption_is_a_warning_naming_the_picture(project):
    _prepare_by_hand(project, "5_akari", {"a": "akari", "b": None})
    assert _lines(project) == [
        f"warning concepts[1]: 1 of 2 pictures have no caption file (b.png): they would train on the class word "
        f"\"akari\" alone: run `loratui tag {project.root}`"]


def test_a_folder_left_from_old_repeats_is_named_with_what_to_do(project):
    _prepare_by_hand(project, "5_akari", {"a": "akari"})
    config = project.load()
    config.concepts[0].repeats = 8
    project.save(config)
    _prepare_by_hand(project, "8_akari", {"a": "akari"})
    (project.dataset_dir / "notes").mkdir()  # kohya skips folders without a repeats prefix; so does check
    _prepare_by_hand(project, "3_old", {"x": "old"})
    assert _lines(project) == [
        "warning dataset: dataset/3_old: matches no concept: kohya would train it too: delete it, or add a "
        "[[concepts]] table named old with repeats = 3",
        "warning dataset: dataset/5_akari: left from repeats 5 of concept akari (now dataset/8_akari): kohya would "
        f"train it too: `loratui prepare {project.root}` moves it there if loratui made it; otherwise delete it"]


def test_with_several_concepts_each_is_checked_and_the_fix_names_the_concept(project):
    config = project.load()
    config.concepts.append(type(config.concepts[0])(name="rival", source=config.concepts[0].source, repeats=3,
                                                    trigger="rivalchan"))
    project.save(config)
    _prepare_by_hand(project, "5_akari", {"a": "1girl"})
    lines = _lines(project)
    assert lines[1] == (f"warning concepts[2]: dataset/3_rival: not prepared yet (no pictures): run `loratui prepare "
                        f"{project.root}`")
    assert lines[0].endswith(f"`loratui tags {project.root} --trigger \"akari\" --concept akari` puts it first in "
                             "every caption")


def test_check_json_lists_warnings_apart(project, capsys):
    _prepare_by_hand(project, "5_akari", {"a": "solo", "b": ""})
    assert main(["check", str(project.root), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert [p["message"].split(" (")[0] for p in data["problems"]] == ["1 caption file is empty"]
    assert [w["message"].split(",")[0] for w in data["warnings"]] == ["trigger \"akari\" is in no caption"]


def test_check_dataset_never_decodes_pictures(project, monkeypatch):
    _prepare_by_hand(project, "5_akari", {"a": "akari"})
    (project.dataset_dir / "5_akari" / "broken.png").write_bytes(b"not a picture")
    (project.dataset_dir / "5_akari" / "broken.txt").write_text("akari", encoding="utf-8")
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("check opened a picture"))
    assert check_dataset(project, project.load()) == []
