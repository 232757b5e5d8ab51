"""The wizard's frame (design §2), driven with Pilot at 80x24: the step bar and status line, ^n / esc / ^g,
help, the welcome screen making a project, the too-small line, the quit dialog while a job runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilot_helpers import until
from textual.binding import Binding
from textual.widgets import Footer, Input, OptionList

from loratui.jobs.runner import job
from loratui.project import Project, create_project
from loratui.tui.app import DIALOG_KEY_GRACE_S, WizardApp
from loratui.tui.screens.help import HelpScreen
from loratui.tui.screens.quit_dialog import QuitDialog
from loratui.tui.screens.step_screen import StepScreen
from loratui.tui.screens.welcome import WelcomeScreen
from loratui.tui.widgets.status_line import StatusLine
from loratui.tui.widgets.step_bar import StepBar

pytestmark = pytest.mark.asyncio


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    from loratui.demo.images import build_demo_images

    folder = tmp_path / "pictures"
    build_demo_images(folder, count=4)
    return folder


@pytest.fixture
def project(tmp_path: Path, pictures: Path) -> Project:
    created, _ = create_project(tmp_path / "akari", pictures, "akari", trigger="akari")
    return created


def _text(widget) -> str:
    return str(widget.render())


async def test_a_new_project_opens_on_its_first_open_step_with_the_frame(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, StepScreen) and screen.step.number == 1  # a new project opens on its pictures
        bar = _text(screen.query_one(StepBar))
        assert bar.startswith(" akari │ [1 Images] › 2 Crop › 3 Tags")
        assert len(bar) <= 79
        assert _text(screen.query_one("#purpose")).startswith(" Step 1 of 6: Images - ")
        assert _text(screen.query_one(StatusLine)).startswith(" no job running │")
        await pilot.press("ctrl+g", "5")  # every step opens; Train checks the project before a first run
        assert app.screen.step.number == 5 and _text(app.screen.query_one("#purpose")).startswith(" Step 5 of 6")


async def test_next_back_and_go_to_move_between_steps_and_keep_them(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+g", "4", "ctrl+n")
        assert app.screen.step.number == 5 and "[5 Train]" in _text(app.screen.query_one(StepBar))
        await pilot.press("ctrl+n")  # ^n trains first, and nothing is prepared here: it stays and says why
        assert app.screen.step.number == 5
        await pilot.press("ctrl+g", "6", "ctrl+n")
        assert app.screen.step.number == 6
        assert "This is the last step." in _text(app.screen.query_one(StatusLine))
        await pilot.press("escape", "escape")
        assert app.screen.step.number == 4
        fourth = app.screen
        await pilot.press("ctrl+g", "1")
        assert app.screen.step.number == 1
        for _ in range(4):  # esc clears what it can on the screen first, then says it is the first step
            await pilot.press("escape")
        assert app.screen.step.number == 1
        assert "This is the first step. ^q quits." in _text(app.screen.query_one(StatusLine))
        await pilot.press("ctrl+g", "4")
        assert app.screen is fourth  # the same screen, as it was left


async def test_help_lists_the_keys_filters_them_and_runs_the_chosen_one(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+g", "4", "tab", "tab")  # Epochs: a number field, where ? is help, not typed
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        first_help = app.screen
        keys = app.screen.query_one("#help-keys", OptionList)
        from loratui.tui.screens.params import ParamsScreen

        everything = keys.option_count
        assert everything > len(ParamsScreen.HELP_KEYS)  # the step's own keys and the global ones
        await pilot.press("g", "o")  # typing goes into the filter
        assert app.screen.query_one("#help-filter", Input).value == "go"
        found = [str(keys.get_option_at_index(i).prompt) for i in range(keys.option_count)]
        assert 1 <= len(found) < everything and any("go to step 1-6" in line for line in found)
        assert all("go" in line.lower() for line in found)
        await pilot.press("escape")  # clears the filter first
        assert isinstance(app.screen, HelpScreen) and keys.option_count == everything
        await pilot.press("escape")
        assert isinstance(app.screen, StepScreen)
        await pilot.press("f1")
        for key in "next step":
            await pilot.press(key)
        await pilot.press("enter")  # runs ^n: on to step 5
        for _ in range(20):
            await pilot.pause(0.05)
            if getattr(app.screen, "step", None) is not None and app.screen.step.number == 5:
                break
        assert isinstance(app.screen, StepScreen) and app.screen.step.number == 5
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen) and app.screen is not first_help  # Train's own help
        await pilot.press("escape", "ctrl+g", "4")
        await until(pilot, lambda: getattr(app.screen, "step", None) is not None and app.screen.step.number == 4)
        await pilot.press("f1")  # the help kept from before, left filtered by "next step": opens unfiltered
        assert app.screen is first_help
        assert app.screen.query_one("#help-filter", Input).value == ""
        await until(pilot, lambda: keys.option_count == everything)
        assert keys.highlighted == 0


async def test_the_welcome_screen_writes_nothing_until_a_start_is_chosen(tmp_path, pictures):
    root = tmp_path / "new"
    root.mkdir()
    app = WizardApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)
        await pilot.press("ctrl+n", "escape", "down", "up")
        assert list(root.iterdir()) == []  # nothing written yet
        await pilot.press("enter")  # New project here
        await pilot.pause()
        await pilot.press("enter", "enter")  # no folder given: refused, named
        assert "source: give the folder of your pictures" in _text(app.screen.query_one("#new-error"))
        assert list(root.iterdir()) == []
        app.screen.query_one("#source", Input).value = str(pictures)
        await pilot.press("enter", "enter")
        await pilot.pause()
        assert isinstance(app.screen, StepScreen) and app.screen.step.number == 1
    config = Project(root).load()
    assert [c.name for c in config.concepts] == ["pictures"] and config.concepts[0].trigger == "pictures"


async def test_below_80x24_one_line_says_how_big_the_terminal_must_be(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(72, 20)) as pilot:
        await pilot.pause()
        await pilot.pause()
        assert _text(app.screen.query_one("#too-small")) == "Make the terminal at least 80x24 (now 72x20)."
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert isinstance(app.screen, StepScreen)


async def test_quit_while_a_job_runs_asks_and_the_job_goes_on(project):
    with job(project, "prepare", ["prepare", str(project.root)]):
        app = WizardApp(project.root)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert app.screen.step.number == 2  # the running job's step
            assert "⟳ prepare" in _text(app.screen.query_one(StatusLine))
            await pilot.press("ctrl+q")
            assert isinstance(app.screen, QuitDialog)
            await pilot.pause(DIALOG_KEY_GRACE_S)
            # which button enter presses shows without colour: the focused one is marked
            assert str(app.screen.query_one("#quit").label) == "▸ Quit, keep prepare"
            assert str(app.screen.query_one("#stay").label) == "  Stay"
            await pilot.press("tab")
            assert str(app.screen.query_one("#quit").label) == "  Quit, keep prepare"
            assert str(app.screen.query_one("#stay").label) == "▸ Stay"
            await pilot.press("shift+tab")
            await pilot.press("escape")  # stay
            assert isinstance(app.screen, StepScreen)
            # Keys typed ahead of the dialog (here: at once) are dropped, never taken as its answer.
            await pilot.press("ctrl+q", "enter", "escape")
            assert isinstance(app.screen, QuitDialog)
            await pilot.pause(DIALOG_KEY_GRACE_S)
            await pilot.press("enter")  # quitting is focused: nothing is lost
            await pilot.pause()
        assert app.return_value == [f"loratui {project.root}", f"loratui status {project.root}",
                                    f"loratui logs {project.root} --follow", f"loratui stop {project.root}"]


async def test_the_palette_searches_behind_a_plain_prompt_sign(project):
    from textual.command import CommandPalette, SearchIcon

    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        palette = next(b.binding for b in app.screen.active_bindings.values()
                       if b.binding.action == "command_palette")
        assert app.get_key_display(palette) == "^p"  # the footer's "▏^p palette"
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        assert app.screen.query_one(SearchIcon).icon == ">"  # not the emoji, whose width varies


async def test_ascii_mode_draws_no_wide_glyphs(project):
    app = WizardApp(project.root, ascii_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        bar = _text(app.screen.query_one(StepBar))
        assert bar.startswith(" akari | [1 Images] > 2 Crop > 3 Tags")
        assert all(ord(ch) < 128 for ch in bar)
        # Textual's own scrollbars: a '#' thumb instead of eighth blocks and reversed colour
        from textual.scrollbar import ScrollBar

        drawn = ScrollBar.renderer.render_bar(size=10, virtual_size=40, window_size=10, position=3)
        text = "".join(segment.text for segment in drawn.segments)
        assert "#" in text and all(ord(ch) < 128 for ch in text)
    async with WizardApp(project.root).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        from textual.scrollbar import ScrollBar, ScrollBarRender

        assert ScrollBar.renderer is ScrollBarRender  # the next wizard without --ascii draws Textual's own


def _assert_footer_fits(app, where) -> None:
    # One entry per action, as the footer draws them (? and f1 are one "Help").
    shown = list({b.binding.action: b.binding for b in app.screen.active_bindings.values()
                  if b.binding.show}.values())
    # What the footer draws: "key description" per binding, then the palette key at the right.
    drawn = sum(len(app.get_key_display(b)) + len(b.description) + 2 for b in shown)
    assert drawn + len("▏^p palette") <= 80, (where, [(b.key, b.description) for b in shown])


async def test_every_footer_fits_80_columns_and_no_screen_binds_a_key_twice(project):
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        for number in range(1, 7):
            await pilot.press("ctrl+g", str(number))
            await pilot.pause()
            footer = app.screen.query_one(Footer)
            _assert_footer_fits(app, number)
            screen_keys = [k for b in app.screen.BINDINGS for k in (b.key if isinstance(b, Binding) else
                                                                     b[0]).split(",")]
            assert len(screen_keys) == len(set(screen_keys)), (number, screen_keys)
            assert footer.region.width == 80

        # The footer follows state: editing a crop box has the most keys of part 1's screens.
        await pilot.press("ctrl+g", "2")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.editing
        _assert_footer_fits(app, "crop, editing a box")


async def test_a_job_panel_starts_prepare_detached_follows_it_to_the_end_and_reattaches(project):
    from textual.app import App

    from loratui.jobs.command import PrepareOptions
    from loratui.jobs.status import job_status
    from loratui.tui.widgets.job_panel import JobPanel

    ended: list = []

    class Host(App):
        def compose(self):
            yield JobPanel(project, "prepare", id="panel")

        def on_job_panel_finished(self, message: JobPanel.Finished) -> None:
            ended.append(message.status.state)

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(JobPanel)
        assert panel.start(PrepareOptions())
        for _ in range(600):
            await pilot.pause(0.1)
            if ended:
                break
        assert ended == ["done"]
        assert not panel.display  # done: the row goes back to the step (the status line says DONE)
    assert job_status(project, "dataset").state == "done"
    assert len(list((project.dataset_dir).rglob("*.png"))) == 4  # written by the detached `loratui prepare`


async def test_open_recent_lists_remembered_projects_with_their_job_and_opens_one(tmp_path, project):
    from loratui.recent import remember

    remember(project.root)
    root = tmp_path / "elsewhere"
    root.mkdir()
    app = WizardApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        starts = app.screen.query_one("#start-list", OptionList)
        labels = [str(starts.get_option_at_index(i).prompt) for i in range(starts.option_count)]
        assert labels[2].startswith("  Open recent         akari")
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, StepScreen) and app.root == project.root.resolve()


async def test_a_failed_jobs_whole_reason_can_be_read(project):
    from loratui.errors import LoratuiError
    from loratui.tui.screens.message import MessageScreen

    reason = ("SmilingWolf/wd-swinv2-tagger-v3: not downloaded yet and HF_HUB_OFFLINE is set: download it while "
              "online, or set tagging.model to a local folder with model.onnx and selected_tags.csv")
    with pytest.raises(LoratuiError), job(project, "tag", ["tag", str(project.root)]):
        raise LoratuiError(reason)
    app = WizardApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+g", "4")
        app.action_show_message()
        await pilot.pause()
        assert isinstance(app.screen, MessageScreen)
        assert f"tag FAILED: {reason}" in str(app.screen.query_one("#message-text").render()).replace("\n", " ")
        await pilot.press("escape")
        assert isinstance(app.screen, StepScreen)
