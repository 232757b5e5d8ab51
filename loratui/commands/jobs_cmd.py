"""`loratui status`, `loratui logs` and `loratui stop`: watch and stop a project's job (train, prepare, tag)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loratui.project import Project
    from loratui.training.jobs import JobStatus

FOLLOW_POLL_S = 0.5


def register(commands: argparse._SubParsersAction) -> None:
    status = commands.add_parser(
        "status",
        help="what the project's job is doing: state, progress, loss, ETA, last checkpoint",
        description="Show the project's current or last job (train, prepare, tag): running, stopping, done, "
        "stopped, failed or lost (killed without finishing), with its progress, loss, ETA, last checkpoint and "
        "log file.",
    )
    status.add_argument("dir", type=Path, metavar="DIR", help="the project folder")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(run=run_status)

    logs = commands.add_parser(
        "logs",
        help="the current run's events as readable lines (--follow to keep watching)",
        description="Print the events of the project's current or last run (logs/events.jsonl) as readable lines. "
        "With --follow, keep printing until the run ends (exit 0 when it finished or was stopped, 1 when it "
        "failed or was killed); Ctrl-C only stops watching, never the job.",
    )
    logs.add_argument("dir", type=Path, metavar="DIR", help="the project folder")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new events until the run ends")
    logs.add_argument("--raw", action="store_true", help="print the events as JSON lines, as written")
    logs.set_defaults(run=run_logs)

    stop = commands.add_parser(
        "stop",
        help="ask the running job to finish its step, save and exit",
        description="Ask the project's running job to stop: training finishes its current step, saves a "
        "resumable state and a checkpoint, and exits (`loratui train DIR --resume` goes on); prepare and tag "
        "keep the pictures done so far. --now sends SIGTERM instead, as a last resort.",
    )
    stop.add_argument("dir", type=Path, metavar="DIR", help="the project folder")
    stop.add_argument("--now", action="store_true",
                      help="terminate the job's processes at once (SIGTERM); training loses the steps since its "
                      "last save")
    stop.set_defaults(run=run_stop)


# --- status --------------------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    from loratui.project import Project
    from loratui.training.jobs import job_status

    project = Project.open(args.dir)
    status = job_status(project)
    if args.json:
        print(json.dumps(status.to_dict(), ensure_ascii=False, indent=2))
        return 0
    for line in status_lines(status, project, str(args.dir)):
        print(line)
    return 0


def status_lines(status: JobStatus, project: Project, shown_dir: str) -> list[str]:
    """The status screen; ``shown_dir`` is DIR as the user typed it, for the commands it suggests."""
    from loratui.training.jobs import NONE, STOPPED

    if status.state == NONE:
        return ["No job has run in this project yet.", f"Start one: loratui train {shown_dir} --detach"]
    now = time.time()
    state = status.state.upper() + (" (starting)" if status.starting else "")
    since = ""
    if status.started:
        end = status.finished if status.finished and not status.alive else now
        verb = "since" if status.alive else "started"
        since = f", {verb} {time.strftime('%Y-%m-%d %H:%M', time.localtime(status.started))}" \
                f" ({_duration(end - status.started)}{'' if status.alive else ' in all'})"
    lines = [f"Job         {status.kind} (pid {status.pid}){since}", f"State       {state}"]
    progress = _progress_line(status)
    if progress:
        lines.append(f"Progress    {progress}")
    figures = _figures_line(status)
    if figures:
        lines.append(f"Training    {figures}")
    if status.last_checkpoint:
        done_epochs = status.last_checkpoint_epoch
        # A file saved by a stop counts completed epochs: 0 means it was saved during the first one.
        epoch = ("" if done_epochs is None else f" (epoch {done_epochs})" if done_epochs else " (during epoch 1)")
        lines.append(f"Checkpoint  {_rel(status.last_checkpoint, project.root)}{epoch}")
    if status.final_path and status.state != STOPPED:
        lines.append(f"Result      {_rel(status.final_path, project.root)}")
    if status.message:
        lines.append(f"Message     {status.message}")
    if status.warnings:
        lines.append(f"Warnings    {status.warnings} (loratui logs {shown_dir} shows them)")
    if status.log_path:
        lines.append(f"Log         {_rel(status.log_path, project.root)}")
    lines.append(f"Events      {_rel(status.events_path or '', project.root)}")
    lines.append(f"Next        {_next_hint(status, shown_dir)}")
    return lines


def _progress_line(status: JobStatus) -> str:
    percent = status.percent
    pct = f" ({percent:.1f}%)" if percent is not None else ""
    if status.step is not None:
        total = f"/{status.total_steps}" if status.total_steps else ""
        epochs = f"/{status.epochs}" if status.epochs else ""
        epoch = f", epoch {status.epoch}{epochs}" if status.epoch is not None else ""
        return f"step {status.step}{total}{pct}{epoch}"
    if status.total_steps:
        return f"0/{status.total_steps} steps (loading)"
    if status.done is not None and status.total is not None:
        item = f"  {status.item}" if status.item else ""
        return f"{status.stage} {status.done}/{status.total}{pct}{item}"
    return ""


def _figures_line(status: JobStatus) -> str:
    parts = []
    if status.loss is not None:
        parts.append(f"loss {status.loss:.4f}")
    if status.lr is not None:
        parts.append(f"lr {status.lr:.1e}")
    if status.images_per_s is not None:
        parts.append(f"{status.images_per_s:.1f} img/s")
    if status.eta_s is not None and status.alive:
        parts.append(f"ETA {_duration(status.eta_s)}")
    return "   ".join(parts)


def _next_hint(status: JobStatus, shown_dir: str) -> str:
    from loratui.training.jobs import DONE, FAILED, LOST, STOPPED

    if status.alive:
        return f"loratui logs {shown_dir} --follow · loratui stop {shown_dir}"
    if status.state == STOPPED and status.kind == "train":
        return f"loratui train {shown_dir} --resume"
    if status.state in (FAILED, LOST):
        return f"loratui logs {shown_dir}" + (f" · read {status.log_path}" if status.log_path else "")
    # A finished job: the workflow's next stage.
    following = {"prepare": f"loratui tag {shown_dir}", "tag": f"loratui tags {shown_dir} --list",
                 "train": f"loratui grid {shown_dir}",
                 "grid": f"loratui grid {shown_dir} --text · loratui install {shown_dir} --to LORA_DIR"}
    if status.state == DONE and status.kind in following:
        return following[status.kind]
    return f"loratui logs {shown_dir}"


# --- logs ----------------------------------------------------------------------------------------


def run_logs(args: argparse.Namespace) -> int:
    from loratui.project import Project
    from loratui.training.jobs import run_events

    project = Project.open(args.dir)
    events, offset = run_events(project)
    context: dict[str, Any] = {}
    for event in events:
        _print_event(event, args.raw, context)
    if not args.follow:
        if not events:
            print(f"No events yet in {_rel(str(project.logs_dir / 'events.jsonl'), project.root)}", file=sys.stderr)
        return 0
    if events and events[-1].get("type") in ("done", "error"):
        return 0 if events[-1]["type"] == "done" else 1
    try:
        return _follow(project, offset, args.raw, context)
    except KeyboardInterrupt:
        return 130  # watching stopped; the job goes on


def _follow(project: Project, offset: int, raw: bool, context: dict[str, Any]) -> int:
    from loratui.training.events import EventReader, events_path
    from loratui.training.jobs import FAILED, LOST, STOPPED, job_status

    reader = EventReader(events_path(project.logs_dir), offset=offset)  # on from what was printed
    while True:
        batch = reader.read_new()
        for event in batch:
            _print_event(event, raw, context)
            if event.get("type") in ("done", "error"):
                return 0 if event["type"] == "done" else 1
        if batch:
            continue
        status = job_status(project)
        if not status.alive:
            for event in reader.read_new():  # written between the last read and the job's exit
                _print_event(event, raw, context)
            if status.state in (FAILED, LOST):
                print(f"loratui: the {status.kind} job {status.state}: {status.message or 'see its log'}",
                      file=sys.stderr)
                return 1
            print(f"The {status.kind} job is {status.state}{'' if status.state != STOPPED else ' (by request)'}.",
                  file=sys.stderr)
            return 0
        sys.stdout.flush()
        time.sleep(FOLLOW_POLL_S)


def _print_event(event: dict[str, Any], raw: bool, context: dict[str, Any]) -> None:
    if raw:
        print(json.dumps(event, ensure_ascii=False), flush=True)
        return
    print(format_event(event, context), flush=True)


def format_event(event: dict[str, Any], context: dict[str, Any] | None = None) -> str:
    """One readable line: ``12:03:04 step 120/960 epoch 3 loss 0.0912 lr 1.0e-04 4.2 img/s ETA 12m``.

    ``context`` carries what a line needs from earlier ones (the run's total steps from its ``start``).
    """
    context = {} if context is None else context
    kind = event.get("type", "?")
    clock = time.strftime("%H:%M:%S", time.localtime(event["time"])) if isinstance(event.get("time"),
                                                                                  (int, float)) else "--:--:--"
    if kind == "start":
        context["total_steps"] = event.get("total_steps")
        text = (f"start: {event.get('total_steps')} steps = {event.get('epochs')} epochs x "
                f"{event.get('steps_per_epoch')} steps")
    elif kind == "step":
        total = context.get("total_steps")
        text = f"step {event.get('step')}{f'/{total}' if total else ''} epoch {event.get('epoch')} " \
               f"loss {_num(event.get('loss'), '.4f')} lr {_num(event.get('lr'), '.1e')} " \
               f"{_num(event.get('images_per_s'), '.1f')} img/s ETA {_duration(event.get('eta_s'))}"
    elif kind == "checkpoint":
        text = f"checkpoint epoch {event.get('epoch')}: {event.get('path')}"
    elif kind == "cell":
        where = f"epoch {event.get('epoch')}" if event.get("epoch") is not None else Path(
            str(event.get("checkpoint"))).name
        result = f"error: {event['error']}" if event.get("error") else (
            f"score {_num(event.get('score'), '.2f')}" if event.get("score") is not None else "not scored")
        text = f"cell {where} at {event.get('weight')}: {result} ({_num(event.get('seconds'), '.1f')} s) " \
               f"{event.get('file') or ''}".rstrip()
    elif kind == "progress":
        item = f"  {event['item']}" if event.get("item") else ""
        text = f"{event.get('stage')} {event.get('done')}/{event.get('total')}{item}"
    elif kind in ("warning", "error"):
        text = f"{kind}: {event.get('message')}"
    elif kind == "done":
        extra = {k: v for k, v in event.items() if k not in ("type", "time")}
        text = "done" + "".join(f" {k} {_value(v)}" for k, v in extra.items())
    else:
        extra = {k: v for k, v in event.items() if k not in ("type", "time")}
        text = f"{kind} {json.dumps(extra, ensure_ascii=False)}"
    return f"{clock} {text}"


def _num(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "nan"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m"


# --- stop ----------------------------------------------------------------------------------------


def run_stop(args: argparse.Namespace) -> int:
    from loratui.project import Project
    from loratui.training.jobs import request_stop, terminate

    project = Project.open(args.dir)
    if args.now:
        status = terminate(project)
        print(f"Sent SIGTERM to the {status.kind} job (pid {status.pid}); `loratui status {args.dir}` shows when "
              "it has gone")
        return 0
    status = request_stop(project)
    print(f"Asked the {status.kind} job (pid {status.pid}) to stop: the job finishes its current step, saves, and "
          f"exits; `loratui status {args.dir}` shows when")
    return 0


def _rel(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


# --- --detach for other commands -----------------------------------------------------------------


def detach(project_dir: Path, kind: str, argv: list[str]) -> int:
    """Start ``loratui *argv`` (the command without --detach) as a detached job and say how to watch it."""
    from loratui.project import Project
    from loratui.training.jobs import start_detached

    project = Project.open(project_dir)
    job = start_detached(project, kind, argv)
    print(f"Started the {kind} job in the background (pid {job.pid}); it goes on if you log out.")
    print(f"Log: {_rel(str(job.log_path), project.root)}")
    print(f"Watch: loratui status {project_dir} · loratui logs {project_dir} --follow · stop: loratui stop "
          f"{project_dir}")
    return 0
