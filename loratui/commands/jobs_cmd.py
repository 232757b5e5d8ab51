"""`loratui status`, `loratui logs` and `loratui stop`: watch and stop a project's jobs (prepare, tag, train, grid)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loratui.commands.common import add_project_dir, open_project, open_project_dir, rel_path
from loratui.commands.event_lines import format_event
from loratui.durations import format_duration

if TYPE_CHECKING:
    from loratui.jobs.status import JobStatus
    from loratui.project import Project

FOLLOW_POLL_S = 0.5


def register(commands: argparse._SubParsersAction) -> None:
    status = commands.add_parser(
        "status",
        help="what the project's job is doing: state, progress, loss, ETA, last checkpoint",
        description="Show the project's most recent job (prepare, tag, train or grid; --job picks one): running, "
        "stopping, done, stopped, failed or lost (killed without finishing), with its progress, loss, ETA, last "
        "checkpoint, log and events file. Other jobs running at the same time are listed below it.",
    )
    add_project_dir(status)
    _add_job_choice(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(run=run_status)

    logs = commands.add_parser(
        "logs",
        help="the current run's events as readable lines (--follow to keep watching)",
        description="Print the events of the project's current or last job (logs/events/JOB.jsonl) as readable "
        "lines. "
        "With --follow, keep printing until the run ends (exit 0 when it finished or was stopped, 1 when it "
        "failed or was killed); Ctrl-C only stops watching, never the job.",
    )
    add_project_dir(logs)
    _add_job_choice(logs)
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new events until the run ends")
    logs.add_argument("--raw", action="store_true", help="print the events as JSON lines, as written")
    logs.set_defaults(run=run_logs)

    stop = commands.add_parser(
        "stop",
        help="ask the running job to finish its step, save and exit",
        description="Ask the project's running job (--job when several run) to stop: training finishes its "
        "current step, saves a "
        "resumable state and a checkpoint, and exits (`loratui train DIR --resume` goes on); prepare and tag "
        "keep the pictures done so far. --now sends SIGTERM instead, as a last resort.",
    )
    add_project_dir(stop)
    _add_job_choice(stop)
    stop.add_argument("--now", action="store_true",
                      help="terminate the job's processes at once (SIGTERM); training loses the steps since its "
                      "last save")
    stop.set_defaults(run=run_stop)


def _add_job_choice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", metavar="JOB",
                        help="which job: train, grid, prepare or tag (or training, preview, dataset); default: the "
                        "most recent one (for stop: the only one running)")


def _resource(args: argparse.Namespace) -> str | None:
    from loratui.jobs.kinds import resolve_job_name

    return resolve_job_name(args.job) if args.job else None


# --- status --------------------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    from loratui.jobs.status import all_statuses, job_status

    project = open_project(args)
    resource = _resource(args)
    if resource is not None:
        status, others = job_status(project, resource), []
    else:  # the most recent job first, then the last one of each other resource
        status, *others = all_statuses(project) or [job_status(project)]
    if args.json:
        print(json.dumps({**status.to_dict(), "others": [_brief(s) for s in others]}, ensure_ascii=False, indent=2))
        return 0
    resume = ResumeCheck(project)
    for line in status_lines(status, project, str(args.dir), resume.steps(status)):
        print(line)
    for line in other_jobs_lines(others, project, str(args.dir), resume):
        print(line)
    return 0


class ResumeCheck:
    """Whether a stopped training run can go on, read once per command and only when a job asks."""

    def __init__(self, project: Project):
        self.project = project
        self._steps: str | None = None
        self._read = False

    def steps(self, status: JobStatus) -> str | None:
        """``step 48 of 96`` (or ``its saved state``) when ``status`` is a training job that ended without
        finishing (stopped, failed, lost) and a state that `loratui train DIR --resume` continues is saved."""
        from loratui.jobs.kinds import FAILED, LOST, STOPPED

        if status.kind != "train" or status.state not in (STOPPED, FAILED, LOST):
            return None
        if not self._read:
            self._steps, self._read = resumable_steps(self.project), True
        return self._steps


def resumable_steps(project: Project) -> str | None:
    """Where the saved training state stands (``step 48 of 96``), or None when there is none to resume (never
    saved, finished, or moved aside by --from-scratch)."""
    from loratui.errors import LoratuiError
    from loratui.training.previous_run import find_previous_run

    try:
        run = find_previous_run(project, project.output_name(project.load()))
    except (LoratuiError, OSError):  # a broken loratui.toml: `status` still shows the job; `train` names the fault
        return None
    return (run.steps or "its saved state") if run.resumable else None


def _brief(status: JobStatus) -> dict[str, Any]:
    return {"job_id": status.job_id, "kind": status.kind, "state": status.state, "pid": status.pid,
            "percent": status.percent}


def status_lines(status: JobStatus, project: Project, shown_dir: str, resume: str | None = None) -> list[str]:
    """The status screen; ``shown_dir`` is DIR as the user typed it, for the commands it suggests; ``resume``
    where a stopped training run's saved state stands (``step 48 of 96``), when it can go on."""
    from loratui.jobs.kinds import NONE, STOPPED

    if status.state == NONE:
        return ["No job has run in this project yet.", f"Start one: loratui train {shown_dir} --detach"]
    now = time.time()
    state = status.state.upper() + (" (starting)" if status.starting else "")
    since = ""
    if status.started:
        end = status.finished if status.finished and not status.alive else now
        verb = "since" if status.alive else "started"
        since = f", {verb} {time.strftime('%Y-%m-%d %H:%M', time.localtime(status.started))}" \
                f" ({format_duration(end - status.started)}{'' if status.alive else ' in all'})"
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
        lines.append(f"Checkpoint  {rel_path(status.last_checkpoint, project.root)}{epoch}")
    if status.final_path and status.state != STOPPED:
        lines.append(f"Result      {rel_path(status.final_path, project.root)}")
    message = status.message or (_stop_text(status.stop_reason) if status.state == STOPPED else None)
    if message:
        lines.append(f"Message     {message}")
    if status.warnings:
        lines.append(f"Warnings    {status.warnings} (loratui logs {shown_dir} shows them)")
    if status.log_path:
        lines.append(f"Log         {rel_path(status.log_path, project.root)}")
    lines.append(f"Events      {rel_path(status.events_path or '', project.root)}")
    lines.append(f"Next        {_next_hint(status, shown_dir, resume)}")
    return lines


