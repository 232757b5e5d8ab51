"""Step 5 Train (design §4.5, §6): the pre-flight checklist before the first run; then the detached
`loratui train` job followed live (state, progress, the loss sparkline, learning rate, VRAM, checkpoints, the log);
^r starts it, asks before stopping it, resumes a stopped one and, on a finished run, asks whether to start again
from scratch; opening a project whose training runs re-attaches to it. enter on a checkpoint opens it in Preview;
the palette starts again from scratch (asks first), shows the shell command and the job's log file."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from time import monotonic  # not through `time`: the snapshot tests set a fake wall clock there

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Button, OptionList, Static

from loratui.errors import LoratuiError
from loratui.jobs.kinds import DONE, FAILED, LOST, NONE, RUNNING, STOPPED, STOPPING
from loratui.jobs.status import JobStatus
from loratui.training.checklist import FAIL, OK, Checklist
from loratui.training.estimate import checkpoint_epochs
from loratui.tui.commands import Command, ListedCommands
from loratui.tui.pacing import reads_now
from loratui.tui.screens.preset_dialogs import ReplaceDialog
from loratui.tui.screens.step_screen import StepScreen
from loratui.tui.widgets.log_view import TrainLog
from loratui.tui.widgets.loss_panel import LossPanel
from loratui.tui.widgets.marked_button import MarkedButton
from loratui.tui.widgets.train_checkpoints import CheckpointList
from loratui.tui.widgets.train_feed import CheckpointRow, FeedUpdate, TrainFeed
from loratui.tui.widgets.train_text import (
    ago,
    done_text,
    next_checkpoint,
    progress_bar,
    running_text,
    spaced,
)

POLL_S = 0.25  # 4 reads a second at most (design §8); each reads only what the job wrote since the last
RUN_LABELS = {"start": "Start", "stop": "Stop...", "resume": "Resume"}
MARKS = {OK: "done", "warn": "!", FAIL: "failed"}  # Glyphs attribute names ("!" is the same everywhere)
PREVIEW_TRIES = 200  # enter on a checkpoint: Preview's grid is looked for this many times, every PREVIEW_POLL_S
PREVIEW_POLL_S = 0.05


class TrainCommands(ListedCommands):
    """The palette's Train commands (design §4.5): start again from scratch, the shell line, the log file."""

    def _commands(self) -> list[Command]:
        screen = self.screen
        if not isinstance(screen, TrainScreen):
            return []
        return [
            ("Train: start again from scratch", "asks first; the earlier run's files move to output/old-<time>/",
             screen.action_from_scratch),
            ("Train: show the command", "the loratui train line that ^r runs, in the status line",
             screen.action_show_train_command),
            ("Train: show the log file", "the training job's log path, in the status line", screen.action_show_log),
        ]


class ScratchDialog(ReplaceDialog):
    """Start again from scratch? "Keep the earlier run" is focused (and what esc means); r starts again."""

    def __init__(self, text: str) -> None:
        super().__init__("Start again from scratch?", text, "Start again", "Keep the earlier run")


def scratch_text(update: FeedUpdate | None) -> str:
    """What --from-scratch does with this project's earlier run (training.loop's archive_previous_run)."""
    previous = update.previous if update is not None else None
    parts = []
    if previous is not None and previous.files:
        count = len(previous.files)
        parts.append(f"its {count} LoRA file{'s' if count != 1 else ''} in output/")
    if previous is not None and previous.state is not None:
        parts.append("its saved state" + (f" ({previous.steps})" if previous.steps else ""))
    what = " and ".join(parts) if parts else "its files"
    return (f"A new run starts at step 0 with the settings as they are now. The earlier run's files move aside "
            f"first: {what} go to output/old-<time>/ (renamed, nothing is deleted).")


