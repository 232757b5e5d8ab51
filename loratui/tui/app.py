"""The wizard app: one frame over six steps (design §2), the welcome screen for a folder without a project, the
global keys, and the project's state read on a timer from the engine's files (never torch)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from loratui.project import Project
from loratui.tui.commands import WizardCommands
from loratui.tui.glyphs import ASCII, UNICODE, Glyphs
from loratui.tui.pacing import Pacing
from loratui.tui.steps import STEPS, ProjectState, project_dir_label, read_state

MIN_WIDTH, MIN_HEIGHT = 80, 24
# Keys arriving this soon after a confirm dialog opens are typed-ahead keys meant for the screen below (design
# §2.12: over SSH a burst arrives late, and Textual may reorder it): they are dropped, never answer the dialog.
DIALOG_KEY_GRACE_S = 0.3
PALETTE_ICON = ">"  # Textual's default is a magnifier emoji, whose width differs from terminal to terminal
STATE_POLL_S = 0.5  # the status line follows a job at 2 updates/s: well under the 10/s budget of §2.11
# The screen of each step (module:class, imported when first opened).
STEP_SCREENS: dict[int, str] = {
    1: "loratui.tui.screens.images:ImagesScreen",
    2: "loratui.tui.screens.crop:CropScreen",
    3: "loratui.tui.screens.tags:TagsScreen",
    4: "loratui.tui.screens.params:ParamsScreen",
    5: "loratui.tui.screens.train:TrainScreen",
    6: "loratui.tui.screens.preview:PreviewScreen",
}
DEMO_BANNER = "DEMO: tiny models, made-up pictures: every step works, the results mean nothing"


class TooSmall(Screen):
    """Below 80x24 nothing is drawn half-clipped: one line says how big the terminal must be."""

    def compose(self) -> ComposeResult:
        yield Static("", id="too-small")

    def show_size(self, width: int, height: int) -> None:
        self.query_one("#too-small", Static).update(
            f"Make the terminal at least {MIN_WIDTH}x{MIN_HEIGHT} (now {width}x{height}).")


class WizardApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "loratui"
    COMMANDS = App.COMMANDS | {WizardCommands}
    graphics = None  # terminal_graphics.Support: run_wizard's probe (None: not probed, e.g. under Pilot)
    BINDINGS = [
        Binding("ctrl+n", "next_step", "Next", id="next"),
        Binding("escape", "back", "Back", show=False, id="back"),
        Binding("ctrl+g", "goto", "Go to", show=False, id="goto"),
        Binding("question_mark,f1", "help", "Help", id="help"),
        Binding("ctrl+l", "redraw", "Redraw", show=False, id="redraw"),
        # Not in the footer: at 80 columns it has room for the step's own keys only (design §2.1, a box being
        # edited on Crop needs all of it); help, the palette and "esc" on step 1 name ^q.
        Binding("ctrl+q", "quit_wizard", "Quit", show=False, priority=True, id="quit"),
    ]

    def __init__(self, root: Path, *, ascii_only: bool = False, demo: bool = False) -> None:
        self.ascii_only = ascii_only  # before App's own __init__, which asks get_driver_class
        super().__init__()
        self.root = Path(root).expanduser().absolute()
        self.glyphs: Glyphs = ASCII if ascii_only else UNICODE
        self.demo = demo
        self.project: Project | None = Project(self.root) if (self.root / "loratui.toml").is_file() else None
        self.state: ProjectState | None = read_state(self.project) if self.project else None
        self.current = 1
        self._steps: dict[int, Screen] = {}
        self.gpu_name = ""
        self.quit_lines: list[str] = []  # what run_wizard prints after quitting with a job running
        self.pacing = Pacing()  # the views that follow a job read less often while nobody types
        self._state_read = float("-inf")
        self.settings_claim = None  # loratui.wizard_lock.SettingsClaim, while this wizard edits the settings
        self.settings_holder = None  # the other wizard that edits them (this one is then read-only)

    # --- screens --------------------------------------------------------------------------------------------

    @property
    def project_label(self) -> str:
        return project_dir_label(self.root)

    @property
    def banner(self) -> str:
        return DEMO_BANNER if self.demo else ""

    def _first_screen(self) -> Screen | str:
        if self.project is None:
            from loratui.tui.screens.welcome import WelcomeScreen

            return WelcomeScreen(self.root)
        assert self.state is not None
        self.current = self.state.first_open_step()
        return self._step_screen(self.current)

    def _step_screen(self, number: int) -> str:
        """Each step's screen is made once and installed, so going back finds it as it was left."""
        name = f"step{number}"
        if number not in self._steps:
            import importlib

            module, _, class_name = STEP_SCREENS[number].partition(":")
            screen_class = getattr(importlib.import_module(module), class_name)
            self._steps[number] = screen_class(STEPS[number - 1])
            self.install_screen(self._steps[number], name=name)
        return name

    def get_driver_class(self):  # -> type[Driver]
        """Under --ascii the terminal's output goes through ascii_mode.to_ascii (see there)."""
        driver = super().get_driver_class()
        if not getattr(self, "ascii_only", False):
            return driver
        from loratui.tui.ascii_mode import ascii_driver

        return ascii_driver(driver)

    def on_mount(self) -> None:
        from loratui.tui import ascii_mode

        ascii_mode.apply(self.ascii_only)  # Textual's class-level borders, bars and scrollbars for this mode
        if self.ascii_only:
            self.add_class("-ascii")
        if self.project is not None:
            self._remember()
        self.push_screen(self._first_screen())

    def _remember(self) -> None:
        from loratui.recent import remember
        from loratui.wizard_lock import SettingsClaim

        if self.settings_claim is not None:
            self.settings_claim.release()  # another project opened: its own claim
        self.settings_claim = SettingsClaim(self.project.state_dir) if self.project else None
        self.settings_holder = self.settings_claim.acquire() if self.settings_claim else None
        remember(self.root)  # for the welcome screen's "Open recent" (it never fails: a nicety)
        self.set_interval(STATE_POLL_S, self.poll_state)
        self._find_gpu()
        self._check_size()

    def open_project(self, root: Path, *, demo: bool = False) -> None:
        """Open a project just made (new project, the demo) on its first open step."""
        self.root = Path(root).absolute()
        self.demo = demo
        self.project = Project(self.root)
        self.state = read_state(self.project)
        self._remember()
        self.current = self.state.first_open_step()
        self.switch_screen(self._step_screen(self.current))

    def go_to(self, number: int) -> None:
        if self.project is None:
            self._say("Choose a start first: there is no project here yet.")
            return
        number = max(1, min(len(STEPS), number))
        self.current = number
        self.switch_screen(self._step_screen(number))

    # --- state ----------------------------------------------------------------------------------------------

    def poll_state(self) -> None:
        if self.project is None or not self.pacing.due(self._state_read, STATE_POLL_S):
            return
        self._state_read = self.pacing.clock()
        self.state = read_state(self.project)
        from loratui.tui.screens.step_screen import StepScreen

        # The step under a dialog is still on show: its step bar and status line follow the job too.
        screen = next((s for s in reversed(self.screen_stack) if isinstance(s, StepScreen)), None)
        if screen is not None and screen.is_mounted:
            screen.refresh_frame()

    def on_command_palette_opened(self) -> None:
        from textual.command import CommandPalette, SearchIcon

        palette = self.screen
        if isinstance(palette, CommandPalette):
            palette.query_one(SearchIcon).icon = PALETTE_ICON

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            self.pacing.key_pressed()
            if self._dialog_just_opened():
                return  # dropped: see DIALOG_KEY_GRACE_S
        await super().on_event(event)

    def _dialog_just_opened(self) -> bool:
        from textual.app import ScreenStackError

        from loratui.tui.screens.confirm import ConfirmDialog

        try:
            screen = self.screen
        except ScreenStackError:  # no screen yet or any more: nothing to protect
            return False
        return isinstance(screen, ConfirmDialog) and screen.opened_for() < DIALOG_KEY_GRACE_S

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int | None = None, height: int | None = None) -> None:
        if width is None or height is None:
            width, height = self.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        showing = isinstance(self.screen, TooSmall)
        if small and not showing:
            self.push_screen(TooSmall())
        elif not small and showing:
            self.pop_screen()
        if small:
            self.call_after_refresh(lambda: isinstance(self.screen, TooSmall) and self.screen.show_size(width, height))

    def machine_facts(self) -> str:
        """For the status line at 120 columns: the GPU (looked up once, in a thread) and the project's free disk."""
        import shutil

        try:
            free = f"{shutil.disk_usage(self.root).free / 1e9:.1f} GB free"
        except OSError:
            free = ""
        return " · ".join(part for part in (self.gpu_name, free) if part)

    @work(thread=True, exit_on_error=False)
    def _find_gpu(self) -> None:
        from loratui.training.speed_history import detect_gpu_name

        self.gpu_name = detect_gpu_name()

    def _say(self, message: str, level: str = "i") -> None:
        from loratui.tui.widgets.status_line import StatusLine

        for line in self.screen.query(StatusLine):
            line.say(message, level)

    # --- global keys (design §2.7) --------------------------------------------------------------------------

    def action_next_step(self) -> None:
        if self.project is None:
            self._say("Choose a start and press enter first.")
            return
        from loratui.tui.screens.step_screen import StepScreen

        # The step validates and may first do what it still needs (prepare, write captions): then it moves on.
        # The last step is asked too: Preview renders the grid, then opens its install dialog.
        if isinstance(self.screen, StepScreen) and not self.screen.ready_for_next():
            return
        if self.current >= len(STEPS):
            self._say("This is the last step.")
            return
        self.go_to(self.current + 1)

    def action_back(self) -> None:
        if self.project is None:
            return
        if self.current <= 1:
            self._say("This is the first step. ^q quits.")
            return
        self.go_to(self.current - 1)

    def action_goto(self) -> None:
        from loratui.tui.screens.goto import GotoScreen

        self.push_screen(GotoScreen(), lambda number: number is not None and self.go_to(number))

    def action_help(self) -> None:
        """Each screen's help is built once and kept installed: building it (an option list, a footer) is the
        slowest key of the wizard while a training job shares the CPU, showing a kept one is a screen switch."""
        from loratui.tui.screens.help import HelpScreen
        from loratui.tui.screens.step_screen import StepScreen

        screen = self.screen
        name = f"help-{type(screen).__name__}-{getattr(getattr(screen, 'step', None), 'number', 0)}"
        if not self.is_screen_installed(name):
            if isinstance(screen, StepScreen):
                step = screen.step
                keys = [(key, what, "") for key, what in screen.HELP_KEYS]
                help_screen = HelpScreen(f"{step.number} {step.name}", screen.HELP_TEXT
                                         or step.purpose.capitalize() + ".", keys, step.shell(self.root))
            else:
                help_screen = HelpScreen("Start", "Choose a start: a new project in this folder, or the demo.",
                                         [], "")
            self.install_screen(help_screen, name)
        self.push_screen(name, self._run_from_help)

    def _run_from_help(self, action: str | None) -> None:
        if action:
            self.call_later(self.run_action, action)

    def action_redraw(self) -> None:
        self.refresh(layout=True, repaint=True)

    def action_show_command(self) -> None:
        step = STEPS[self.current - 1]
        self._say(f"From a shell: {step.shell(self.root)}")

    def action_show_message(self) -> None:
        """The status line's message and the job's reason, whole (the status line cuts them at its width)."""
        from loratui.tui.screens.message import MessageScreen
        from loratui.tui.widgets.status_line import StatusLine

        lines = [f"{line.level} {line.message}" for line in self.screen.query(StatusLine) if line.message]
        job = self.state.shown_job if self.state else None
        if job is not None and job.message:
            lines.append(f"{job.kind} {job.state.upper()}: {job.message}")
        self.push_screen(MessageScreen(lines))

    def action_quit_wizard(self) -> None:
        job = self.state.running if self.state else None
        if job is None:
            self.exit()
            return
        from loratui.tui.screens.quit_dialog import QuitDialog, labelled

        root = self.root
        if job.kind == "train":
            # Design §6: the job, how far it is, and the three ways back to it, printed again after the exit.
            pairs = [("Watch it again", f"loratui {root}"), ("Follow the log", f"loratui logs {root} --follow"),
                     ("Stop it", f"loratui stop {root}")]
            commands = [command for _, command in pairs]
            dialog = QuitDialog("training", commands, summary=_training_summary(job), labelled_commands=pairs)
            self.quit_lines = ["Training keeps running after you quit:", _training_summary(job), *labelled(pairs)]
        else:
            commands = [f"loratui {root}", f"loratui status {root}", f"loratui logs {root} --follow",
                        f"loratui stop {root}"]
            dialog = QuitDialog(job.kind or "job", commands)
            self.quit_lines = ["The job keeps running. Follow it with:", *(f"  {c}" for c in commands)]
        self.push_screen(dialog, lambda quit_: quit_ and self.exit(commands))