def _stop_text(reason: str | None) -> str | None:
    """Why a job stopped, as a sentence: the runner writes one ("interrupted (Ctrl-C)"), the loop a cause."""
    from loratui.jobs.status import is_stop_reason

    if not reason:
        return None
    return reason if is_stop_reason(reason) else f"stopped: {reason}"


def other_jobs_lines(others: list[JobStatus], project: Project, shown_dir: str, resume: ResumeCheck) -> list[str]:
    """One line for the last job of each other resource (the training result while the grid is the latest)."""
    if not others:
        return []
    lines = ["", f"Other jobs  (`loratui status {shown_dir} --job KIND` shows one in full)"]
    for other in others:
        lines.append(f"  {other.kind or '?':<9} {_one_line(other, project, shown_dir, resume.steps(other))}")
    return lines


def _one_line(status: JobStatus, project: Project, shown_dir: str, resume: str | None) -> str:
    from loratui.commands.event_lines import outcome_details
    from loratui.jobs.kinds import DONE, STOPPED

    clock = time.strftime("%H:%M", time.localtime(status.started)) if status.started else "?"
    if status.alive:
        progress = _progress_line(status)
        return (f"{status.state.upper()} (pid {status.pid}) since {clock}{': ' + progress if progress else ''} · "
                f"{_next_hint(status, shown_dir)}")
    took = f" ({format_duration(status.finished - status.started)})" if status.finished and status.started else ""
    if status.state in (DONE, STOPPED):
        result = rel_path(status.final_path, project.root) if status.final_path else None
        details = outcome_details(status.kind, status.state == STOPPED, status.summary, result)
    else:
        details = status.message or ""
    line = f"{status.state.upper()} {clock}{took}{': ' + details if details else ''}"
    if status.state != DONE or resume:
        line += f" · next: {_next_hint(status, shown_dir, resume)}"
    return line


