"""The wizard's six steps and where a project stands in each, read from its files and its jobs (no heavy imports:
only the engine's torch-free modules)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from loratui.config import Config
from loratui.errors import LoratuiError
from loratui.jobs.status import JobStatus, all_statuses
from loratui.project import Project


@dataclass(frozen=True)
class Step:
    number: int
    name: str
    purpose: str  # row 2: what the step is for
    job_kind: str | None  # the engine job this step runs, if any
    command: str  # the same step from a shell; {dir} is the project folder

    def shell(self, root: Path) -> str:
        return self.command.replace("{dir}", str(root))


STEPS: tuple[Step, ...] = (
    Step(1, "Images", "choose the pictures, leave out the bad ones", None,
         "loratui scan {dir}"),
    Step(2, "Crop", "crop and resize to the training resolution", "prepare",
         "loratui prepare {dir}"),
    Step(3, "Tags", "caption each picture; the trigger word carries the rest", "tag",
         "loratui tag {dir} · loratui tags {dir} --delete TAG ... --trigger WORD"),
    Step(4, "Params", "the settings, and the steps they make", None,
         "loratui estimate {dir} · loratui settings"),
    Step(5, "Train", "train in a background job that survives logging out", "train",
         "loratui train {dir} --detach · loratui status {dir} · loratui logs {dir} --follow"),
    Step(6, "Preview", "compare the checkpoints, install the best", "grid",
         "loratui grid {dir} --text · loratui install {dir} --to LORA_DIR"),
)

# What a step shows in the step bar: written, never colour alone (design §2.2).
DONE, CURRENT, ATTENTION, FAILED, NOT_STARTED = "done", "current", "attention", "failed", ""


@dataclass
class StepState:
    """One step's state: done, needs attention, failed, or a job's percent while it runs."""

    mark: str = NOT_STARTED
    percent: float | None = None  # a job of this step is running
    note: str = ""  # why (for the help and the status line)


@dataclass
class ProjectState:
    """Where a project stands: each step's state and its jobs (most recent first)."""

    steps: dict[int, StepState]
    jobs: list[JobStatus]
    config: Config | None
    problem: str = ""  # loratui.toml could not be read: the one-line reason

    @property
    def running(self) -> JobStatus | None:
        return next((job for job in self.jobs if job.alive), None)

    @property
    def shown_job(self) -> JobStatus | None:
        """The job the status line shows: the running one, else the one that ended last."""
        ended = [job for job in self.jobs if job.finished]
        return self.running or (max(ended, key=lambda job: job.finished or 0.0) if ended else None)

    def first_open_step(self) -> int:
        """The step to open on: a running job's step, else the first step not done."""
        job = self.running
        if job is not None:
            step = step_of_kind(job.kind)
            if step is not None:
                return step
        return next((n for n, s in sorted(self.steps.items()) if s.mark != DONE), len(STEPS))


def step_of_kind(kind: str | None) -> int | None:
    return next((s.number for s in STEPS if s.job_kind == kind), None)


# project root -> (what the files looked like, the steps read from them, the config): the app reads the state
# every poll while a job runs, and parsing loratui.toml and listing every picture and caption each time is most of
# a poll's cost; a changed file or folder (captions, checkpoints and grid.json are written by rename, which
# changes their folder) reads them again.
_FILES_SEEN: dict[Path, tuple[tuple, dict[int, StepState], Config]] = {}


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


def _files_key(project: Project, config: Config) -> tuple:
    folders = [project.output_dir, project.preview_dir]
    for concept in config.concepts:
        folders += [project.concept_dir(concept), project.source_dir(concept)]
    return tuple(_stamp(folder) for folder in folders)


