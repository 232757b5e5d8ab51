"""Dataset-wide tag edits: the tag table, delete/keep/trigger across concepts, one backup per step, exact undo."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from loratui.config import Concept
from loratui.dataset.caption_backup import backup_dir, take_snapshot
from loratui.dataset.captions import read_caption
from loratui.dataset.tag_edit_plan import TagEdit, plan_edit
from loratui.dataset.tag_edits import delete_tags, edit_tags, history, keep_tags, set_trigger, undo
from loratui.dataset.tag_table import tag_table
from loratui.errors import LoratuiError
from loratui.progress import Cancelled, CancelToken
from loratui.project import Project, create_project

AKARI = {
    "a1": "akari, 1girl, red_hair, blue eyes, smile",
    "a2": "1girl, Red Hair, blue_eyes, school uniform",
    "a3": "akari, 1girl, red hair, (smile:1.2), outdoors",
    "a4": None,  # a picture without a caption
}
SASUKE = {
    "s1": "1boy, black hair, red_eyes",
    "s2": "1boy, Black_Hair, outdoors, akari",
}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


def add_picture(project: Project, concept: Concept, stem: str, caption: str | bytes | None) -> Path:
    folder = project.concept_dir(concept)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.png").write_bytes(PNG)
    if caption is not None:
        (folder / f"{stem}.txt").write_bytes(caption if isinstance(caption, bytes) else caption.encode())
    return folder / f"{stem}.png"


@pytest.fixture
def project(tmp_path) -> Project:
    return two_concepts(tmp_path)


def two_concepts(tmp_path: Path) -> Project:
    """Two concepts: akari (trigger "akari", 3 repeats, 4 pictures) and sasuke (trigger "sasuke", 2 pictures)."""
    source = tmp_path / "pics"
    source.mkdir()
    project, config = create_project(tmp_path / "proj", source, "akari", repeats=3, trigger="akari")
    config.concepts.append(Concept(name="sasuke", source="../pics", repeats=2, trigger="sasuke"))
    project.save(config)
    akari, sasuke = config.concepts
    for stem, caption in AKARI.items():
        add_picture(project, akari, stem, caption)
    for stem, caption in SASUKE.items():
        add_picture(project, sasuke, stem, caption)
    return project


def state(project: Project) -> dict[str, bytes]:
    """Every caption's bytes and loratui.toml's, for byte-exact comparisons."""
    files = {p.relative_to(project.root).as_posix(): p.read_bytes() for p in project.dataset_dir.rglob("*.txt")}
    files["loratui.toml"] = project.config_path.read_bytes()
    return files


def tags_of(project: Project, concept: str, stem: str) -> list[str]:
    config = project.load()
    folder = project.concept_dir(next(c for c in config.concepts if c.name == concept))
    return read_caption(folder / f"{stem}.txt").tags


# --- the table -----------------------------------------------------------------------------------------------


def test_table_counts_every_tag_once_per_picture_across_spellings(project):
    table = tag_table(project, project.load())
    assert (table.images, table.uncaptioned, table.empty) == (6, 1, 0)
    assert table.concept_images == {"akari": 4, "sasuke": 2}
    assert table.concept_uncaptioned == {"akari": 1, "sasuke": 0}
    red = table.find("RED_HAIR")
    assert (red.tag, red.count, red.concepts) == ("red hair", 3, {"akari": 3})  # the most common spelling shows
    assert red.share == pytest.approx(3 / 6)
    assert table.concept_share(red, "akari") == pytest.approx(3 / 4)
    outdoors = table.find("outdoors")
    assert (outdoors.count, outdoors.concepts) == (2, {"akari": 1, "sasuke": 1})
    assert table.find("(smile:1.2)").count == 1 and table.find("smile").count == 1  # weights are their own tag
    assert table.find("akari").trigger_of == ["akari"]
    assert table.trigger_first == {"akari": 2, "sasuke": 0}
    by_count = table.sorted("count")
    assert [r.count for r in by_count] == sorted((r.count for r in by_count), reverse=True)
    assert by_count[0].tag == "1girl"
    by_name = [r.key for r in table.sorted("name")]
    assert by_name == sorted(by_name)


def test_table_of_one_concept_and_deleted_rows(project):
    config = project.load()
    config.tagging.deleted_tags = ["watermark"]
    project.save(config)
    table = tag_table(project, config, concept="sasuke")
    assert (table.images, table.concept_images) == (2, {"sasuke": 2})
    assert table.find("black hair").share == 1.0
    assert table.find("red hair") is None
    watermark = table.find("watermark")
    assert (watermark.count, watermark.deleted) == (0, True)
    with pytest.raises(LoratuiError, match="--concept nobody: no such concept"):
        tag_table(project, config, concept="nobody")


def test_table_reports_captions_that_need_fixing(project):
    config = project.load()
    akari = config.concepts[0]
    add_picture(project, akari, "gbk", "红色头发, 1girl".encode("gbk"))
    add_picture(project, akari, "bom", b"\xef\xbb\xbfakari, 1girl")
    add_picture(project, akari, "lines", "1girl\nsmile")
    add_picture(project, akari, "empty", b"")
    table = tag_table(project, config)
    warned = {note.path.stem: note.message for note in table.outcome.warnings}
    assert set(warned) == {"gbk", "bom", "lines", "empty"}
    assert "GB18030" in warned["gbk"] and "byte-order mark" in warned["bom"] and "2 lines" in warned["lines"]
    assert table.empty == 1
    assert table.find("红色头发").count == 1


# --- delete, keep, trigger, undo -----------------------------------------------------------------------------


def test_delete_then_undo_is_byte_identical(project):
    before = state(project)
    config = project.load()
    result = delete_tags(project, config, ["Red_Hair", "outdoors"])
    assert result.snapshot is not None
    assert "red hair" in config.tagging.deleted_tags and "outdoors" in config.tagging.deleted_tags
    assert project.load().tagging.deleted_tags == config.tagging.deleted_tags  # saved
    assert tags_of(project, "akari", "a2") == ["akari", "1girl", "blue_eyes", "school uniform"]
    assert tags_of(project, "sasuke", "s2") == ["sasuke", "1boy", "Black_Hair", "akari"]
    assert result.plan.removed_from == {"red hair": 3, "outdoors": 2}
    assert state(project) != before
    restored = undo(project)
    assert restored.config_restored and restored.remaining == 0
    assert state(project) == before


def test_delete_then_keep_restores_the_exact_tags(project):
    config = project.load()
    delete_tags(project, config, ["red hair", "blue eyes"])
    after_delete = {stem: tags_of(project, "akari", stem) for stem in ("a1", "a2", "a3")}
    assert all("red hair" not in tags and "blue eyes" not in tags for tags in after_delete.values())
    result = keep_tags(project, config, ["RED HAIR", "blue_eyes"])
    assert config.tagging.deleted_tags == []
    assert result.plan.restored_to == {"red hair": 3, "blue eyes": 2}
    # Back where they were, in their own spelling (the trigger was already first, so nothing else moved).
    assert tags_of(project, "akari", "a1") == ["akari", "1girl", "red_hair", "blue eyes", "smile"]
    assert tags_of(project, "akari", "a2") == ["akari", "1girl", "Red Hair", "blue_eyes", "school uniform"]
    assert tags_of(project, "akari", "a3") == ["akari", "1girl", "red hair", "(smile:1.2)", "outdoors"]
    assert "red_hair" not in " ".join(tags_of(project, "sasuke", "s1"))


def test_keep_of_a_tag_no_backup_holds_only_undeletes_it(project):
    config = project.load()
    config.tagging.deleted_tags = ["watermark", "signature"]
    project.save(config)
    result = keep_tags(project, config, ["watermark", "smile"])
    assert project.load().tagging.deleted_tags == ["signature"]
    assert any("no caption backup holds it" in n for n in result.notes)
    assert any("'smile': it was not deleted" in n for n in result.notes)


def test_trigger_goes_first_old_one_goes_and_undo_is_exact(project):
    before = state(project)
    config = project.load()
    result = set_trigger(project, config, "Akari_Chan", concept="akari")
    assert [c.trigger for c in project.load().concepts] == ["Akari_Chan", "sasuke"]
    for stem in ("a1", "a2", "a3"):
        tags = tags_of(project, "akari", stem)
        assert tags[0] == "Akari_Chan"
        assert "akari" not in tags  # the old trigger is gone
        assert [t.lower().replace("_", " ") for t in tags].count("akari chan") == 1
    # The picture without a caption gets one holding the trigger, with a warning that says why.
    assert tags_of(project, "akari", "a4") == ["Akari_Chan"]
    assert result.created == 1
    assert any("1 picture had no caption" in note.message and "class token" in note.message
               for note in result.outcome.warnings)
    # Another concept's captions are left alone (sasuke's own trigger goes first there).
    assert tags_of(project, "sasuke", "s2") == ["sasuke", "1boy", "Black_Hair", "outdoors", "akari"]
    undo(project)
    assert state(project) == before
    assert not (project.concept_dir(config.concepts[0]) / "a4.txt").exists()


def test_trigger_of_several_tags_and_deleting_the_trigger_keeps_it_first(project):
    config = project.load()
    set_trigger(project, config, "akari, schoolgirl", concept="akari")
    result = delete_tags(project, config, ["schoolgirl", "smile"])
    assert tags_of(project, "akari", "a1") == ["akari", "schoolgirl", "1girl", "red_hair", "blue eyes"]
    assert any("trigger word of akari" in n for n in result.notes)


def test_trigger_needs_a_concept_when_there_are_several(project):
    config = project.load()
    with pytest.raises(LoratuiError, match=r"2 concepts \(akari, sasuke\).*--concept NAME"):
        set_trigger(project, config, "hero")
    with pytest.raises(LoratuiError, match="--trigger: empty"):
        set_trigger(project, config, " , ", concept="akari")
    assert history(project) == []


def test_bom_captions_are_rewritten_as_utf8_and_undo_gives_the_old_bytes(project):
    config = project.load()
    akari = config.concepts[0]
    bom = b"\xef\xbb\xbfakari, 1girl, smile"
    utf16 = b"\xff\xfe" + "猫耳, 1girl, smile".encode("utf-16-le")
    for stem, data in (("bom", bom), ("utf16", utf16)):
        add_picture(project, akari, stem, data)
    before = state(project)
    result = delete_tags(project, config, ["smile"])
    folder = project.concept_dir(akari)
    assert (folder / "bom.txt").read_bytes() == b"akari, 1girl\n"
    assert (folder / "utf16.txt").read_bytes() == "akari, 猫耳, 1girl\n".encode()
    warned = {note.path.name for note in result.outcome.warnings}
    assert {"bom.txt", "utf16.txt"} <= warned
    undo(project)
    assert state(project) == before
    assert (folder / "utf16.txt").read_bytes() == utf16


GUESSED_CAPTIONS = {  # a caption whose encoding can only be guessed, each also holding "smile"
    "gbk": "红色头发, 1girl, smile".encode("gbk"),
    "gb18030": "红色头发, 𠀀, smile".encode("gb18030"),
    "sjis": "ねこみみ, 1girl, smile".encode("cp932"),
    "kanji": "赤髪, 笑顔, smile".encode("shift_jis"),  # no kana: reads as (other) valid GB18030 hanzi
    "random": random.Random(3).randbytes(40) + b", smile",
    "utf16 no bom": "red hair, smile".encode("utf-16-le"),
    "cp1252": "café, smile".encode("cp1252"),
}


@pytest.mark.parametrize("edit", [TagEdit(delete=["smile"]), TagEdit(trigger="akr", concept="akari")],
                         ids=["delete", "trigger"])
def test_captions_of_a_guessed_encoding_are_left_byte_identical_and_named(project, edit):
    config = project.load()
    akari = config.concepts[0]
    for stem, data in GUESSED_CAPTIONS.items():
        add_picture(project, akari, stem, data)
    result = edit_tags(project, config, edit)
    folder = project.concept_dir(akari)
    for stem, data in GUESSED_CAPTIONS.items():
        assert (folder / f"{stem}.txt").read_bytes() == data, stem
    assert result.outcome.done > 0  # the UTF-8 captions were edited
    warned = {note.path.stem: note.message for note in result.outcome.warnings}
    for stem in GUESSED_CAPTIONS:
        assert warned[stem].startswith("its encoding could not be told for sure ("), stem
        assert warned[stem].endswith("loratui will not rewrite it; open it in a text editor and save it as UTF-8")
    assert "GB18030 (GBK), which may be wrong" in warned["kanji"]
    assert "text in no known encoding" in warned["cp1252"]


def test_several_undos_walk_back_in_order(project):
    config = project.load()
    steps = [state(project)]
    delete_tags(project, config, ["smile"])
    steps.append(state(project))
    set_trigger(project, config, "akr", concept="akari")
    steps.append(state(project))
    edit_tags(project, config, TagEdit(delete=["1girl", "1boy"], keep=["smile"]))
    assert [s.reason for s in history(project)] == [
        "delete 1girl, 1boy; keep smile", "trigger of akari: akr", "delete smile"]
    for expected in reversed(steps):
        undo(project)
        assert state(project) == expected
    with pytest.raises(LoratuiError, match="nothing to undo"):
        undo(project)


def test_undo_of_a_captions_only_backup_leaves_the_settings_alone(project):
    # What a tagging run takes: captions only. An interrupted backup (no manifest) is never undone.
    config = project.load()
    folders = [project.concept_dir(c) for c in config.concepts]
    before = state(project)
    take_snapshot(project.dataset_dir, folders, project.state_dir, "tag")
    (backup_dir(project.state_dir) / "99999999-interrupted").mkdir()
    folder = project.concept_dir(config.concepts[0])
    (folder / "a1.txt").write_text("overwritten by the tagger\n")
    (folder / "a4.txt").write_text("new\n")
    config.tagging.general_threshold = 0.5
    project.save(config)
    settings = project.config_path.read_bytes()
    restored = undo(project)
    assert (restored.snapshot.reason, restored.config_restored) == ("tag", False)
    assert (sorted(restored.written), restored.removed) == (["3_akari/a1.txt"], ["3_akari/a4.txt"])
    assert project.config_path.read_bytes() == settings
    assert {k: v for k, v in state(project).items() if k != "loratui.toml"} == {
        k: v for k, v in before.items() if k != "loratui.toml"}
    with pytest.raises(LoratuiError, match="nothing to undo"):
        undo(project)


def test_nothing_to_undo_in_a_fresh_project(project):
    with pytest.raises(LoratuiError, match="^nothing to undo: "):
        undo(project)


def test_unchanged_captions_are_not_rewritten_and_no_change_takes_no_backup(project):
    config = project.load()
    delete_tags(project, config, ["smile"])
    folder = project.concept_dir(config.concepts[1])
    inode = (folder / "s1.txt").stat().st_ino
    result = delete_tags(project, config, ["smile"])  # nothing left to do
    assert result.plan.nothing_to_do and result.snapshot is None
    assert len(history(project)) == 1
    result = delete_tags(project, config, ["school uniform"])
    assert (result.outcome.done, result.outcome.unchanged) == (1, 4)
    assert (folder / "s1.txt").stat().st_ino == inode


def test_deleting_a_tag_no_caption_holds_records_it(project):
    config = project.load()
    result = delete_tags(project, config, ["Watermark"])
    assert project.load().tagging.deleted_tags == ["Watermark"]
    assert any("in no caption; recorded as deleted" in n for n in result.notes)
    assert undo(project).config_restored
    assert project.load().tagging.deleted_tags == []


def test_a_caption_left_without_tags_is_removed_and_undo_brings_it_back(project):
    config = project.load()
    config.concepts[1].trigger = ""
    project.save(config)
    before = state(project)
    result = delete_tags(project, config, ["1boy", "black hair", "red eyes"])
    folder = project.concept_dir(config.concepts[1])
    assert not (folder / "s1.txt").exists()
    assert result.removed == 1
    assert any(note.path.name == "s1.txt" and "class token" in note.message for note in result.outcome.warnings)
    after_delete = state(project)
    result = keep_tags(project, config, ["black_hair"])  # the caption comes back with the kept tag
    assert (folder / "s1.txt").read_bytes() == b"black hair\n" and result.created == 1
    undo(project)
    assert state(project) == after_delete
    undo(project)
    assert state(project) == before


def test_plan_shows_the_result_without_writing(project):
    config = project.load()
    before = state(project)
    plan = plan_edit(project, config, TagEdit(delete=["smile"]))
    image = project.concept_dir(config.concepts[0]) / "a1.png"
    assert plan.after(image) == ["akari", "1girl", "red_hair", "blue eyes"]
    assert plan.after(project.concept_dir(config.concepts[0]) / "a4.png") is None
    assert state(project) == before and history(project) == []


def test_cancel_keeps_the_work_done_and_the_same_command_finishes_it(project):
    config = project.load()
    token = CancelToken()

    def cancel_after_first_write(progress):
        if progress.stage == "Writing captions":
            token.cancel()

    with pytest.raises(Cancelled):
        delete_tags(project, config, ["1girl", "1boy"], progress=cancel_after_first_write, cancel=token)
    written = [p for p in project.dataset_dir.rglob("*.txt") if "1girl" not in p.read_text()
               and "1boy" not in p.read_text()]
    assert len(written) == 1
    assert project.load().tagging.deleted_tags == []  # settings are saved last
    delete_tags(project, config, ["1girl", "1boy"])
    assert all("1girl" not in p.read_text() and "1boy" not in p.read_text()
               for p in project.dataset_dir.rglob("*.txt"))


def test_a_project_without_prepared_pictures_says_what_to_run(tmp_path):
    (tmp_path / "pics").mkdir()
    project, config = create_project(tmp_path / "proj", tmp_path / "pics", "akari")
    with pytest.raises(LoratuiError, match="no prepared pictures yet: run `loratui prepare"):
        delete_tags(project, config, ["smile"])
    assert tag_table(project, config).images == 0


# --- the CLI -------------------------------------------------------------------------------------------------


def loratui(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loratui", "tags", *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loratui: ") and text in lines[0], result.stderr


def test_cli_list(project):
    result = loratui(project.root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{project.root}: 6 pictures in 2 concepts, 1 without a caption"
    row = next(line for line in lines if line.strip().startswith("red hair"))
    assert row.split() == ["red", "hair", "3", "50%", "3", "0"]
    assert next(line for line in lines if line.strip().startswith("akari ")).endswith("trigger of akari")
    result = loratui(project.root, "--json", "--min-share", "40", "--sort", "name")
    data = json.loads(result.stdout)
    assert [t["tag"] for t in data["tags"]] == ["1girl", "akari", "red hair"]
    assert data["pictures"] == 6 and data["concepts"]["akari"]["uncaptioned"] == 1
    result = loratui(project.root, "--delete", "smile", "--list", "--json")
    data = json.loads(result.stdout)
    assert data["edit"]["deleted_tags"] == ["smile"] and data["edit"]["undo_available"]
    assert data["list"]["deleted"] == ["smile"]


def test_cli_delete_and_trigger_in_one_step_then_undo(project):
    before = state(project)
    result = loratui(project.root, "--delete", "red_hair", "Blue Eyes", "--delete", "watermark",
                     "--trigger", "akr", "--concept", "akari")
    assert result.returncode == 0, result.stderr
    assert "delete 'red hair': taken out of 3 captions" in result.stdout
    assert "delete 'watermark': in no caption; recorded as deleted" in result.stdout
    assert "trigger of akari: 'akr' (was 'akari')" in result.stdout
    assert "--undo" in result.stdout.splitlines()[-1]
    assert len(history(project)) == 1
    assert tags_of(project, "akari", "a1") == ["akr", "1girl", "smile"]
    listing = loratui(project.root).stdout
    assert any(line.split() == ["watermark", "0", "0%", "0", "0", "DEL"] for line in listing.splitlines())
    result = loratui(project.root, "--undo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Undone: delete red hair, blue eyes, watermark; trigger of akari: akr")
    assert "nothing more to undo" in result.stdout
    assert state(project) == before
    assert_one_line_error(loratui(project.root, "--undo"), "nothing to undo")


def test_cli_errors_are_one_line(project, tmp_path):
    assert_one_line_error(loratui(project.root, "--trigger", "hero"), "--concept NAME")
    assert_one_line_error(loratui(project.root, "--undo", "--delete", "x"), "--undo cannot be combined")
    assert_one_line_error(loratui(project.root, "--min-share", "150"), "--min-share: 150")
    assert_one_line_error(loratui(project.root, "--delete", "x", "--concept", "akari"), "--concept goes with")
    assert_one_line_error(loratui(project.root, "--trigger", "x", "--concept", "nobody"), "no such concept")
    assert_one_line_error(loratui(tmp_path / "nowhere"), "no such folder")
    (tmp_path / "pics2").mkdir()
    create_project(tmp_path / "empty", tmp_path / "pics2", "akari")
    assert_one_line_error(loratui(tmp_path / "empty"), "run `loratui prepare")


def test_cli_list_says_the_next_step_the_captions_need(project, capsys):
    from loratui.cli import main

    root = project.root

    def last_line(*flags: str) -> str:
        assert main(["tags", str(root), *flags]) == 0
        return capsys.readouterr().out.splitlines()[-1]

    assert last_line() == f"Next: take out what the trigger word should carry: `loratui tags {root} --delete TAG ...`"
    assert main(["tags", str(root), "--delete", "red_hair"]) == 0
    capsys.readouterr()
    # Deleted now: the advice moves on instead of repeating itself (akari is first in 2 of its 4 pictures).
    assert last_line() == ("Next: put the trigger word first in every caption of akari: "
                           f"`loratui tags {root} --trigger akari --concept akari`")
    for concept in ("akari", "sasuke"):
        assert main(["tags", str(root), "--trigger", concept, "--concept", concept]) == 0
    capsys.readouterr()
    assert last_line() == (f"Next: the captions are ready: count the steps with `loratui estimate {root}`, then "
                           f"`loratui train {root}` (to delete more: `loratui tags {root} --delete TAG ...`)")
