"""`loratui train DIR`: train the project's LoRA in the foreground (or --detach), with a bar and a summary."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loratui.commands.common import add_project_dir, open_project, rel_path
from loratui.durations import format_duration

if TYPE_CHECKING:
    from loratui.project import Project
    from loratui.training.loop import TrainResult

# Set in the processes `accelerate launch` starts for --gpus N, so they train instead of launching again.
LAUNCHED_ENV = "LORATUI_LAUNCHED"


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train the LoRA (kohya-format checkpoints in output/)",
        description="Train the project's LoRA with the settings in loratui.toml: checkpoints every "
        "training.save_every_n_epochs epochs (NAME-000002.safetensors) and the final NAME.safetensors in output/, "
        "in kohya's format, ready for A1111, Forge, ComfyUI and diffusers. Progress goes to the job's events "
        "file (logs/events/). "
        "Ctrl-C, a closed terminal (SIGHUP), SIGTERM or `loratui stop DIR` end it after the current step with a "
        "state that --resume continues; a second Ctrl-C stops at once. A new run never overwrites an earlier one's "
        "files: it asks for --resume or --from-scratch. Exit status: 0 done, 2 bad input or a failed run, "
        "128 + the signal's number when a signal stopped it (130 for Ctrl-C).",
    )
    add_project_dir(train)
    train.add_argument("--detach", action="store_true",
                       help="run in the background (goes on if you log out); watch it with `loratui status DIR` "
                       "or `loratui logs DIR --follow`")
    train.add_argument("--resume", action="store_true",
                       help="continue a stopped run from .loratui/state/ to the same total steps")
    train.add_argument("--from-scratch", action="store_true",
                       help="start a new run even though output/ holds an earlier one: its LoRA files and state "
                       "move to output/old-<time>/ (nothing is deleted)")
    train.add_argument("--gpus", type=int, metavar="N", help="GPUs to train on (default: training.gpus)")
    train.add_argument("--allow-pickle", action="store_true",
                       help="allow a .ckpt/.pt/.bin base model (loaded with weights_only=True)")
    train.add_argument("--max-steps", type=int, metavar="N",
                       help="stop after N steps and write the final file (quick checks)")
    train.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from loratui.errors import LoratuiError
    from loratui.jobs.command import command_line, options_from_args
    from loratui.training.preflight import RunFinished, preflight

    if args.gpus is not None and args.gpus < 1:
        raise LoratuiError(f"--gpus {args.gpus}: use 1 or more")
    if args.max_steps is not None and args.max_steps < 1:
        raise LoratuiError(f"--max-steps {args.max_steps}: use 1 or more")
    project = open_project(args)
    config = project.load()
    argv = command_line(args.dir, options_from_args("train", args))
    gpus = args.gpus or config.training.gpus
    checks = None
    if not os.environ.get(LAUNCHED_ENV):
        # Bad input fails here in one line, before a detached job or N ranks start, and before torch loads.
        try:
            checks = preflight(project, config, allow_pickle=args.allow_pickle, gpus=gpus, resume=args.resume,
                               from_scratch=args.from_scratch, where=args.dir)
        except RunFinished as done:
            print(str(done))
            return 0
    if args.detach:
        from loratui.commands.jobs_cmd import detach

        return detach(args.dir, "train", argv)
    if gpus > 1 and not os.environ.get(LAUNCHED_ENV):
        return _launch(project, gpus, argv)
    return _train_foreground(project, config, args, argv, checks)


def _launch(project: Project, gpus: int, argv: list[str]) -> int:
    """The launcher of a multi-GPU run: holds the training job (so `loratui status` and `stop --now` see this
    process, whose pid a detached start recorded) while the ranks attach to it, and records how they ended."""
    from loratui.jobs.event_log import terminal_event
    from loratui.jobs.events import Done, JobError
    from loratui.jobs.runner import job

    with job(project, "train", argv) as handle:
        code = launch_multi_gpu(gpus, argv, stop_file=handle.stop_path, lock_fd=handle.lock_fd,
                                job_id=handle.job_id)
        if code > 128 and isinstance(terminal_event(handle.events_path), Done):
            return code  # the ranks stopped cleanly when a signal asked: 128 + its number
        if code != 0:
            ending = terminal_event(handle.events_path)
            message = ending.message if isinstance(ending, JobError) else None
            handle.mark_failed(message or f"the training processes exited with status {code}")
            if message is None:
                print(f"loratui: the training processes exited with status {code}: see the lines above",
                      file=sys.stderr)
            return 2  # the ranks have printed their one-line reason already
    return 0


def launch_multi_gpu(gpus: int, argv: list[str], *, stop_file: Path, lock_fd: int | None = None,
                     job_id: str | None = None) -> int:
    """Run this command again under `accelerate launch` with N processes (an argument list, never a shell
    string). Without CUDA it uses accelerate's CPU mode (ACCELERATE_USE_CPU, one thread per process).

    The ranks run in their own session. torchrun ends its workers at once on SIGINT, so the terminal's Ctrl-C
    must reach only this process, which turns it into a stop request: every rank finishes its step and saves a
    resumable state. A second Ctrl-C, or SIGTERM (`loratui stop --now`), ends the ranks at once. The job lock's
    descriptor goes to `accelerate launch` too, so the lock stays held while ranks live even if this process is
    killed outright. The ranks attach to the launcher's job ``job_id`` (rank 0 writes its events).
    """
    import signal
    import subprocess

    from loratui.jobs.runner import ATTACH_ENV

    env = {**os.environ, LAUNCHED_ENV: "1", **({ATTACH_ENV: job_id} if job_id else {})}
    if not _cuda_available():
        env.update(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(gpus),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "loratui", *argv]
    child = subprocess.Popen(command, env=env, start_new_session=True,
                             pass_fds=() if lock_fd is None else (lock_fd,))
    interrupts: dict[str, int] = {"n": 0, "signum": 0}

    def on_interrupt(signum: int, frame: Any) -> None:
        from loratui.jobs.runner import JobTerminated
        from loratui.training.stop_signals import drop_lost_terminal, now_requested_at, say

        if signum == signal.SIGHUP:
            drop_lost_terminal()
        if signum == signal.SIGTERM and now_requested_at(stop_file):
            raise JobTerminated(128 + signum)  # `loratui stop --now`: the ranks are ended below
        interrupts["n"] += 1
        if interrupts["n"] == 1:
            interrupts["signum"] = signum
            stop_file.parent.mkdir(parents=True, exist_ok=True)
            stop_file.touch()
            say("\nloratui: stopping after this step, saving a state… (Ctrl-C again stops at once)")
        else:
            _signal_group(child.pid, signal.SIGTERM)

    stop_signals = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)
    previous = {number: signal.signal(number, on_interrupt) for number in stop_signals} if _in_main_thread() else {}
    try:
        code = child.wait()
        # Stopped cleanly by a signal: the shell sees which (130 for Ctrl-C), as with one process.
        return 128 + interrupts["signum"] if code == 0 and interrupts["signum"] else code
    except BaseException:
        # SIGTERM to this launcher (JobTerminated) or anything else: the ranks must not outlive it.
        _signal_group(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            _signal_group(child.pid, signal.SIGKILL)
        raise
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _signal_group(pid: int, signum: int) -> None:
    import contextlib

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _train_foreground(project: Project, config: Any, args: argparse.Namespace, argv: list[str],
                      checks: Any) -> int:
    from loratui.commands.progress_view import ProgressBar
    from loratui.jobs import events as ev
    from loratui.jobs.runner import job
    from loratui.progress import Progress
    from loratui.training.loop import run_training
    from loratui.training.stop_signals import drop_lost_terminal

    main_process = os.environ.get("RANK", "0") == "0"
    bar = ProgressBar() if main_process else None

    def show(event: ev.Event) -> None:
        """The terminal's view of the job's events: the plan once, then the bar. A terminal that went away (an
        SSH connection lost: EIO, often before its SIGHUP arrives) must not end the run: its output is dropped."""
        try:
            _show(event)
        except OSError:
            drop_lost_terminal()

    def _show(event: ev.Event) -> None:
        if isinstance(event, ev.Plan) and main_process:
            resumed = f", resuming at step {event.resumed_from}" if event.resumed_from else ""
            print(f"Training {project.output_name(config)}: {event.total_steps} steps ({event.epochs} epochs "
                  f"x {event.steps_per_epoch}{resumed}), {event.family}, {event.modules} LoRA modules, "
                  f"{event.device}, precision {event.mixed_precision}", file=sys.stderr)
        elif isinstance(event, ev.Step) and bar is not None:
            loss = "nan" if event.loss is None else f"{event.loss:.4f}"
            bar(Progress("train", event.step, event.total_steps or event.step, f"loss {loss}"))

    with job(project, "train", argv) as handle:
        handle.listen(show)
        try:
            result = run_training(project, config, resume=args.resume, max_steps=args.max_steps,
                                  allow_pickle=args.allow_pickle, checks=checks, from_scratch=args.from_scratch)
        finally:
            if bar is not None:
                with contextlib.suppress(OSError):
                    bar.close()
    if main_process:
        try:
            print("\n".join(summary(result, project, args.dir)), flush=True)
        except OSError:
            drop_lost_terminal()  # the terminal is gone; `loratui status` says the same
    # A shell (and a script's `$?`) must see that a signal ended the command, even though it ended cleanly.
    return 128 + result.signal if result.signal else 0


def summary(result: TrainResult, project: Project, where: str | None = None) -> list[str]:
    """The closing lines: steps, time, files written and what to do next (``where``: DIR as the user typed it)."""
    lines = [f"The earlier run's files are in {rel_path(result.archived, project.root)}/"] if result.archived else []
    lines += [f"{'Stopped' if result.stopped else 'Done'}: {result.steps}/{result.total_steps} steps"
             f"{f' (resumed at step {result.resumed_from})' if result.resumed_from else ''} in "
             f"{format_duration(result.seconds)}, final loss "
             f"{'-' if result.final_loss is None else f'{result.final_loss:.4f}'}"]
    if result.checkpoints:
        lines.append("Written:")
        lines += [f"  {rel_path(path, project.root)}" for path in result.checkpoints]
    if result.stopped:
        lines.append(f"Next: loratui train {where or project.root} --resume")
    elif result.final_file is not None:
        lines.append(f"Next: loratui lora-info {rel_path(result.final_file, project.root)}")
    return lines
