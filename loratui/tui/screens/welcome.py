"""First run (design §3): a choice, not a form. Nothing is written until a start is chosen; the machine check
fills in from a thread."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from loratui.tui.widgets.status_line import StatusLine

if TYPE_CHECKING:
    from loratui.tui.app import WizardApp

DEMO_DIR = "loratui-demo"


def machine_lines(glyphs_done: str = "✓") -> list[str]:
    """What this machine offers: GPU, the session (tmux keeps the screen across a dropped SSH), colours."""
    lines = []
    smi = shutil.which("nvidia-smi")
    gpu = ""
    if smi:
        try:
            done = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=5)
            gpu = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
        except (OSError, subprocess.TimeoutExpired):
            gpu = ""
    lines.append(f"{glyphs_done} GPU       {gpu}" if gpu else
                 "! GPU       none found: training will be very slow (the demo still works)")
    if os.environ.get("TMUX") or os.environ.get("STY"):
        lines.append(f"{glyphs_done} Session   in tmux: a dropped SSH keeps this screen")
    else:
        lines.append("! Session   not in tmux: if SSH drops, this screen closes (jobs go on).")
        lines.append("            Safer: tmux new -A -s loratui")
    return lines


def _short(path: Path, width: int) -> str:
    """A path that fits ``width``: the home folder as ~, then the start cut."""
    text = str(path)
    home = str(Path.home())
    if text.startswith(home):
        text = "~" + text[len(home):]
    return text if len(text) <= width else "…" + text[-(width - 1):]


class WelcomeScreen(Screen):
    BINDINGS = [Binding("escape", "noop", show=False)]

    def __init__(self, root: Path) -> None:
        super().__init__(name="welcome")
        self.root = root

    @property
    def wizard(self) -> WizardApp:
        return cast("WizardApp", self.app)

    def compose(self) -> ComposeResult:
        from loratui import __version__

        glyphs = self.wizard.glyphs
        yield Static(f" loratui {__version__} {glyphs.bar} no project in {self.root} yet", id="step-bar")
        yield Static(" Train a LoRA from a folder of pictures, one step at a time.", id="purpose")
        with Vertical(id="body"):
            with Vertical(id="starts") as starts:
                starts.border_title = "Start"
                yield OptionList(*self._starts(), id="start-list")
            with Vertical(id="machine") as machine:
                machine.border_title = "This machine"
                yield Static("checking…", id="machine-lines")
        yield StatusLine(glyphs)
        yield Footer(compact=True)

    def _starts(self) -> list[Option]:
        from loratui.recent import recent_projects

        starts = [Option(f"  New project here    {_short(self.root, 40)}  (choose your pictures next)", id="new"),
                  Option("  Try the demo        made-up pictures and tiny models; runs on any CPU", id="demo")]
        for index, recent in enumerate(p for p in recent_projects(limit=5) if p.exists):
            label = "Open recent" if index == 0 else ""
            starts.append(Option(f"  {label:<19} {recent.name:<14} {recent.job or '-':<14} {_short(recent.path, 26)}",
                                 id=f"recent:{recent.path}"))
        return starts

    def on_mount(self) -> None:
        self.query_one(StatusLine).say("Choose a start, then enter. Nothing is written before.")
        self.query_one("#start-list", OptionList).focus()
        self.check_machine()

    @work(thread=True, exit_on_error=False)
    def check_machine(self) -> None:
        lines = machine_lines(self.wizard.glyphs.done)
        keys = "i Keys      ^n next - esc back - ? help - ^p every command - ^q quit"
        self.app.call_from_thread(self.query_one("#machine-lines", Static).update, "\n".join([*lines, keys]))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        """The cursor row is marked with ▸, not by its colour alone (design §2.10)."""
        options = event.option_list
        cursor = self.wizard.glyphs.cursor
        for index in range(options.option_count):
            prompt = str(options.get_option_at_index(index).prompt)
            marked = (cursor + " " if index == event.option_index else "  ") + prompt[2:]
            if marked != prompt:
                options.replace_option_prompt_at_index(index, marked)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == "new":
            from loratui.tui.screens.new_project import NewProjectDialog

            self.app.push_screen(NewProjectDialog(self.root), self._created)
        elif event.option.id == "demo":
            self.build_demo()
        elif event.option.id and event.option.id.startswith("recent:"):
            self.wizard.open_project(Path(event.option.id.removeprefix("recent:")))

    def _created(self, root: Path | None) -> None:
        if root is not None:
            self.wizard.open_project(root)

    @work(exclusive=True, exit_on_error=False)
    async def build_demo(self) -> None:
        """The demo is built by `loratui demo --no-open` in a subprocess: the wizard never loads torch."""
        import asyncio

        target = self.root / DEMO_DIR if (self.root / "loratui.toml").exists() or any(self.root.iterdir()) \
            else self.root
        line = self.query_one(StatusLine)
        line.say(f"building the demo in {target} (tiny models, made-up pictures)…")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "loratui", "demo", str(target), "--no-open",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        if process.returncode != 0:
            reason = (err.decode(errors="replace").strip().splitlines() or ["it failed"])[-1]
            line.say(reason.removeprefix("loratui: "), "✗")
            return
        self.wizard.open_project(target, demo=True)

    def action_noop(self) -> None:
        self.query_one(StatusLine).say("This is the start. ^q quits.")
