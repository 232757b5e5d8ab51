"""Step 3 Tags (design §4.3), driven with Pilot at 80x24 on prepared, tagged demo projects: filter the tags,
DEL two, set the trigger, ^s writes the captions through the engine (checked on disk), ^z puts them back byte for
byte, an empty trigger is refused, ^n writes what is pending and moves on, ^r runs the tagger as a job to the
end, and quitting while it runs leaves it running."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from pilot_helpers import until as _until
from textual.widgets import Input, OptionList

from loratui.cli import main
from loratui.project import Project, create_project
from loratui.tui.app import DIALOG_KEY_GRACE_S, WizardApp
from loratui.tui.screens.quit_dialog import QuitDialog
from loratui.tui.screens.tagger_dialog import TaggerDialog
from loratui.tui.screens.tags import PictureList, TagList, TagsScreen
from loratui.tui.widgets.status_line import StatusLine

pytestmark = pytest.mark.asyncio


def _text(widget) -> str:
    return str(widget.render())


def _make_project(tmp_path: Path, *, tag: bool, count: int = 6, side: int | None = None) -> Project:
    from loratui.demo.images import build_demo_images
    from loratui.demo.tagger_model import build_tiny_tagger

    pictures = tmp_path / "pictures"
    build_demo_images(pictures, count=count)
    project, _ = create_project(tmp_path / "akari", pictures, "akari", trigger="akari")
    tagger = build_tiny_tagger(tmp_path / "tagger", side=side) if side else build_tiny_tagger(tmp_path / "tagger")
    config = project.load()
    config.tagging.model = str(tagger)
    project.save(config)
    assert main(["prepare", str(project.root)]) == 0
    if tag:
        assert main(["tag", str(project.root)]) == 0
    return project


@pytest.fixture
def tagged(tmp_path: Path, monkeypatch) -> Project:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return _make_project(tmp_path, tag=True)


@pytest.fixture
def untagged(tmp_path: Path, monkeypatch) -> Project:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return _make_project(tmp_path, tag=False)


def _captions(project: Project) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(project.dataset_dir.rglob("*.txt"))}


def _tags(data: bytes) -> list[str]:
    return [t.strip() for t in data.decode().strip().split(",")]


async def _open(pilot, app) -> TagsScreen:
    await pilot.pause()
    if not isinstance(app.screen, TagsScreen):
        assert app.screen.step.number == 4  # a tagged project opens on the step after Tags
        await pilot.press("ctrl+g", "3")
    await _until(pilot, lambda: isinstance(app.screen, TagsScreen) and app.screen.loaded is not None
                 and not app.screen._busy)
    return app.screen


def _said(screen) -> str:
    return _text(screen.query_one(StatusLine))


async def test_filter_del_two_tags_set_the_trigger_write_and_undo(tagged):
    before = _captions(tagged)
    toml_before = tagged.config_path.read_bytes()
    assert before and all(_tags(b)[0] == "akari" for b in before.values())
    app = WizardApp(tagged.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        assert isinstance(screen.focused, TagList)  # the trigger is set: the list has the focus
        assert "first in 6/6" in _text(screen.query_one("#trigger-info"))
        everything = len(screen.shown)
        assert everything > 5 and all(" keep " in prompt or " trig  akari" in prompt for prompt in _prompts(screen))

        await pilot.press("b", "l", "u")  # letters filter the list
        assert {row.tag for row in screen.shown} <= {"blue eyes", "blush", "blue sky"}
        assert "blue eyes" in {row.tag for row in screen.shown} and "blush" in {row.tag for row in screen.shown}
        assert _text(screen.query_one("#filter-line")).startswith("filter: blu")
        assert f"of {everything} shown" in _text(screen.query_one("#filter-line"))
        picked = []
        for _ in range(2):
            row = screen.highlighted_row()
            picked.append(row.tag)
            await pilot.press("space")
            await pilot.press("down")
        assert set(picked) <= {"blue eyes", "blush", "blue sky"} and len(set(picked)) == 2
        prompts = _prompts(screen)
        assert sum(" DEL " in p for p in prompts) == 2
        assert "2 changes not written yet" in _text(screen.query_one("#pending"))
        await pilot.press("escape")  # clears the filter
        assert len(screen.shown) == everything and screen.filter_text == ""
        assert f"{everything - 2} keep  2 DEL" in screen.query_one("#tag-box").border_title

        # The caption preview of a picture holding a DEL tag says what goes.
        screen.query_one(TagList).highlighted = [r.tag for r in screen.shown].index(picked[0])
        await pilot.pause()
        preview = _text(screen.query_one("#preview"))
        assert "after ^s:" in preview and f"removed: {picked[0]}" in preview.replace("\n", " ")

        trigger = screen.query_one("#trigger", Input)
        trigger.focus()
        trigger.value = ""
        await pilot.press(*"akari2")
        assert trigger.value == "akari2"
        await pilot.press("enter")  # back to the list
        assert isinstance(screen.focused, TagList)
        assert "3 changes not written yet" in _text(screen.query_one("#pending"))
        assert _captions(tagged) == before  # nothing written yet

        await pilot.press("ctrl+s")
        await _until(pilot, lambda: not screen._busy and "Wrote" in _said(screen))
        assert "Wrote 6 captions (backup kept, ^z undoes)." in _said(screen)
        after = _captions(tagged)
        for name, data in after.items():
            tags = _tags(data)
            assert tags[0] == "akari2", name
            assert "akari" not in tags and not set(picked) & set(tags), name
        config = tomllib.loads(tagged.config_path.read_text())
        assert config["concepts"][0]["trigger"] == "akari2"
        assert set(picked) <= set(config["tagging"]["deleted_tags"])
        await _until(pilot, lambda: not screen._busy and screen.loaded.table.find(picked[0]).count == 0)
        assert screen.changes_count() == 0 and _text(screen.query_one("#pending")) == ""
        assert "first in 6/6" in _text(screen.query_one("#trigger-info"))

        await pilot.press("ctrl+z")
        await _until(pilot, lambda: not screen._busy and "Undone" in _said(screen))
        assert _captions(tagged) == before  # byte for byte
        assert tagged.config_path.read_bytes() == toml_before
        await _until(pilot, lambda: screen.loaded is not None and not screen._busy)
        assert screen.query_one("#trigger", Input).value == "akari"
        assert all(" keep " in p or " trig  akari" in p for p in _prompts(screen))


def _prompts(screen) -> list[str]:
    tags = screen.query_one(TagList)
    return [str(tags.get_option_at_index(i).prompt) for i in range(tags.option_count)]


async def test_an_empty_trigger_is_refused_on_write_and_next(tagged):
    before = _captions(tagged)
    app = WizardApp(tagged.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await pilot.press("space")  # one pending change
        trigger = screen.query_one("#trigger", Input)
        trigger.value = ""
        await pilot.press("ctrl+s")
        assert "✗ Trigger word: empty" in _said(screen)
        assert screen.focused is trigger
        await pilot.press("ctrl+n")
        assert app.screen is screen and "Trigger word: empty" in _said(screen)
        await pilot.pause(0.3)
    assert _captions(tagged) == before


async def test_sort_and_filter_keys_and_escape_ladder(tagged):
    app = WizardApp(tagged.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        everything = len(screen.shown)
        await pilot.press("ctrl+t")
        assert [r.key for r in screen.shown] == sorted(r.key for r in screen.shown)
        assert screen.query_one("#tag-box").border_subtitle == "by name"
        await pilot.press("space")  # first by name: DEL
        await pilot.press("ctrl+f")  # DEL only
        assert screen.filter_mode == "DEL" and len(screen.shown) == 1 and " DEL " in _prompts(screen)[0]
        await pilot.press("ctrl+f")  # keep only
        assert len(screen.shown) == everything - 1
        await pilot.press("ctrl+f", "ctrl+f")  # rare, then all again
        assert screen.filter_mode == "all" and len(screen.shown) == everything
        await pilot.press("enter")  # to the pictures of the tag
        assert isinstance(screen.focused, PictureList)
        await pilot.press("escape")  # leaves the pane, stays on the step
        assert isinstance(screen.focused, TagList) and app.screen is screen
        await pilot.press("x")
        assert screen.filter_text == "x"
        await pilot.press("backspace")
        assert screen.filter_text == ""


async def test_next_with_unsaved_changes_writes_them_and_moves_on(tagged):
    app = WizardApp(tagged.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        gone = screen.highlighted_row().tag
        await pilot.press("space", "ctrl+n")
        await _until(pilot, lambda: app.screen is not screen)
        assert app.screen.step.number == 4
        await pilot.press("escape")  # back: the same screen, the change written, nothing pending
        await _until(pilot, lambda: app.screen is screen and not screen._busy)
        assert screen.changes_count() == 0 and screen.loaded.table.find(gone).deleted
    for name, data in _captions(tagged).items():
        assert gone not in _tags(data) and _tags(data)[0] == "akari", name
    assert gone in tomllib.loads(tagged.config_path.read_text())["tagging"]["deleted_tags"]


async def test_the_tagger_runs_from_the_wizard_to_the_end(untagged):
    assert not _captions(untagged)
    app = WizardApp(untagged.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        assert "No captions yet: ^r (or ^n) runs the tagger." in _said(screen)
        assert screen.loaded.table.rows == []
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, TaggerDialog)
        assert app.screen.query_one("#model", Input).value == untagged.load().tagging.model
        await pilot.press("enter")  # "Run tagger" has the focus
        assert app.screen is screen
        await _until(pilot, lambda: "Tagging done" in _said(screen), 120)
        await _until(pilot, lambda: not screen._busy and screen.loaded.table.rows)
        assert len(screen.shown) > 5
        assert "first in 6/6" in _text(screen.query_one("#trigger-info"))
    captions = _captions(untagged)
    assert len(captions) == 6 and all(_tags(b)[0] == "akari" for b in captions.values())


def _slow_project(tmp_path: Path) -> Project:
    """A tagging run that lasts several seconds: a tagger with a big input and 54 pictures."""
    project = _make_project(tmp_path, tag=False, side=2048)
    folder = next(project.dataset_dir.iterdir())
    for picture in sorted(folder.glob("*.png")):
        for copy in range(8):
            shutil.copy(picture, folder / f"{picture.stem}_{copy}.png")
    return project


def _wait_stopped(project: Project) -> None:
    import time

    from loratui.jobs.status import job_status
    from loratui.jobs.stop import request_stop

    if job_status(project, "dataset").alive:
        request_stop(project, "dataset")
    for _ in range(1200):
        if not job_status(project, "dataset").alive:
            break
        time.sleep(0.05)
    assert not job_status(project, "dataset").alive


async def test_ctrl_r_cancels_a_running_tagger_and_the_screen_shows_what_it_wrote(tmp_path, monkeypatch):
    from loratui.jobs.status import job_status

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    project = _slow_project(tmp_path)
    app = WizardApp(project.root)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _open(pilot, app)
            await pilot.press("ctrl+r", "enter")
            await _until(pilot, lambda: screen.query_one("#tag-job").running)
            await pilot.press("ctrl+s")  # refused while the tagger writes the captions
            assert "The tagger is still running" in _said(screen)
            await pilot.press("ctrl+r")  # cancels
            assert "Stopping the tagger" in _said(screen)
            await _until(pilot, lambda: "Tagging STOPPED" in _said(screen), 120)
            assert job_status(project, "dataset").state == "stopped"
            await _until(pilot, lambda: not screen._busy)
            written = len(_captions(project))
            assert written < 54
            assert sum(e.has_caption for e in screen.loaded.entries) == written
    finally:
        _wait_stopped(project)


async def test_quitting_while_the_tagger_runs_leaves_it_running(tmp_path, monkeypatch):
    from loratui.jobs.status import job_status

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    project = _slow_project(tmp_path)
    app = WizardApp(project.root)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _open(pilot, app)
            await pilot.press("ctrl+r")
            assert isinstance(app.screen, TaggerDialog)
            await pilot.press("enter")
            await _until(pilot, lambda: job_status(project, "dataset").alive)
            assert "Tagging with tagger: ^r cancels; ^q leaves it running." in _said(screen)
            app.poll_state()
            await pilot.press("ctrl+q")
            assert isinstance(app.screen, QuitDialog)
            await pilot.pause(DIALOG_KEY_GRACE_S)  # keys in the dialog's first 300 ms are dropped
            await pilot.press("enter")  # quit, keep the tagger
            await pilot.pause()
        assert app.return_value and app.return_value[0] == f"loratui {project.root}"
        assert job_status(project, "dataset").alive and job_status(project, "dataset").kind == "tag"
    finally:
        _wait_stopped(project)


async def test_enter_edits_one_caption_with_a_backup_and_undo_puts_it_back(tagged):
    before = _captions(tagged)
    app = WizardApp(tagged.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await pilot.press("enter")  # from the tag to its pictures
        assert isinstance(screen.focused, PictureList)
        await pilot.press("down")
        entry = screen.pictures[1]
        assert "▸✓ " + entry.image.name in str(screen.query_one(PictureList).get_option_at_index(1).prompt)
        await pilot.press("enter")  # edit this caption
        field = screen.query_one("#caption-edit", Input)
        assert screen.focused is field and field.display
        assert field.value == before[entry.caption.name].decode().strip()
        assert f"Caption of {entry.image.name}" in _text(screen.query_one("#meaning"))
        await pilot.press("escape")  # cancels: nothing written
        assert isinstance(screen.focused, PictureList) and not field.display
        assert _captions(tagged) == before
        await pilot.press("enter", "end", *", smile", "enter")
        await _until(pilot, lambda: not screen._busy and "Wrote " + entry.caption.name in _said(screen))
        assert _tags(entry.caption.read_bytes())[-1] == "smile"
        assert {n: b for n, b in _captions(tagged).items() if n != entry.caption.name} == \
            {n: b for n, b in before.items() if n != entry.caption.name}
        await _until(pilot, lambda: not screen._busy and screen.loaded.table.find("smile") is not None)
        assert screen.loaded.table.find("smile").count == 1
        await pilot.press("ctrl+z")
        await _until(pilot, lambda: not screen._busy and "Undone" in _said(screen))
        assert _captions(tagged) == before


async def test_palette_marks_junk_tags_del_and_keep_all_undoes_the_marks(tagged):
    first = sorted(tagged.dataset_dir.rglob("*.txt"))[0]
    first.write_text(first.read_text().strip() + ", watermark, signature\n")
    app = WizardApp(tagged.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await pilot.press("ctrl+p", *"delete junk")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await _until(pilot, lambda: "Marked 2 junk tags DEL" in _said(screen))
        assert {screen.loaded.table.find(t).key for t in ("watermark", "signature")} == set(screen.marks)
        assert "2 changes not written yet" in _text(screen.query_one("#pending"))
        await pilot.press("ctrl+p", *"keep all")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await _until(pilot, lambda: not screen.marks)
        await pilot.press("ctrl+p", *"delete junk")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await _until(pilot, lambda: len(screen.marks) == 2)
        await pilot.press("ctrl+s")
        await _until(pilot, lambda: not screen._busy and "Wrote" in _said(screen))
    tags = _tags(first.read_bytes())
    assert "watermark" not in tags and "signature" not in tags and tags[0] == "akari"


async def test_palette_renames_the_highlighted_tag_and_adds_a_tag_to_all_then_undo(tagged):
    from loratui.tui.screens.tag_name_dialog import TagNameDialog

    before = _captions(tagged)
    app = WizardApp(tagged.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        await pilot.press(*"blush")
        await _until(pilot, lambda: screen.highlighted_row() is not None
                     and screen.highlighted_row().tag == "blush")
        holders = screen.loaded.table.find("blush").count
        await pilot.press("ctrl+p", *"rename a tag")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, TagNameDialog))
        dialog = app.screen
        assert dialog.query_one("#old", Input).value == "blush"  # the highlighted tag, ready to rename
        assert dialog.focused is dialog.query_one("#new", Input)
        await pilot.press("enter")  # an empty new name is refused in the dialog
        assert isinstance(app.screen, TagNameDialog)
        assert "New name: empty" in _text(dialog.query_one("#names-error"))
        await pilot.press(*"red cheeks", "enter")
        await _until(pilot, lambda: not screen._busy and "Wrote" in _said(screen))
        assert f"Rename 'blush' to 'red cheeks': in {holders} captions" in _said(screen)
        after = _captions(tagged)
        assert sum("red cheeks" in _tags(b) for b in after.values()) == holders
        assert not any("blush" in _tags(b) for b in after.values())
        assert "blush" in tomllib.loads(tagged.config_path.read_text())["tagging"]["deleted_tags"]

        await pilot.press("escape")  # clear the filter
        await pilot.press("ctrl+p", *"add a tag")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, TagNameDialog))
        await pilot.press(*"anime style", "enter")
        await _until(pilot, lambda: not screen._busy and "Add 'anime style'" in _said(screen))
        assert all(_tags(b)[:2] == ["akari", "anime style"] for b in _captions(tagged).values())
        await _until(pilot, lambda: screen.loaded.table.find("anime style") is not None)
        assert screen.loaded.table.find("anime style").count == len(before)

        for _ in range(2):
            await pilot.press("ctrl+z")
            await _until(pilot, lambda: not screen._busy and "Undone" in _said(screen))
            await _until(pilot, lambda: screen.loaded is not None and not screen._busy)
        assert _captions(tagged) == before


async def test_a_project_not_prepared_yet_says_so_and_does_not_start_the_tagger(tmp_path, monkeypatch):
    from loratui.demo.images import build_demo_images

    build_demo_images(tmp_path / "pictures", count=2)
    project, _ = create_project(tmp_path / "akari", tmp_path / "pictures", "akari", trigger="akari")
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+g", "3")
        screen = await _open(pilot, app)
        assert "No pictures prepared yet: esc, then ^r on Crop" in _said(screen)
        await pilot.press("ctrl+r")
        assert app.screen is screen and "No pictures prepared yet" in _said(screen)
        await pilot.press("ctrl+s")
        assert "Nothing to write" in _said(screen)
    assert not list(project.dataset_dir.rglob("*.txt"))


async def test_the_tagger_dialog_checks_thresholds_and_picks_the_merge_mode():
    from textual.app import App

    results: list = []

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(TaggerDialog("some/model", 0.35, 0.85, "append", 3), results.append)

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        dialog = app.screen
        general = dialog.query_one("#general", Input)
        general.value = "1.5"
        await pilot.press("tab", "tab", "tab", "tab", "tab")  # Run, Cancel, model, general, character -> merge
        await pilot.press("down", "space")
        assert "(◉) overwrite" in str(dialog.query_one("#merge").get_option_at_index(1).prompt)
        dialog.query_one("#model", Input).focus()
        await pilot.press("enter")
        assert app.screen is dialog and not results
        assert "✗ General threshold: 1.5 is not a number from 0 to 1" in _text(dialog.query_one("#tagger-error"))
        assert dialog.focused is general
        general.value = "0.5"
        await pilot.press("enter")
        await pilot.pause()
    (options,) = results
    assert (options.model, options.general_threshold, options.character_threshold, options.merge) == \
        ("some/model", 0.5, 0.85, "overwrite")


async def test_the_trigger_row_reads_trig_and_space_on_it_says_why_it_stays(tagged):
    app = WizardApp(tagged.root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot, app)
        tags = screen.query_one("#tags", OptionList)
        index = next(i for i, row in enumerate(screen.shown) if row.tag == "akari")
        assert str(tags.get_option_at_index(index).prompt).lstrip("▸ ").split()[:2] == ["trig", "akari"]
        tags.highlighted = index
        await pilot.pause()
        await pilot.press("space")
        assert not screen.marks  # nothing pending: the trigger is not a tag to delete
        assert "akari is the trigger, always first" in str(screen.query_one(StatusLine).render())
        # another trigger typed: the old word becomes a plain tag row, the new one is marked as it is typed
        field = screen.query_one("#trigger", Input)
        field.value = "blush"
        await pilot.pause()
        blush = next(i for i, row in enumerate(screen.shown) if row.tag == "blush")
        assert str(tags.get_option_at_index(blush).prompt).lstrip("▸ ").split()[:2] == ["trig", "blush"]
        assert " trig " not in str(tags.get_option_at_index(index).prompt)