def _progress_line(status: JobStatus) -> str:
    percent = status.percent
    pct = f" ({percent:.1f}%)" if percent is not None else ""
    if status.step is not None:
        total = f"/{status.total_steps}" if status.total_steps else ""
        epochs = f"/{status.epochs}" if status.epochs else ""
        epoch = f", epoch {status.epoch}{epochs}" if status.epoch is not None else ""
        return f"step {status.step}{total}{pct}{epoch}"
    eta = f", ETA {format_duration(status.stage_eta_s)}" if status.stage_eta_s is not None and status.alive else ""
    if status.total_steps:
        stage = f"{status.stage} {status.done}/{status.total}{eta}" if status.stage else "loading the model"
        return f"0/{status.total_steps} steps ({stage})"
    if status.done is not None and status.total is not None:
        item = f"  {status.item}" if status.item else ""
        return f"{status.stage} {status.done}/{status.total}{pct}{eta}{item}"
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
        parts.append(f"ETA {format_duration(status.eta_s)}")
    return "   ".join(parts)


def _next_hint(status: JobStatus, shown_dir: str, resume: str | None = None) -> str:
    """The command to run next; ``resume`` (``step 48 of 96``) when a saved training state can go on."""
    from loratui.jobs.kinds import DONE, FAILED, LOST, STOPPED

    if status.alive:
        job = f" --job {status.kind}" if status.kind else ""
        return f"loratui logs {shown_dir}{job} --follow · loratui stop {shown_dir}{job}"
    # A resume that failed on the state itself says to start over instead: no --resume hint against it.
    if status.kind == "train" and resume and status.state in (STOPPED, FAILED, LOST) \
            and "--from-scratch" not in (status.message or ""):
        goes_on = f"loratui train {shown_dir} --resume (goes on from {resume})"
        return goes_on if status.state == STOPPED else f"{goes_on} · loratui logs {shown_dir}"
    if status.state in (STOPPED, FAILED, LOST):
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
    from loratui.jobs.event_log import EventReader
    from loratui.jobs.status import job_status

    project = open_project(args)
    resource = _resource(args)
    status = job_status(project, resource)
    if status.events_path is None:
        print("No job has run in this project yet.", file=sys.stderr)
        return 0
    reader = EventReader(Path(status.events_path), status.events_offset)
    context: dict[str, Any] = {}
    events = _print_new(reader, args.raw, context)
    if not args.follow:
        if not events:
            print(f"No events yet in {rel_path(status.events_path, project.root)}", file=sys.stderr)
        _after_the_job(project, status, context, str(args.dir), args.raw)
        return 0
    if events and events[-1].TYPE in ("done", "error"):
        _after_the_job(project, status, context, str(args.dir), args.raw)
        return 0 if events[-1].TYPE == "done" else 1
    try:
        code = _follow(project, resource or status.resource, reader, args.raw, context)
    except KeyboardInterrupt:
        return 130  # watching stopped; the job goes on
    _after_the_job(project, job_status(project, resource or status.resource), context, str(args.dir), args.raw)
    return code


# How many of the earlier run's last lines `logs` shows when the latest training job never reached a step.
EARLIER_RUN_LINES = 10
EARLIER_RUNS_LOOKED_AT = 20
RAN_STEPS = "ran steps"  # in the context of the printed lines: a step event was among them


def _after_the_job(project: Project, status: JobStatus, context: dict[str, Any], shown_dir: str, raw: bool) -> None:
    """Below an ended job's lines: the training run before it when this job never reached a step (a failed
    `--resume`: where the run stands is in the earlier file), then the command that goes on from a saved
    state. The hint goes to stderr, so `logs > file` keeps only the events."""
    if status.alive or status.kind != "train":
        return
    if not context.get(RAN_STEPS):
        for line in _earlier_run_lines(project, status, raw):
            print(line, flush=True)
    resume = ResumeCheck(project).steps(status)
    if resume:
        print(f"Next: loratui train {shown_dir} --resume (goes on from {resume})", file=sys.stderr)