def _training_summary(job) -> str:  # noqa: ANN001 (a JobStatus)
    """``job 48211, 40% done, about 12 minutes left.``"""
    parts = [f"job {job.pid}" if job.pid else f"job {job.job_id}"]
    if job.percent is not None:
        parts.append(f"{job.percent:.0f}% done")
    if job.eta_s is not None:
        minutes = round(job.eta_s / 60)
        parts.append(f"about {minutes} minute{'s' if minutes != 1 else ''} left" if minutes else
                     "under a minute left")
    elif job.step is None:
        parts.append("still loading the model")
    return ", ".join(parts) + "."


def run_wizard(root: Path, *, ascii_only: bool = False, demo: bool = False) -> int:
    """`loratui [DIR]`: open the wizard; after quitting with a job running, print how to follow it."""
    if os.environ.get("NO_COLOR"):
        os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", "standard")
    app = WizardApp(root, ascii_only=ascii_only, demo=demo)
    from loratui.tui import terminal_graphics

    # One round trip before the first frame (DA1 ends it at once); the Preview palette offers Kitty/Sixel only
    # when the terminal said it draws them, never inside tmux or screen.
    skipped = terminal_graphics.skip_reason(os.environ)
    app.graphics = (terminal_graphics.Support(reason=skipped) if skipped else
                    terminal_graphics.probe(0, 1, timeout_s=0.5))
    result = app.run()
    if app.graphics is not None and app.graphics.kitty:
        sys.stdout.write(terminal_graphics.kitty_delete())  # a picture drawn last must not outlive the wizard
        sys.stdout.flush()
    if isinstance(result, list):
        print(*(app.quit_lines or ["The job keeps running. Follow it with:", *(f"  {c}" for c in result)]),
              sep="\n", file=sys.stdout)
    return 0