def read_state(project: Project) -> ProjectState:
    """Each step's state from the files the engine writes; a broken loratui.toml leaves every step open."""
    try:
        jobs = all_statuses(project)
    except (LoratuiError, OSError):
        jobs = []
    config_stamp = _stamp(project.config_path)
    seen = _FILES_SEEN.get(project.root)
    if seen is not None and seen[0][0] == config_stamp and seen[0][1:] == _files_key(project, seen[2]):
        steps = dict(seen[1])
        _apply_jobs(steps, jobs)
        return ProjectState(steps, jobs, seen[2])
    try:
        config = project.load()
    except LoratuiError as exc:
        steps = {s.number: StepState() for s in STEPS}
        return ProjectState(steps, jobs, None, str(exc))
    key = (config_stamp, *_files_key(project, config))
    crop = _crop(project, config)
    steps = {
        1: _images(project, config, prepared=crop.mark == DONE),
        2: crop,
        3: _tags(project, config),
        4: StepState(DONE if _trained(project, config) else NOT_STARTED),
        5: StepState(DONE if _trained(project, config) else NOT_STARTED),
        6: StepState(DONE if (project.preview_dir / "grid.json").is_file() else NOT_STARTED),
    }
    # Kept only when every stamp is older than a timestamp's granularity can hide: a file written in the same
    # clock tick as the scan would leave its folder's time unchanged.
    if all(stamp is None or time.time_ns() - stamp[0] > 2_000_000_000 for stamp in key):
        _FILES_SEEN[project.root] = (key, dict(steps), config)
    else:
        _FILES_SEEN.pop(project.root, None)
    _apply_jobs(steps, jobs)
    return ProjectState(steps, jobs, config)


def _images(project: Project, config: Config, *, prepared: bool) -> StepState:
    """Done once the pictures were looked at and prepared: a new project opens here, on its pictures."""
    if not config.concepts:
        return StepState(NOT_STARTED, note="no concept yet")
    for concept in config.concepts:
        source = project.source_dir(concept)
        if not source.is_dir():
            return StepState(ATTENTION, note=f"{source}: not found")
    return StepState(DONE if prepared else NOT_STARTED)


def _crop(project: Project, config: Config) -> StepState:
    from loratui.dataset.image_scan import dataset_pictures

    prepared = [bool(dataset_pictures(project.concept_dir(c))) for c in config.concepts]
    return StepState(DONE if prepared and all(prepared) else NOT_STARTED)


def _tags(project: Project, config: Config) -> StepState:
    from loratui.dataset.captions import caption_path
    from loratui.dataset.image_scan import dataset_pictures

    pictures = [p for c in config.concepts for p in dataset_pictures(project.concept_dir(c))]
    if not pictures:
        return StepState(NOT_STARTED)
    captioned = sum(caption_path(p).is_file() for p in pictures)
    if captioned < len(pictures):
        return StepState(NOT_STARTED if captioned == 0 else ATTENTION,
                         note=f"{len(pictures) - captioned} of {len(pictures)} pictures have no caption")
    if any(not c.trigger for c in config.concepts):
        return StepState(ATTENTION, note="no trigger word yet")
    return StepState(DONE)


def _trained(project: Project, config: Config) -> bool:
    return (project.output_dir / f"{project.output_name(config)}.safetensors").is_file()


def _apply_jobs(steps: dict[int, StepState], jobs: list[JobStatus]) -> None:
    """A running job shows its percent on its step; a step whose last job failed shows ✗."""
    seen: set[int] = set()
    for job in jobs:  # most recent first: the first job of a step decides
        number = step_of_kind(job.kind)
        if number is None or number in seen:
            continue
        seen.add(number)
        if job.alive:
            steps[number] = StepState(steps[number].mark, percent=job.percent or 0.0)
        elif job.state in ("failed", "lost"):
            steps[number] = StepState(FAILED, note=job.message or job.state)


def project_dir_label(path: Path, width: int = 12) -> str:
    """The project's name as the step bar shows it: cut last, to ``width`` characters."""
    name = path.name or str(path)
    return name if len(name) <= width else name[: width - 1] + "~"