def _earlier_run_lines(project: Project, status: JobStatus, raw: bool) -> list[str]:
    """The last lines of the latest earlier training job that ran steps, under a heading naming its file (with
    --raw, its file only, on stderr: the output stays JSON lines)."""
    from loratui.jobs import events as ev
    from loratui.jobs.event_log import read_events, read_raw
    from loratui.jobs.paths import events_dir

    current = Path(status.events_path or "").resolve()
    try:
        files = sorted((path for path in events_dir(project).glob("train-*.jsonl") if path.resolve() != current),
                       key=lambda path: path.stat().st_mtime, reverse=True)
    except OSError:
        return []
    for path in files[:EARLIER_RUNS_LOOKED_AT]:
        events = read_events(path)
        if not any(isinstance(event, ev.Step) for event in events):
            continue
        shown = rel_path(path, project.root)
        if raw:
            print(f"The run before it, which trained: {shown}", file=sys.stderr)
            return [json.dumps(record, ensure_ascii=False) for record in read_raw(path)[-EARLIER_RUN_LINES:]]
        context: dict[str, Any] = {}
        lines = [format_event(event, context) for event in events]  # all of them: each line needs the ones before
        shown_lines = lines[-EARLIER_RUN_LINES:]
        return ["", f"This job ran no step; the run before it ({shown}) ended like this (last {len(shown_lines)} of "
                f"{len(lines)} lines):", *shown_lines]
    return []


def _print_new(reader: Any, raw: bool, context: dict[str, Any]) -> list[Any]:
    """Print what was written since the last read; ``raw`` prints the lines as written."""
    from loratui.jobs import events as ev
    from loratui.jobs.event_log import parse_lines

    if not raw:
        events = reader.read_new()
        for event in events:
            print(format_event(event, context), flush=True)
    else:
        events = []
        for line in reader.read_new_bytes().splitlines():
            parsed = parse_lines(line)  # what is not an event is not printed either way
            if parsed:
                print(line.decode("utf-8", "replace"), flush=True)
                events += parsed
    if any(isinstance(event, ev.Step) for event in events):
        context[RAN_STEPS] = True
    return events


def _follow(project: Project, resource: str | None, reader: Any, raw: bool, context: dict[str, Any]) -> int:
    from loratui.jobs.kinds import FAILED, LOST, STOPPED
    from loratui.jobs.status import job_status

    while True:
        batch = _print_new(reader, raw, context)
        ended = next((e for e in batch if e.TYPE in ("done", "error")), None)
        if ended is not None:
            return 0 if ended.TYPE == "done" else 1
        if batch:
            continue
        status = job_status(project, resource)
        if not status.alive:
            _print_new(reader, raw, context)  # written between the last read and the job's exit
            if status.state in (FAILED, LOST):
                print(f"loratui: the {status.kind} job {status.state}: {status.message or 'see its log'}",
                      file=sys.stderr)
                return 1
            print(f"The {status.kind} job is {status.state}{'' if status.state != STOPPED else ' (by request)'}.",
                  file=sys.stderr)
            return 0
        sys.stdout.flush()
        time.sleep(FOLLOW_POLL_S)


# --- stop ----------------------------------------------------------------------------------------


def run_stop(args: argparse.Namespace) -> int:
    from loratui.jobs.stop import request_stop, terminate

    project = open_project(args)
    if args.now:
        status = terminate(project, _resource(args))
        print(f"Sent SIGTERM to the {status.kind} job (pid {status.pid}); `loratui status {args.dir}` shows when "
              "it has gone")
        return 0
    status = request_stop(project, _resource(args))
    print(f"Asked the {status.kind} job (pid {status.pid}) to stop: the job finishes its current step, saves, and "
          f"exits; `loratui status {args.dir}` shows when")
    return 0


def detach(project_dir: Path, kind: str, argv: list[str]) -> int:
    """Start ``loratui *argv`` (the command without --detach) as a detached job, wait until it has begun (or
    failed: its one-line reason, exit status 2), and say how to watch it."""
    from loratui.jobs.detached import start_detached
    from loratui.jobs.kinds import STARTING

    project = open_project_dir(project_dir)
    job = start_detached(project, kind, argv)
    state = job.wait_started()
    begun = "is starting" if state == STARTING else "runs"
    print(f"Started the {kind} job in the background (pid {job.pid}); it {begun} and goes on if you log out.")
    print(f"Log: {rel_path(str(job.log_path), project.root)} · events: {rel_path(job.events_path, project.root)}")
    from loratui.jobs.status import running

    # With another job running too, `logs` and `stop` need to be told which one.
    which = f" --job {kind}" if any(s.kind != kind for s in running(project)) else ""
    print(f"Watch: loratui status {project_dir}{which} · loratui logs {project_dir}{which} --follow · stop: "
          f"loratui stop {project_dir}{which}")
    return 0