class TrainScreen(StepScreen):
    HELP_TEXT = ("Training runs as its own job: quitting loratui or losing SSH does not stop it, and opening the "
                 "project again shows it live. Watch the loss fall and flatten; a checkpoint is saved every few "
                 "epochs, and Preview (^n) compares them.")
    HELP_KEYS = (
        ("^r", "start training; while it runs: stop (asks first); when stopped: resume"),
        ("up/pgup", "scroll the log back (following pauses)"),
        ("end", "follow the end of the log again"),
        ("^t", "the log: all lines <-> warnings only"),
        ("enter", "on a checkpoint (tab to the list): open it in Preview"),
        ("^n", "on to Preview (starts training first if none has run)"),
        ("esc", "back to Params; training goes on"),
    )
    BINDINGS = [
        # One key, three meanings by state (design §2.3): the footer's label follows, see _set_run_label.
        Binding("ctrl+r", "run", "Start", key_display="^r", id="train.run"),
        Binding("ctrl+n", "app.next_step", "Preview", key_display="^n", id="train.next"),
        Binding("escape", "app.back", "Back", key_display="esc", id="train.back"),
        Binding("end", "follow", "Follow", key_display="end", id="train.follow_end"),
        Binding("ctrl+t", "warnings", "Warnings", show=False, id="train.warnings"),
        Binding("q", "q_hint", show=False, id="train.q"),
    ]
    COMMANDS = {TrainCommands}
    DEFAULT_CSS = """
    TrainScreen #train-state { height: auto; max-height: 3; }
    TrainScreen #train-bar { height: 1; }
    TrainScreen #run-top { height: 8; }
    TrainScreen #loss-box { width: 1fr; height: 100%; border: round $panel; padding: 0 1; }
    TrainScreen #ckpt-box { width: 29; height: 100%; border: round $panel; padding: 0 1; }
    TrainScreen #log-box { height: 1fr; border: round $panel; }
    TrainScreen #log-box:focus-within, TrainScreen #ckpt-box:focus-within { border: heavy $accent; }
    TrainScreen TrainLog { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; overflow-x: hidden; }
    TrainScreen #train-hint { height: 1; }
    TrainScreen #check-box { display: none; height: 1fr; border: round $panel; padding: 0 1; }
    TrainScreen #check-lines { height: 1fr; }
    TrainScreen #start { margin-top: 0; }
    TrainScreen.-checklist #check-box { display: block; }
    TrainScreen.-checklist #run-top, TrainScreen.-checklist #log-box { display: none; }
    TrainScreen.-wide #run-top { height: 13; }
    TrainScreen.-wide #log-box { height: 20; }
    TrainScreen.-wide #ckpt-box { width: 62; }
    .-ascii TrainScreen #loss-box, .-ascii TrainScreen #ckpt-box, .-ascii TrainScreen #log-box,
    .-ascii TrainScreen #check-box { border: ascii $panel; }
    .-ascii TrainScreen #log-box:focus-within, .-ascii TrainScreen #ckpt-box:focus-within { border: ascii $accent; }
    """
    SCOPED_CSS = False  # every rule names TrainScreen; unscoped so the app's -ascii class reaches them

    def __init__(self, step) -> None:  # noqa: ANN001
        super().__init__(step)
        self.feed: TrainFeed | None = None
        self.update: FeedUpdate | None = None
        self.checklist: Checklist | None = None
        self._polling = False
        self._read_at = float("-inf")
        self._checking = False
        self._first = True
        self._launched = False  # a start went out from here and its job is not seen yet
        self._launched_over: str | None = None  # the job shown when it went out (the new one has another id)
        self._next_when_done = False  # ^n started the run: move on to Preview when it is DONE
        self._was_alive = False
        self._seen_job: str | None = None  # the job the last read showed
        self._run_key = ""  # which ^r binding is active, to refresh the footer only when it changes
        self._texts: dict[str, str] = {}  # what each line shows now

    # --- layout ---------------------------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        yield Static("", id="train-state", markup=False)
        yield Static("", id="train-bar", markup=False)
        with Horizontal(id="run-top"):
            with Vertical(id="loss-box") as loss:
                loss.border_title = "Loss, mean per column"
                yield LossPanel(id="loss")
            with Vertical(id="ckpt-box") as checkpoints:
                checkpoints.border_title = "Checkpoints"
                yield CheckpointList(id="ckpt-lines")
        with Vertical(id="log-box"):
            yield TrainLog(id="train-log")
        with Vertical(id="check-box") as box:
            box.border_title = "Before the first run"
            yield Static("checking…", id="check-lines", markup=False)
            yield MarkedButton("Start training", id="start", variant="primary")
        yield Static("", id="train-hint", markup=False)

    def on_mount(self) -> None:
        super().on_mount()
        project = self.wizard.project
        assert project is not None
        self.feed = TrainFeed(project)
        self.set_class(True, "-checklist")
        self._show_hint()
        self._tick()
        self.set_interval(POLL_S, self._tick)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.feed is not None:
            self.feed.forget_previous()  # settings or output/ may have changed on another step
        if self._in_checklist():
            self._check()

    def wide_changed(self) -> None:
        self.query_one(LossPanel).set_rows(8 if self.wide else 3)
        if self.update is not None:
            self._show(self.update)

    # --- reading the job (a thread: a re-attach may read a long file) ----------------------------------------

    def _tick(self) -> None:
        if not self._polling and self.feed is not None and reads_now(self, self._read_at, POLL_S):
            self._polling = True
            self._read_at = monotonic()
            self._read()

    @work(thread=True, exit_on_error=False, group="train-feed")
    def _read(self) -> None:
        try:
            update = self.feed.read()
        except (LoratuiError, OSError):
            update = None  # a record being rewritten this instant: the next read takes it
        self.app.call_from_thread(self._apply, update)

    def _apply(self, update: FeedUpdate | None) -> None:
        self._polling = False
        if update is None or not self.is_mounted:
            return
        log = self.query_one(TrainLog)
        if update.reset:
            log.restart()
        log.add(update.lines)
        status = update.status
        first, self._first = self._first, False
        # A read that began before the start went out still shows the job before it: wait for the new one.
        if self._launched and status.state != NONE and status.job_id != self._launched_over:
            self._launched = False
        # A job seen ending, or one first seen already ended (a start that failed at once, never seen running).
        ended = not status.alive and status.state != NONE and not self._launched
        just_ended = ended and (self._was_alive or status.job_id != self._seen_job)
        self._seen_job = status.job_id
        self.update = update
        checklist = self._in_checklist()
        was_checklist = self.has_class("-checklist")
        self.set_class(checklist, "-checklist")
        if checklist and (first or not was_checklist) and self.checklist is None:
            self._check()
        if was_checklist != checklist or first:
            (self.query_one("#start") if checklist else log).focus()
        self._show(update)
        if first:
            self._say_attached(status)
        elif just_ended:
            self._finished(update)
        self._was_alive = status.alive

    def _in_checklist(self) -> bool:
        update = self.update
        if self._launched:
            return False
        return update is None or (update.status.state == NONE and not update.trained and not update.resumable)

    def _say_attached(self, status: JobStatus) -> None:
        if status.alive and status.started:
            started = time.strftime("%H:%M", time.localtime(status.started))
            minutes = int((time.time() - status.started) // 60)
            running = f"{minutes} min" if minutes else "under a minute"
            self.say(f"Re-attached: training started {started}, running {running}.")
        elif status.finished and status.state in (DONE, STOPPED, FAILED, LOST):
            how = {DONE: "finished", STOPPED: "stopped", FAILED: "failed", LOST: "ended (LOST)"}[status.state]
            level = "✗" if status.state in (FAILED, LOST) else "i"
            self.say(f"Training {how} {ago(time.time() - status.finished)}.", level)

    def _finished(self, update: FeedUpdate) -> None:
        status = update.status
        if status.state == DONE:
            self.say(f"Training done: {len(update.checkpoints)} checkpoints. ^n compares them in Preview.")
            if self._next_when_done and self.app.screen is self:
                self._next_when_done = False
                self.wizard.go_to(self.step.number + 1)
        elif status.state == STOPPED:
            self._next_when_done = False
            self.say("Training stopped with a saved state: ^r resumes it exactly where it was.")
        else:
            self._next_when_done = False
            self.say(f"Training {status.state.upper()}: {status.message or 'see the log'}", "✗")

    # --- drawing ----------------------------------------------------------------------------------------------

    def _put(self, selector: str, text: str) -> None:
        """Update a line only when its text changed: four reads a second must not relayout an idle screen."""
        if self._texts.get(selector) != text:
            self._texts[selector] = text
            self.query_one(selector, Static).update(text)

    def _show(self, update: FeedUpdate) -> None:
        status = update.status
        self._put("#train-state", self._state_text(update))
        self._put("#train-bar", progress_bar(status, self.app.size.width - 2, self.wizard.ascii_only))
        self.query_one(LossPanel).show(status, update.losses, update.scheduler, update.warnings)
        self._show_checkpoints(update)
        self._show_hint()
        key = self._run_action()
        if key != self._run_key:
            self._run_key = key
            self._set_run_label(RUN_LABELS[key])
            button = self.query_one("#start", MarkedButton)
            button.text = "Resume training" if key == "resume" else "Start training"
            button._mark(button.has_focus)

    def _state_text(self, update: FeedUpdate) -> str:
        status = update.status
        state = status.state
        if self._launched:
            return "RUNNING  starting: loading the base model…"
        if state == NONE and update.trained:
            return "DONE  output/ holds this run's LoRA. ^n compares its checkpoints."
        if state == NONE and update.resumable and update.previous is not None:
            return f"STOPPED  a saved run can go on ({update.previous.steps}). ^r resumes it."
        if state == NONE:
            if self.checklist is None:
                return "Checking the project before the first run…"
            if self.checklist.ready:
                return "READY  every check passed: ^r starts training"
            bad = sum(line.state == FAIL for line in self.checklist.lines)
            return f"NOT READY  {bad} check{'s' if bad != 1 else ''} to fix first (✗ below)"
        if state in (RUNNING, STOPPING):
            return running_text(status, time.time())
        if state == DONE:
            return done_text(status, len(update.checkpoints))
        if state == STOPPED:
            return (f"STOPPED at step {spaced(status.step)} of {spaced(status.total_steps)}. ^r resumes exactly "
                    "where it was.")
        if state == FAILED:
            return f"FAILED  {status.message or 'the job ended with an error: see the log'}"
        last = update.checkpoints[-1].label if update.checkpoints else f"step {spaced(status.step)}"
        then = "^r resumes from it." if update.resumable else "^r starts again."
        return f"LOST: the job ended without a word (killed or out of memory?). Last state: {last}. {then}"

    def _show_checkpoints(self, update: FeedUpdate) -> None:
        status = update.status
        rows = update.checkpoints
        total = len(checkpoint_epochs(status.epochs, update.save_every)) if status.epochs and update.save_every \
            else None
        box = self.query_one("#ckpt-box")
        title = f"Checkpoints {len(rows)} of {total}" if total else f"Checkpoints {len(rows)}"
        if box.border_title != title:  # setting it redraws the box, even to the same title
            box.border_title = title
        extra = [] if rows else ["none yet"]
        upcoming = next_checkpoint(status, update.save_every)
        if upcoming:
            extra.append(upcoming)
        # Every row is in the list; it scrolls to the newest rows and the ETA line under them.
        self.query_one(CheckpointList).show(rows, extra, wide=self.wide, mark=self.wizard.glyphs.cursor)

    @property
    def focus_chain(self) -> list[Widget]:
        """Design §4.5: Start -> log -> checkpoints (the list sits above the log, so by place it would come first)."""
        chain = list(super().focus_chain)
        checkpoints = next((w for w in chain if isinstance(w, CheckpointList)), None)
        log = next((w for w in chain if isinstance(w, TrainLog)), None)
        if checkpoints is not None and log is not None:
            chain.remove(checkpoints)
            chain.insert(chain.index(log) + 1, checkpoints)
        return chain

    def _show_hint(self) -> None:
        update = self.update
        state = update.status.state if update is not None else NONE
        if self._in_checklist():
            if self.checklist is not None and not self.checklist.ready:
                failed = self.wizard.glyphs.failed
                text = f" {failed} Fix the lines marked {failed} first; the line under each says how."
            else:
                text = " i ^r starts training; it goes on if you quit or SSH drops."
        elif update is not None and update.warnings:
            text = f" ! {update.warnings[0]}"
        elif state == STOPPING:
            text = " i Stopping: it saves a state after this step; ^r resumes it later."
        elif state == RUNNING or self._launched:
            text = " i ^r asks before stopping; a stopped run resumes from exactly where it was."
        elif state == DONE:
            text = " i ^n compares the checkpoints in Preview and installs the best."
        elif state == STOPPED:
            text = " i ^r resumes; ^n compares the checkpoints saved so far."
        elif state == FAILED:
            text = " i Fix what the first line says (settings: esc to Params), then ^r tries again."
        else:
            text = " i ^r resumes from the last saved state." if update and update.resumable else \
                " i ^r starts training again."
        self._put("#train-hint", text[:self.app.size.width])

    # --- the checklist ------------------------------------------------------------------------------------------

    def _check(self) -> None:
        if not self._checking:
            self._checking = True
            self._run_checks()

    @work(thread=True, exit_on_error=False, group="train-check")
    def _run_checks(self) -> None:
        from loratui.training.checklist import train_checklist

        checklist = train_checklist(self.wizard.project)
        self.app.call_from_thread(self._checked, checklist)

    def _checked(self, checklist: Checklist) -> None:
        self._checking = False
        self.checklist = checklist
        glyphs = self.wizard.glyphs
        width = max(40, self.app.size.width - 4)
        lines = []
        for line in checklist.lines:
            mark = getattr(glyphs, MARKS[line.state]) if line.state != "warn" else "!"
            found = f"{mark} {line.name}: {line.found}"
            lines.append(found if len(found) <= width else found[:width - 1] + "…")
            if line.state != OK and line.fix:
                lines.append(f"    {line.fix}")
        self.query_one("#check-lines", Static).update("\n".join(lines))
        if self.update is not None:
            self._show(self.update)
        self._show_hint()

    # --- keys -----------------------------------------------------------------------------------------------

    def _run_action(self) -> str:
        """Which ^r applies now: start, stop or resume."""
        update = self.update
        if self._launched or (update is not None and update.status.alive):
            return "stop"
        if update is not None and update.resumable:
            return "resume"
        return "start"

    def _set_run_label(self, label: str) -> None:
        """^r's footer label for the state it is in: Start, Stop... or Resume (Textual's labels are fixed at class
        level; the screen's own copy of its bindings takes the new one)."""
        bindings = self._bindings.key_to_bindings.get("ctrl+r", [])
        self._bindings.key_to_bindings["ctrl+r"] = [replace(b, description=label) if b.action == "run" else b
                                                    for b in bindings]
        self.refresh_bindings()

    def action_run(self) -> None:
        {"start": self.action_start, "stop": self.action_stop, "resume": self.action_resume}[self._run_action()]()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("follow", "warnings"):
            return not self.has_class("-checklist")
        return True

    def action_start(self) -> None:
        self._start(resume=False)

    def _alive(self) -> bool:
        return self._launched or (self.update is not None and self.update.status.alive)

    def action_from_scratch(self) -> None:
        """The palette's "start again from scratch": asks first, then `loratui train DIR --detach --from-scratch`."""
        if self._alive():
            self.say("Training is running: stop it first (^r asks), then start again from scratch.", "!")
            return
        update = self.update
        if update is None:
            self.say("Still reading the training job: a moment.")
            return
        if update.previous is None or not update.previous.exists:
            self.say("No earlier run in output/ to start again from: ^r starts training.")
            return
        self.app.push_screen(ScratchDialog(scratch_text(update)), self._scratch_answered)

    def _scratch_answered(self, again: bool | None) -> None:
        if not again:
            self.say("The earlier run stays as it is.")
            return
        self._start(resume=False, from_scratch=True)

    def train_command(self) -> str:
        """The shell line ^r runs now (with --resume when it resumes)."""
        resume = " --resume" if self._run_action() == "resume" else ""
        return f"loratui train {self.wizard.root} --detach{resume}"

    def action_show_train_command(self) -> None:
        self.say(f"From a shell: {self.train_command()}")

    def action_show_log(self) -> None:
        update = self.update
        if update is None:
            self.say("Still reading the training job: a moment.")
            return
        path = update.status.log_path
        if update.status.state == NONE:
            self.say("No log file yet: no training job has run in this project (^r starts one).")
        elif not path:
            self.say("No log file: this training ran in a terminal (not detached), its output went there.")
        elif not Path(path).is_file():
            self.say(f"The log file is gone: {path}", "!")
        else:
            self.say(f"Log: {path}")

    def action_resume(self) -> None:
        self._start(resume=True)

    @on(Button.Pressed, "#start")
    def _start_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._start(resume=self._run_action() == "resume")

    def _start(self, *, resume: bool, from_scratch: bool = False) -> bool:
        """Start (or resume) training as a detached job; False, having said why, when it cannot start.
        ``from_scratch``: the job first moves the earlier run's files to output/old-<time>/ (asked already)."""
        update = self.update
        if update is not None and update.status.alive:
            self.say("Training is already running: ^r asks before stopping it.")
            return False
        if not resume and not from_scratch:
            if update is not None and update.trained:
                # Training over a finished run means starting again: ask, as the palette's command does (the
                # earlier files are moved aside, never deleted; "keep" is focused). ^n compares them instead.
                self.action_from_scratch()
                return False
            if self._in_checklist():
                if self.checklist is None:
                    self.say("Still checking the project: a moment.")
                    return False
                failed = next((line for line in self.checklist.lines if line.state == FAIL), None)
                if failed is not None:
                    self.say(f"Not yet: {failed.name}: {failed.fix or failed.found}", "✗")
                    return False
        from loratui.jobs.command import TrainOptions
        from loratui.jobs.detached import start_job

        project = self.wizard.project
        try:
            job = start_job(project, TrainOptions(resume=resume, from_scratch=from_scratch))
        except LoratuiError as exc:
            self.say(str(exc), "✗")
            return False
        self._launched = True
        self._launched_over = update.status.job_id if update is not None else None
        self.set_class(False, "-checklist")
        self.query_one(TrainLog).focus()
        self._put("#train-state", "RUNNING  starting: loading the base model…")
        self._show_hint()
        self._run_key = "stop"
        self._set_run_label(RUN_LABELS["stop"])
        how = "resumed" if resume else "started again from scratch" if from_scratch else "started"
        self.say(f"Training {how} (job {job.pid}): it keeps running if you quit (^q) or SSH drops.")
        return True

    def action_stop(self) -> None:
        update = self.update
        if update is not None and update.status.state == STOPPING:
            self.say("Already stopping: it saves a state after the current step.")
            return
        from loratui.tui.screens.stop_dialog import StopDialog

        self.app.push_screen(StopDialog(), self._stop_answered)

    def _stop_answered(self, stop: bool | None) -> None:
        if not stop:
            self.say("Training goes on.")
            return
        from loratui.jobs.stop import request_stop

        try:
            request_stop(self.wizard.project, "training")
        except LoratuiError as exc:
            self.say(str(exc), "✗")
            return
        self._put("#train-state", "STOPPING  saving a state after the current step…")
        self.say("Stopping after this step; it saves a state that ^r resumes.")

    def action_follow(self) -> None:
        self.query_one(TrainLog).action_follow()

    def action_warnings(self) -> None:
        only = self.query_one(TrainLog).toggle_warnings()
        self.say("The log shows warnings only (^t for all lines)." if only else "The log shows every line.")

    def action_q_hint(self) -> None:
        self.say("^q quits (training keeps running).")

    # --- enter on a checkpoint: Preview with its row ----------------------------------------------------------

    @on(OptionList.OptionSelected, "#ckpt-lines")
    def _checkpoint_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        rows = self.query_one(CheckpointList).rows
        if 0 <= event.option_index < len(rows):
            self.open_in_preview(rows[event.option_index])

    def open_in_preview(self, row: CheckpointRow) -> None:
        """Go to Preview (step 6) with ``row``'s checkpoint highlighted once its grid is read."""
        from loratui.tui.screens.preview import PreviewScreen

        app = self.wizard
        root = app.project.root if app.project is not None else Path(".")
        target = Path(row.path).resolve()
        app.go_to(self.step.number + 1)
        tries = [PREVIEW_TRIES]

        def place() -> None:
            screen = next((s for s in reversed(app.screen_stack) if isinstance(s, PreviewScreen)), None)
            tries[0] -= 1
            if screen is not None and screen.is_mounted and screen._read_once:
                found = preview_row(screen, target, row.label, root)
                if found is not None:
                    screen.cursor_to(found, None)
                    return
                if screen.view.error or tries[0] <= 0:
                    if not screen.view.error:
                        screen.say(f"{row.label} is not among the grid's checkpoints.", "!")
                    return
            if tries[0] > 0:
                app.set_timer(PREVIEW_POLL_S, place)

        app.set_timer(PREVIEW_POLL_S, place)

    # --- ^n -----------------------------------------------------------------------------------------------------

    def ready_for_next(self) -> bool:
        update = self.update
        if self._launched or (update is not None and update.status.alive):
            return True  # Preview says what it can do while training runs
        if update is None:
            self.say("Still reading the training job: a moment.")
            return False
        if update.status.state != NONE or update.trained:
            return True  # done, or stopped/failed by the user's choice: Preview shows what there is
        # No run yet: ^n trains first, then moves on by itself (design §2.8: ^n does what the step still needs).
        if self._start(resume=update.resumable):
            self._next_when_done = True
            self.say("Training started: Preview opens when it is done (^n again goes there now).")
        return False


def preview_row(screen, target: Path, label: str, root: Path) -> int | None:  # noqa: ANN001
    """The row of Preview's grid that shows the checkpoint file ``target`` (by its path, else by its label)."""
    view = screen.view
    for cell in view.cells:
        if (root / cell.checkpoint).resolve() == target:
            return cell.row
    return view.rows.index(label) if label in view.rows else None
