"""`loratui train DIR`: train the project's LoRA in the foreground (or --detach), with a bar and a summary."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
        "in kohya's format, ready for A1111, Forge, ComfyUI and diffusers. Progress goes to logs/events.jsonl. "
        "Ctrl-C or `loratui stop DIR` ends after the current step with a state that --resume continues.",
    )
    train.add_argument("dir", type=Path, metavar="DIR", help="the project folder")
    train.add_argument("--detach", action="store_true",
                       help="run in the background (goes on if you log out); watch it with `loratui status DIR` "
                       "or `loratui logs DIR --follow`")
    train.add_argument("--resume", action="store_true",
                       help="continue a stopped run from .loratui/state/ to the same total steps")
    train.add_argument("--gpus", type=int, metavar="N", help="GPUs to train on (default: training.gpus)")
    train.add_argument("--allow-pickle", action="store_true",
                       help="allow a .ckpt/.pt/.bin base model (loaded with weights_only=True)")
    train.add_argument("--max-steps", type=int, metavar="N",
                       help="stop after N steps and write the final file (quick checks)")
    train.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from loratui.errors import LoratuiError
    from loratui.project import Project

    if args.gpus is not None and args.gpus < 1:
        raise LoratuiError(f"--gpus {args.gpus}: use 1 or more")
    if args.max_steps is not None and args.max_steps < 1:
        raise LoratuiError(f"--max-steps {args.max_steps}: use 1 or more")
    project = Project.open(args.dir)
    config = project.load()
    argv = foreground_argv(args)
    if args.detach:
        from loratui.commands.jobs_cmd import detach

        return detach(args.dir, "train", argv)
    gpus = args.gpus or config.training.gpus
    if gpus > 1 and not os.environ.get(LAUNCHED_ENV):
        return _launch(project, config, gpus, args, argv)
    return _train_foreground(project, args, argv)


def foreground_argv(args: argparse.Namespace) -> list[str]:
    """The same command without --detach (what a detached job or `accelerate launch` runs)."""
    argv = ["train", str(Path(args.dir).resolve())]
    argv += ["--resume"] if args.resume else []
    argv += [f"--gpus={args.gpus}"] if args.gpus else []
    argv += ["--allow-pickle"] if args.allow_pickle else []
    argv += [f"--max-steps={args.max_steps}"] if args.max_steps else []
    return argv


def _launch(project: Project, config: Any, gpus: int, args: argparse.Namespace, argv: list[str]) -> int:
    """The launcher of a multi-GPU run: checks the input once, holds the project's job lock for the whole launch
    (so `loratui status` and `stop --now` see this process, whose pid a detached start recorded), and records how
    the ranks ended."""
    from loratui.training.health import preflight
    from loratui.training.jobs import job_lock, last_error_since, stop_file

    # Bad input fails here in one line, not once per rank after N processes have started.
    preflight(project, config, allow_pickle=args.allow_pickle, gpus=gpus)
    with job_lock(project, "train", argv) as job:
        code = launch_multi_gpu(gpus, argv, stop_file=stop_file(project), lock_fd=job.lock_fd)
        if code != 0:
            message = last_error_since(project, job.record.events_offset)
            job.mark_failed(message or f"the training processes exited with status {code}")
            if message is None:
                print(f"loratui: the training processes exited with status {code}: see the lines above",
                      file=sys.stderr)
            return 2  # the ranks have printed their one-line reason already
    return 0


def launch_multi_gpu(gpus: int, argv: list[str], *, stop_file: Path, lock_fd: int | None = None) -> int:
    """Run this command again under `accelerate launch` with N processes (an argument list, never a shell
    string). Without CUDA it uses accelerate's CPU mode (ACCELERATE_USE_CPU, one thread per process).

    The ranks run in their own session. torchrun ends its workers at once on SIGINT, so the terminal's Ctrl-C
    must reach only this process, which turns it into a stop request: every rank finishes its step and saves a
    resumable state. A second Ctrl-C, or SIGTERM (`loratui stop --now`), ends the ranks at once. The job lock's
    descriptor goes to `accelerate launch` too, so the lock stays held while ranks live even if this process is
    killed outright.
    """
    import signal
    import subprocess

    env = {**os.environ, LAUNCHED_ENV: "1"}
    if not _cuda_available():
        env.update(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(gpus),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "loratui", *argv]
    child = subprocess.Popen(command, env=env, start_new_session=True,
                             pass_fds=() if lock_fd is None else (lock_fd,))
    interrupts = {"n": 0}

    def on_interrupt(signum: int, frame: Any) -> None:
        interrupts["n"] += 1
        if interrupts["n"] == 1:
            stop_file.parent.mkdir(parents=True, exist_ok=True)
            stop_file.touch()
            print("\nloratui: stopping after the current step (Ctrl-C again stops at once)", file=sys.stderr)
        else:
            _signal_group(child.pid, signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, on_interrupt) if _in_main_thread() else None
    try:
        return child.wait()
    except BaseException:
        # SIGTERM to this launcher (JobTerminated) or anything else: the ranks must not outlive it.
        _signal_group(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            _signal_group(child.pid, signal.SIGKILL)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


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


def _train_foreground(project: Project, args: argparse.Namespace, argv: list[str]) -> int:
    from loratui.commands.progress_view import ProgressBar
    from loratui.progress import Progress
    from loratui.training.jobs import job_lock
    from loratui.training.loop import run_training

    config = project.load()
    main_process = os.environ.get("RANK", "0") == "0"
    bar = ProgressBar() if main_process else None

    def on_start(facts: dict) -> None:
        if main_process:
            resumed = f", resuming at step {facts['resumed_from']}" if facts["resumed_from"] else ""
            print(f"Training {project.output_name(config)}: {facts['total_steps']} steps ({facts['epochs']} epochs "
                  f"x {facts['steps_per_epoch']}{resumed}), {facts['family']}, {facts['modules']} LoRA modules, "
                  f"{facts['device']}, precision {facts['mixed_precision']}", file=sys.stderr)

    def on_step(step: int, total: int, loss: float) -> None:
        if bar is not None:
            bar(Progress("train", step, total, f"loss {loss:.4f}"))

    def train() -> TrainResult:
        try:
            return run_training(project, config, resume=args.resume, max_steps=args.max_steps,
                                allow_pickle=args.allow_pickle, on_step=on_step, on_start=on_start)
        finally:
            if bar is not None:
                bar.close()

    if os.environ.get(LAUNCHED_ENV):
        result = train()  # the launcher holds the project's job lock for the whole launch
    else:
        with job_lock(project, "train", argv) as job:
            result = train()
            if result.stopped:
                job.mark_stopped()
    if main_process:
        print("\n".join(summary(result, project)))
    return 0


def summary(result: TrainResult, project: Project) -> list[str]:
    """The closing lines: steps, time, files written and what to do next."""
    lines = [f"{'Stopped' if result.stopped else 'Done'}: {result.steps}/{result.total_steps} steps"
             f"{f' (resumed at step {result.resumed_from})' if result.resumed_from else ''} in "
             f"{_duration(result.seconds)}, final loss "
             f"{'-' if result.final_loss is None else f'{result.final_loss:.4f}'}"]
    if result.checkpoints:
        lines.append("Written:")
        lines += [f"  {_rel(path, project.root)}" for path in result.checkpoints]
    if result.stopped:
        lines.append(f"Next: loratui train {project.root} --resume")
    elif result.final_file is not None:
        lines.append(f"Next: loratui lora-info {_rel(result.final_file, project.root)}")
    return lines


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
