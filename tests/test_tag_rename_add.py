"""Renaming a tag everywhere and adding a tag to every caption: one step each, undone byte for byte."""

from __future__ import annotations

import pytest
from test_tag_ops import assert_one_line_error, loratui, state, tags_of, two_concepts

from loratui.dataset.tag_edit_plan import TagEdit, plan_edit
from loratui.dataset.tag_edits import edit_tags, undo
from loratui.dataset.tag_table import tag_table
from loratui.errors import LoratuiError
from loratui.project import Project


@pytest.fixture
def project(tmp_path) -> Project:
    return two_concepts(tmp_path)


def test_rename_takes_the_old_name_out_everywhere_and_retires_it(project):
    before = state(project)
    config = project.load()
    result = edit_tags(project, config, TagEdit(rename={"RED_HAIR": "crimson hair"}))
    # Every spelling of the tag gets the new name, in the place the old one had.
    assert tags_of(project, "akari", "a1") == ["akari", "1girl", "crimson hair", "blue eyes", "smile"]
    assert tags_of(project, "akari", "a2") == ["akari", "1girl", "crimson hair", "blue_eyes", "school uniform"]
    assert result.plan.renamed_in == {"red hair": 3}
    assert "rename 'red hair' to 'crimson hair': in 3 captions; 'red hair' is recorded as deleted" in result.notes[0]
    # The old name is recorded as deleted so the tagger does not bring it back.
    assert project.load().tagging.deleted_tags == ["red hair"]
    table = tag_table(project, project.load())
    assert table.find("crimson hair").count == 3 and table.find("red hair").count == 0
    undo(project)
    assert state(project) == before


def test_rename_onto_a_tag_a_caption_has_merges_them(project):
    config = project.load()
    edit_tags(project, config, TagEdit(rename={"smile": "1girl"}))
    # a1 had both: the tag is kept once, where 1girl already was.
    assert tags_of(project, "akari", "a1") == ["akari", "1girl", "red_hair", "blue eyes"]


def test_a_respelling_is_not_recorded_as_deleted(project):
    config = project.load()
    result = edit_tags(project, config, TagEdit(rename={"red hair": "Red Hair"}))
    assert tags_of(project, "akari", "a3")[2] == "Red Hair"
    assert project.load().tagging.deleted_tags == []
    assert result.notes == ["rename 'red hair' to 'Red Hair': in 3 captions"]


def test_add_goes_right_after_the_trigger_of_the_chosen_concept(project):
    before = state(project)
    config = project.load()
    result = edit_tags(project, config, TagEdit(add=["anime style", "smile"], concept="akari"))
    assert tags_of(project, "akari", "a2")[:3] == ["akari", "anime style", "smile"]
    # a1 had smile already: it stays where it was, only the missing one is added.
    assert tags_of(project, "akari", "a1") == ["akari", "anime style", "1girl", "red_hair", "blue eyes", "smile"]
    # The picture without a caption gets one: its trigger and the added tag.
    assert tags_of(project, "akari", "a4") == ["akari", "anime style", "smile"]
    assert "anime style" not in tags_of(project, "sasuke", "s1")
    assert result.plan.added_to == {"anime style": 4, "smile": 3}
    assert result.created == 1
    undo(project)
    assert state(project) == before


@pytest.mark.parametrize(("edit", "message"), [
    (TagEdit(rename={"nothing here": "x"}), "'nothing here' is in no caption"),
    (TagEdit(rename={"smile": "smile"}), "the same name"),
    (TagEdit(rename={"smile": "a, b"}), "no commas"),
    (TagEdit(rename={"akari": "hero"}), "trigger word of akari: change it with --trigger"),
    (TagEdit(rename={"smile": "sasuke"}), "'sasuke' is the trigger word of sasuke"),
    (TagEdit(rename={"smile": "outdoors"}, delete=["outdoors"]), "'outdoors' is deleted (DEL)"),
    (TagEdit(rename={"smile": "grin"}, delete=["smile"]), "also given to --delete"),
    (TagEdit(add=["outdoors"], delete=["outdoors"]), "--add 'outdoors': it is deleted"),
    (TagEdit(add=["akari"]), "--add 'akari': it is the trigger word of akari"),
])
def test_contradictions_are_refused_before_anything_is_written(project, edit, message):
    before = state(project)
    with pytest.raises(LoratuiError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_edit(project, project.load(), edit)
    assert state(project) == before


def test_cli_rename_and_add_in_one_step(project):
    before = state(project)
    result = loratui(project.root, "--rename", "red_hair", "crimson hair", "--add", "anime style", "--concept",
                     "akari")
    assert result.returncode == 0, result.stderr
    assert "rename 'red hair' to 'crimson hair': in 3 captions" in result.stdout
    assert "add 'anime style': put into 4 captions of akari, right after the trigger" in result.stdout
    assert tags_of(project, "akari", "a3")[:3] == ["akari", "anime style", "1girl"]
    result = loratui(project.root, "--undo")
    assert result.stdout.startswith("Undone: rename red_hair to crimson hair; add anime style"), result.stdout
    assert state(project) == before
    assert_one_line_error(loratui(project.root, "--rename", "a", "b", "--rename", "a", "c"), "given twice")
    assert_one_line_error(loratui(project.root, "--rename", "smile", "x", "--concept", "akari"),
                          "--concept goes with")
    assert_one_line_error(loratui(project.root, "--undo", "--add", "x"), "--undo cannot be combined")
