"""Captions whose encoding can only be guessed: `loratui check` warns that training reads a guess, and
`loratui tags` names them and leaves their bytes alone."""

from __future__ import annotations

from PIL import Image

from loratui.cli import main
from loratui.errors import WARNING
from loratui.project import Project, check_dataset, create_project

KANJI = "akari, 赤髪, 笑顔".encode("shift_jis")  # no kana: reads as other, valid GB18030 hanzi


def _project(tmp_path) -> Project:
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    project, _ = create_project(tmp_path / "proj", pictures, "akari", repeats=5, trigger="akari")
    folder = project.dataset_dir / "5_akari"
    folder.mkdir(parents=True)
    for stem in ("a", "b"):
        Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / f"{stem}.png")
    (folder / "a.txt").write_bytes(KANJI)
    (folder / "b.txt").write_text("akari, smile\n", encoding="utf-8")
    return project


def test_check_warns_that_training_reads_a_guessed_caption(tmp_path):
    project = _project(tmp_path)
    problems = check_dataset(project, project.load())
    assert [(p.severity, p.message) for p in problems] == [
        (WARNING, "1 caption (a.txt): encoding could not be told for sure, so training reads a guess that may "
                  "garble the tags: open it in a text editor and save it as UTF-8")]


def test_tags_delete_names_the_guessed_caption_and_leaves_its_bytes(tmp_path, capsys):
    project = _project(tmp_path)
    folder = project.dataset_dir / "5_akari"
    assert main(["tags", str(project.root), "--delete", "smile"]) == 0
    out = capsys.readouterr()
    assert (folder / "a.txt").read_bytes() == KANJI
    assert (folder / "b.txt").read_bytes() == b"akari\n"
    assert (f"{folder / 'a.txt'}: its encoding could not be told for sure (it reads as GB18030 (GBK), which may be "
            "wrong): loratui will not rewrite it; open it in a text editor and save it as UTF-8") in out.out + out.err
