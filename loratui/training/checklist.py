"""The pre-flight checklist a person reads before a run (`loratui check DIR --train`, the wizard's Train step):
every check as one line, ✓ / ! / ✗ with what was found and how to fix it. No torch; it reads file names, caption
text, the base model's header and disk figures, and asks nvidia-smi about the GPU.

:func:`~loratui.training.preflight.preflight` stops at the first problem (the run must not start); this one goes
through all of them, so the user fixes everything in one pass."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from loratui.config import Config
from loratui.errors import LoratuiError
from loratui.project import Project, hub_problem, optimizer_problem, source_problem

OK, WARN, FAIL = "ok", "warn", "fail"
# Another process holding this much of the GPU is worth naming (a desktop session holds a few hundred MB).
GPU_BUSY_GB = 1.0


@dataclass(frozen=True)
class CheckLine:
    """One check: its name, how it went, what was found, and (not ok) what to do; ``step`` is the wizard step
    where it is fixed (2 Crop, 3 Tags, 4 Params), None when it is fixed outside the wizard."""

    name: str
    state: str
    found: str
    fix: str = ""
    step: int | None = None

    @property
    def ok(self) -> bool:
        return self.state != FAIL


@dataclass
class Checklist:
    lines: list[CheckLine] = field(default_factory=list)
    total_steps: int | None = None
    family: str = ""

    @property
    def ready(self) -> bool:
        """Every line ✓ or a warning: a run may start."""
        return all(line.ok for line in self.lines)

    def to_dict(self) -> dict:
        return {"ready": self.ready, "total_steps": self.total_steps, "family": self.family,
                "lines": [asdict(line) for line in self.lines]}


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: str
    used_gb: float


@dataclass(frozen=True)
class GpuFacts:
    """The first GPU as nvidia-smi tells it; None fields where it could not say."""

    name: str
    used_gb: float | None = None
    total_gb: float | None = None
    processes: tuple[GpuProcess, ...] = ()


GpuProbe = Callable[[], "GpuFacts | None"]


def train_checklist(project: Project, config: Config | None = None, *, gpu_probe: GpuProbe | None = None,
                    where: str | None = None) -> Checklist:
    """Every check before a run, in the order the wizard shows them. ``config`` defaults to loratui.toml;
    ``gpu_probe`` to nvidia-smi (tests pass their own); ``where`` is DIR as the user typed it, for the commands."""
    where = where or str(project.root)
    result = Checklist()
    if config is None:
        try:
            config = project.load()
        except LoratuiError as exc:
            result.lines.append(CheckLine("settings", FAIL, str(exc), "fix loratui.toml (the line names the key)",
                                          4))
            return result
    add = result.lines.append
    problem = optimizer_problem(config.training, str(project.config_path))
    if problem is not None:
        add(CheckLine("settings", FAIL, str(problem), "choose another optimizer on Params (expert view)", 4))
    prepared = _pictures(project, config, add, where)
    if prepared:
        _captions(project, config, add, where)
    detection = _base_model(project, config, add)
    result.family = (detection.family or "") if detection is not None else ""
    pictures = 0
    if prepared:
        result.total_steps, pictures = _steps(project, config, detection, add)
    _writable(project, add)
    _disk(project, config, result.family, pictures, add)
    _gpu(gpu_probe or nvidia_smi, add)
    _previous_run(project, config, add, where)
    return result


def _pictures(project: Project, config: Config, add: Callable[[CheckLine], None], where: str) -> bool:
    from loratui.dataset.image_scan import dataset_pictures

    if not config.concepts:
        add(CheckLine("pictures prepared", FAIL, "no concept in loratui.toml",
                      f"choose the pictures on Images (loratui new {where} --source SRC --concept NAME)", 1))
        return False
    counts = []
    for index, concept in enumerate(config.concepts, 1):
        folder = project.concept_dir(concept)
        count = len(dataset_pictures(folder))
        if not count:
            source = source_problem(project, concept, index)
            if source is not None:
                add(CheckLine("pictures prepared", FAIL, source.message, "point the concept at your pictures", 1))
            else:
                add(CheckLine("pictures prepared", FAIL, f"none in {_relative(folder, project.root)}/",
                              f"prepare them: ^r on Crop (loratui prepare {where})", 2))
            return False
        counts.append(f"{count} in {_relative(folder, project.root)}/")
    add(CheckLine("pictures prepared", OK, ", ".join(counts)))
    return True


def _captions(project: Project, config: Config, add: Callable[[CheckLine], None], where: str) -> None:
    """Written, none empty, the trigger first: ✗ where training would learn nothing useful, ! where part is off."""
    from loratui.dataset.captions import caption_path, parse_caption_bytes, split_tags, tag_key
    from loratui.dataset.image_scan import dataset_pictures

    name = "captions, trigger first"
    tag_fix = f"^r on Tags runs the tagger (loratui tag {where})"
    warnings = []
    shown = []
    for concept in config.concepts:
        pictures = dataset_pictures(project.concept_dir(concept))
        trigger = [tag_key(t) for t in split_tags(concept.trigger)] if concept.trigger else []
        if not trigger:
            add(CheckLine(name, FAIL, f"concept {concept.name} has no trigger word",
                          f"type it on Tags, then ^s (loratui tags {where} --trigger WORD)", 3))
            return
        written = first = 0
        empty = []
        for picture in pictures:
            try:
                tags = parse_caption_bytes(caption_path(picture).read_bytes()).tags
            except FileNotFoundError:
                continue
            except OSError as exc:
                add(CheckLine(name, FAIL, f"{caption_path(picture)}: cannot be read ({exc.strerror})",
                              "check its permissions"))
                return
            written += 1
            if not tags:
                empty.append(caption_path(picture).name)
            elif [tag_key(t) for t in tags[:len(trigger)]] == trigger:
                first += 1
        if not written:
            add(CheckLine(name, FAIL, f"no captions for the {len(pictures)} pictures of {concept.name}", tag_fix, 3))
            return
        if empty:
            add(CheckLine(name, FAIL, f"{len(empty)} empty caption file{'s' if len(empty) != 1 else ''} "
                                      f"({', '.join(empty[:2])}): kohya stops on them", tag_fix, 3))
            return
        if not first:
            add(CheckLine(name, FAIL, f"trigger \"{concept.trigger}\" starts no caption: the LoRA would not learn it",
                          f"^s on Tags writes it first (loratui tags {where} --trigger \"{concept.trigger}\")", 3))
            return
        if written < len(pictures):
            warnings.append(f"{len(pictures) - written} of {len(pictures)} pictures have no caption")
        if first < written:
            warnings.append(f"{written - first} of {written} captions do not start with \"{concept.trigger}\"")
        shown.append(f"{written} with \"{concept.trigger}\" first")
    if warnings:
        add(CheckLine(name, WARN, "; ".join(warnings), "^s on Tags writes every caption with the trigger first", 3))
    else:
        add(CheckLine(name, OK, ", ".join(shown)))


def _base_model(project: Project, config: Config, add: Callable[[CheckLine], None]):  # -> ModelDetection | None
    from loratui.training.model_family import HUB, detect_base_model

    name, fix = "base model", "choose it on Params (^o browses)"
    if not config.project.base_model:
        add(CheckLine(name, FAIL, "project.base_model is not set", fix, 4))
        return None
    try:
        detection = detect_base_model(config.project.base_model, project.root)
    except LoratuiError as exc:
        add(CheckLine(name, FAIL, str(exc), fix, 4))
        return None
    if detection.kind != HUB and detection.info is None:
        add(CheckLine(name, FAIL, f"{detection.location}: cannot train on it: "
                                  f"{detection.note or 'unknown model family'}", fix, 4))
        return None
    unreachable = hub_problem(detection, str(project.config_path))
    if unreachable is not None:
        add(CheckLine(name, FAIL, unreachable.message, fix, 4))
        return None
    shown = detection if detection.kind == HUB else replace(detection, location=_relative(Path(detection.location),
                                                                                         project.root))
    add(CheckLine(name, OK, shown.describe()))
    return detection


def _steps(project: Project, config: Config, detection, add: Callable[[CheckLine], None]) -> tuple[int | None, int]:
    from loratui.training.estimate import estimate

    family = detection.family if detection is not None and detection.family else None
    try:
        plan = estimate(project, config, family=family)
    except (LoratuiError, OSError) as exc:
        add(CheckLine("total steps", FAIL, str(exc), "fix the dataset settings on Params", 4))
        return None, 0
    pictures = sum(c.pictures for c in plan.concepts)
    found = (f"{plan.total_steps:,} steps ({plan.epochs} epochs x {plan.steps.steps_per_epoch})").replace(",", " ")
    advice = plan.range_advice
    if advice:
        add(CheckLine("total steps", WARN, found, advice, 4))
    else:
        add(CheckLine("total steps", OK, f"{found}, in {plan.step_range[0]}-{plan.step_range[1]}"))
    return plan.total_steps, pictures


def _writable(project: Project, add: Callable[[CheckLine], None]) -> None:
    from loratui.training.preflight import check_writable

    try:
        check_writable(project.output_dir, "the output folder")
        check_writable(project.state_dir, "the state folder")
    except LoratuiError as exc:
        add(CheckLine("output folder writable", FAIL, str(exc), "fix its permissions, or free disk space"))
        return
    add(CheckLine("output folder writable", OK, f"{_relative(project.output_dir, project.root)}/"))


def _disk(project: Project, config: Config, family: str, pictures: int, add: Callable[[CheckLine], None]) -> None:
    from loratui.training.preflight import _size, space_needed

    needed = space_needed(config, family, pictures)
    try:
        free = shutil.disk_usage(project.output_dir if project.output_dir.is_dir() else project.root).free
    except OSError as exc:
        add(CheckLine("free disk", WARN, f"cannot measure ({exc.strerror or exc})"))
        return
    writes = f"the run writes ~{_size(needed.total)} ({needed.files} files)"
    if free < needed.total:
        add(CheckLine("free disk", FAIL, f"{_size(free)} free, {writes}",
                      "free some space, or a higher save_every_n_epochs on Params", 4))
    else:
        # Not the free figure itself: it changes by the minute (the status line shows it at 120 columns).
        add(CheckLine("free disk", OK, f"enough: {writes}"))


def _gpu(probe: GpuProbe, add: Callable[[CheckLine], None]) -> None:
    facts = probe()
    if facts is None:
        add(CheckLine("GPU", WARN, "no NVIDIA GPU found: training runs on the CPU, very slowly",
                      "fine for the demo; for a real LoRA use a machine with a GPU"))
        return
    others = sorted((p for p in facts.processes if p.used_gb >= GPU_BUSY_GB), key=lambda p: -p.used_gb)
    memory = f", {facts.used_gb:.1f} of {facts.total_gb:.0f} GB in use" if facts.used_gb is not None \
        and facts.total_gb else ""
    if others:
        first = others[0]
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        add(CheckLine("GPU", WARN, f"{facts.name}: {first.name} (pid {first.pid}) uses {first.used_gb:.1f} GB{more}",
                      "stop it first, or expect less speed and maybe out of memory"))
        return
    add(CheckLine("GPU", OK, f"{facts.name} free{memory}"))


def _previous_run(project: Project, config: Config, add: Callable[[CheckLine], None], where: str) -> None:
    from loratui.training.previous_run import find_previous_run

    run = find_previous_run(project, project.output_name(config))
    if not run.exists:
        return
    if run.resumable:
        add(CheckLine("earlier run", WARN, f"a stopped run can go on ({run.steps})",
                      f"^r resumes it (loratui train {where} --resume)"))
    else:
        add(CheckLine("earlier run", FAIL, f"output/ holds a finished run ({len(run.files)} files)",
                      f"^n compares them; to train again: loratui train {where} --from-scratch (keeps them in "
                      "output/old-<time>/)", 6))


def nvidia_smi() -> GpuFacts | None:
    """The first GPU, its memory in use and the processes on it, from nvidia-smi; None without one."""
    def query(*args: str) -> list[list[str]] | None:
        try:
            result = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True,
                                    text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        if result.returncode != 0:
            return None
        return [[cell.strip() for cell in line.split(",")] for line in result.stdout.splitlines() if line.strip()]

    gpus = query("--query-gpu=name,memory.used,memory.total")
    if not gpus:
        return None
    name, used, total = (gpus[0] + ["", "", ""])[:3]
    processes = []
    for row in query("--query-compute-apps=pid,process_name,used_memory") or []:
        try:
            processes.append(GpuProcess(int(row[0]), Path(row[1]).name, float(row[2]) / 1024))
        except (ValueError, IndexError):
            continue  # "[N/A]" in a container that hides other processes
    return GpuFacts(name, _mib_to_gb(used), _mib_to_gb(total), tuple(processes))


def _mib_to_gb(text: str) -> float | None:
    try:
        return float(text) / 1024
    except ValueError:
        return None


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
