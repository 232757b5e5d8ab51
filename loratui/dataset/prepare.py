"""`prepare`: every concept's source pictures -> dataset/{repeats}_{concept}/ PNGs + brought-along captions.

Incremental through ``.loratui/prepare.json``: a picture is redone only when its source file (size, mtime), the
settings that shape it or its hand-placed crop box changed, or its output went missing. Outputs whose source
vanished or was excluded are removed, and their captions moved to ``.loratui/removed/`` (put back if the picture
returns). Captions already in the dataset are never overwritten. Source folders are only ever read.
"""

from __future__ import annotations

import io
import itertools
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loratui.config import Concept, Config, DatasetSettings
from loratui.dataset import captions
from loratui.dataset.crop import Box, CropPlan, plan_picture
from loratui.dataset.image_inspect import GOOD_SCALE, usable_side
from loratui.dataset.image_open import UnreadableImage
from loratui.dataset.image_scan import IMAGE_SUFFIXES, SourceEntry, natural_key, scan_source, unsupported_pictures
from loratui.dataset.near_duplicates import duplicate_groups, perceptual_hash
from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_bytes, atomic_write_text
from loratui.progress import CancelToken, Outcome, Progress, ProgressCallback, no_progress
from loratui.project import Project, no_pictures_hint

MANIFEST_NAME = "prepare.json"
MANIFEST_VERSION = 1
# Part of every picture's settings key: raise it when a change to the crop code changes what prepare writes,
# so existing datasets are redone once instead of mixing old and new crops.
PREPARE_VERSION = 1
REMOVED_DIR = "removed"
# zlib level 3 writes a 512 px PNG several times faster than the default 6 for files a few % larger.
PNG_COMPRESS_LEVEL = 3
# The manifest is rewritten at most this often while working (and always at the end), so a crash or a kill
# loses at most a few seconds of bookkeeping; those pictures are simply redone next time.
SAVE_INTERVAL_S = 2.0
_MAX_STEM_CHARS = 150


@dataclass
class PreparedImage:
    """One picture of the dataset as the Crop screen shows it."""

    concept: str
    source: Path
    relpath: str
    output: Path
    source_size: tuple[int, int]
    box: Box
    size: tuple[int, int]
    method: str  # manual, face-anime, face-photo, saliency, centre (focal found nothing), center, bucket
    faces: list[Box] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hash: int | None = None
    redone: bool = False

    @property
    def plan(self) -> CropPlan:
        return CropPlan(self.box, self.size, self.method)

    @property
    def upscale(self) -> float:
        return self.plan.upscale

    @property
    def upscaled(self) -> bool:
        return self.plan.upscaled

    @property
    def manual(self) -> bool:
        return self.method == "manual"

    @property
    def face_found(self) -> bool:
        return self.method.startswith("face-")


@dataclass
class PrepareResult:
    """What prepare did: the outcome (done, unchanged, skipped with reasons, warnings) and every picture's record."""

    outcome: Outcome
    images: list[PreparedImage] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)  # outputs deleted: their source is gone or excluded
    moved_captions: list[Path] = field(default_factory=list)  # where their captions went (under .loratui/removed)
    renamed: list[tuple[Path, Path]] = field(default_factory=list)  # concept folders renamed (repeats changed)
    duplicate_groups: list[list[PreparedImage]] = field(default_factory=list)  # best first

    def methods(self) -> Counter[str]:
        return Counter(image.method for image in self.images)


# --- the manifest --------------------------------------------------------------------------------


@dataclass
class _ConceptState:
    folder: str = ""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # source relpath -> record
    removed_captions: dict[str, str] = field(default_factory=dict)  # source relpath -> caption under state dir


class _Manifest:
    def __init__(self, path: Path, concepts: dict[str, _ConceptState]):
        self.path = path
        self.concepts = concepts
        self.saved_at = 0.0

    @classmethod
    def load(cls, path: Path, outcome: Outcome) -> _Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != MANIFEST_VERSION:
                raise ValueError("unknown version")
            concepts = {name: _ConceptState(state.get("folder", ""), dict(state.get("outputs", {})),
                                            dict(state.get("removed_captions", {})))
                        for name, state in data.get("concepts", {}).items()}
        except FileNotFoundError:
            concepts = {}
        except (OSError, ValueError, AttributeError, TypeError):
            outcome.warn(path, "unreadable bookkeeping: every picture is prepared again")
            concepts = {}
        return cls(path, concepts)

    def save(self) -> None:
        data = {"version": MANIFEST_VERSION, "concepts": {name: asdict(state) for name, state in self.concepts.items()}}
        atomic_write_text(self.path, json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True))
        self.saved_at = time.monotonic()

    def save_now_and_then(self) -> None:
        if time.monotonic() - self.saved_at >= SAVE_INTERVAL_S:
            self.save()


def settings_key(dataset: DatasetSettings) -> dict[str, Any]:
    """The settings that shape a prepared picture: when any differs from a picture's record, it is redone."""
    key: dict[str, Any] = {"v": PREPARE_VERSION, "resolution": dataset.resolution, "crop": dataset.crop}
    if dataset.crop == "none":
        key.update(steps=dataset.bucket_reso_steps, min=dataset.min_bucket_reso, max=dataset.max_bucket_reso,
                   no_upscale=dataset.bucket_no_upscale)
    return key


# --- the work done per picture (in a worker process) ---------------------------------------------


@dataclass(frozen=True)
class _Job:
    concept: str
    entry: SourceEntry
    output: Path
    dataset: DatasetSettings
    manual: Any  # the raw crop box from loratui.toml, checked against the picture's size in the worker


@dataclass
class _JobResult:
    job: _Job
    record: dict[str, Any] | None = None
    skipped: str = ""
    fatal: str = ""


def prepare_one(job: _Job) -> _JobResult:
    """Decode, find the focus, crop, resize and write one picture. Never raises for a bad picture."""
    try:
        return _JobResult(job, record=_prepare(job))
    except UnreadableImage as exc:
        return _JobResult(job, skipped=exc.reason)
    except LoratuiError as exc:  # the output could not be written (disk full, permissions): stop everything
        return _JobResult(job, fatal=str(exc))


def _prepare(job: _Job) -> dict[str, Any]:
    planned = plan_picture(job.entry.path, job.dataset, job.manual)
    buffer = io.BytesIO()
    planned.render().save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    atomic_write_bytes(job.output, buffer.getvalue())
    plan = planned.plan
    return {
        "output": job.output.name,
        "source_bytes": job.entry.file_size,
        "source_mtime_ns": job.entry.mtime_ns,
        "settings": settings_key(job.dataset),
        "manual": job.manual,
        "source_size": list(planned.loaded.size),
        "box": list(plan.box),
        "size": list(plan.size),
        "method": plan.method,
        "faces": [list(face) for face in planned.faces],
        "notes": planned.notes,
        "hash": _hex(perceptual_hash(planned.loaded.image)),
    }


def _hex(value: int | None) -> str | None:
    return None if value is None else f"{value:016x}"


# --- the orchestrator ----------------------------------------------------------------------------


@dataclass
class _Planned:
    concept: Concept
    folder: Path
    state: _ConceptState
    entries: list[SourceEntry]
    names: dict[str, str]
    jobs: list[_Job]

    @property
    def redone(self) -> set[str]:
        return {job.entry.relpath for job in self.jobs}


def prepare_project(
    project: Project,
    *,
    force: bool = False,
    workers: int | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> PrepareResult:
    """Bring ``dataset/`` up to date with the sources and settings of every concept, as a ``prepare`` job on the
    dataset (joining the caller's); see the module docstring.

    ``force`` redoes every picture. ``workers`` processes share the pictures (default: one per core, at most 8).
    Raises LoratuiError for a missing source folder (before anything is touched) and Cancelled when cancelled or
    asked to stop (everything finished by then is kept and recorded).
    """
    from loratui.jobs.runner import job

    check_sources(project, project.load())
    with job(project, "prepare") as handle:
        result = _prepare_all(project, force, workers, handle.progress(progress),
                              handle.cancel_token(linked=cancel))
        outcome = result.outcome
        handle.done(result=project.dataset_dir, prepared=outcome.done, unchanged=outcome.unchanged,
                    skipped=len(outcome.skipped), warnings=len(outcome.warnings))
        return result


def _prepare_all(project: Project, force: bool, workers: int | None, progress: ProgressCallback,
                 cancel: CancelToken) -> PrepareResult:
    config = project.load()  # the sources were checked before the job took the dataset
    outcome = Outcome()
    result = PrepareResult(outcome)
    manifest = _Manifest.load(project.state_dir / MANIFEST_NAME, outcome)
    removed_root = project.state_dir / REMOVED_DIR / time.strftime("%Y%m%d-%H%M%S")
    try:
        _drop_old_concepts(project, config, manifest, removed_root, result)
        planned = [_plan_concept(project, config, concept, manifest, removed_root, force, result)
                   for concept in config.concepts]
        total = sum(len(plan.entries) for plan in planned)
        jobs = [job for plan in planned for job in plan.jobs]
        unchanged = total - len(jobs)
        outcome.unchanged = unchanged
        progress(Progress("prepare", unchanged, total, ""))
        by_concept = {plan.concept.name: plan for plan in planned}
        done = unchanged
        for job_result in _run(jobs, workers, cancel):
            plan = by_concept[job_result.job.concept]
            if job_result.fatal:
                raise LoratuiError(job_result.fatal)
            relpath = job_result.job.entry.relpath
            if job_result.record is not None:
                plan.state.outputs[relpath] = job_result.record
                outcome.done += 1
            else:
                outcome.skip(job_result.job.entry.path, job_result.skipped)
                _remove_output(plan, relpath, removed_root, result)  # a stale output of a now-broken source
            done += 1
            progress(Progress("prepare", done, total, relpath))
            manifest.save_now_and_then()
        for plan in planned:
            _finish_concept(project, config, plan, removed_root, result)
        # Workers finish in any order; the summary lists files by name, each file's notes together.
        outcome.skipped.sort(key=lambda note: natural_key(str(note.path)))
        outcome.warnings.sort(key=lambda note: natural_key(str(note.path.with_suffix(""))))
    finally:
        manifest.save()
    return result


def check_sources(project: Project, config: Config) -> None:
    if not config.concepts:
        raise LoratuiError(f"{project.config_path}: no concepts: add a [[concepts]] table with name and source")
    for index, concept in enumerate(config.concepts, start=1):
        source = project.source_dir(concept)
        if not source.is_dir():
            raise LoratuiError(f"{project.config_path}: concepts[{index}].source: {source}: no such folder: point "
                               f"concept {concept.name!r} at the folder of its pictures")


def _plan_concept(project: Project, config: Config, concept: Concept, manifest: _Manifest, removed_root: Path,
                  force: bool, result: PrepareResult) -> _Planned:
    folder = project.concept_dir(concept)
    state = manifest.concepts.setdefault(concept.name, _ConceptState(folder.name))
    _follow_rename(project, state, folder, result)
    source = project.source_dir(concept)
    entries = scan_source(source, concept.recursive, concept.exclude)
    for note in unsupported_pictures(source, concept.recursive, concept.exclude):
        result.outcome.skip(note.path, note.message)
    if not entries:
        result.outcome.warn(source, no_pictures_hint(source, concept))
    present = {entry.relpath for entry in entries}
    plan = _Planned(concept, folder, state, entries, {}, [])
    for relpath in sorted(set(state.outputs) - present, key=natural_key):
        _remove_output(plan, relpath, removed_root, result)
    plan.names = assign_names(entries, state.outputs)
    key = settings_key(config.dataset)
    for entry in entries:
        manual = config.dataset.crop_boxes.get(f"{concept.name}/{entry.relpath}")
        output = folder / plan.names[entry.relpath]
        record = state.outputs.get(entry.relpath)
        if force or not _up_to_date(record, entry, key, manual, output):
            plan.jobs.append(_Job(concept.name, entry, output, config.dataset, manual))
    return plan


def _up_to_date(record: dict[str, Any] | None, entry: SourceEntry, key: dict[str, Any], manual: Any,
                output: Path) -> bool:
    return (record is not None and record.get("output") == output.name
            and record.get("source_bytes") == entry.file_size and record.get("source_mtime_ns") == entry.mtime_ns
            and record.get("settings") == key and record.get("manual") == _jsonable(manual) and output.is_file())


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value)) if value is not None else None


def _follow_rename(project: Project, state: _ConceptState, folder: Path, result: PrepareResult) -> None:
    """Repeats changed (5_akari -> 8_akari): move the folder, captions and all."""
    old = project.dataset_dir / state.folder if state.folder else None
    state.folder = folder.name
    if old is None or old == folder or not old.is_dir():
        return
    if not folder.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        old.rename(folder)
    else:  # both exist (a stale folder was left behind): move what the new one lacks
        for item in old.iterdir():
            if not (folder / item.name).exists():
                shutil.move(str(item), folder / item.name)
        _remove_if_empty(old)
    result.renamed.append((old, folder))


def _drop_old_concepts(project: Project, config: Config, manifest: _Manifest, removed_root: Path,
                       result: PrepareResult) -> None:
    """Concepts no longer in loratui.toml: their outputs go (kohya would still train them), captions kept aside."""
    names = {concept.name for concept in config.concepts}
    for name in [name for name in manifest.concepts if name not in names]:
        state = manifest.concepts[name]
        plan = _Planned(Concept(name=name), project.dataset_dir / state.folder, state, [], {}, [])
        for relpath in list(state.outputs):
            _remove_output(plan, relpath, removed_root, result)
        _remove_if_empty(plan.folder)
        if not state.removed_captions:
            del manifest.concepts[name]


def _remove_output(plan: _Planned, relpath: str, removed_root: Path, result: PrepareResult) -> None:
    record = plan.state.outputs.pop(relpath, None)
    if record is None:
        return
    output = plan.folder / record["output"]
    caption = captions.caption_path(output)
    if caption.is_file():
        destination = _free_path(removed_root / plan.folder.name / caption.name)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(caption), destination)
        # Stored relative to .loratui/ (removed_root is .loratui/removed/<time>), so the project can move.
        plan.state.removed_captions[relpath] = destination.relative_to(removed_root.parents[1]).as_posix()
        result.moved_captions.append(destination)
    if output.is_file():
        output.unlink()
        result.removed.append(output)


def _free_path(path: Path) -> Path:
    candidate, number = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}~{number}{path.suffix}")
        number += 1
    return candidate


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def assign_names(entries: list[SourceEntry], records: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A unique, readable PNG name per source: ``x/a b.JPG`` -> ``x_a b.png``; clashes add the extension.

    Names given on earlier runs stay; comparison ignores case (some file systems do).
    """
    taken: set[str] = set()
    names: dict[str, str] = {}
    for entry in entries:
        previous = (records.get(entry.relpath) or {}).get("output")
        if previous and Path(previous).stem.casefold() not in taken:
            taken.add(Path(previous).stem.casefold())
            names[entry.relpath] = previous
    for entry in entries:
        if entry.relpath in names:
            continue
        for stem in _candidate_stems(entry.relpath):
            if stem.casefold() not in taken:
                taken.add(stem.casefold())
                names[entry.relpath] = stem + ".png"
                break
    return names


def _candidate_stems(relpath: str) -> Iterator[str]:
    path = Path(relpath)
    base = "_".join((*path.parent.parts, path.stem)) if path.parent.parts else path.stem
    base = re.sub(r"[\x00-\x1f\x7f/\\]", "_", base).strip() or "picture"
    base = base.lstrip(".")[:_MAX_STEM_CHARS] or "picture"
    yield base
    with_suffix = f"{base}_{path.suffix.lstrip('.').lower()}"
    yield with_suffix
    number = 2
    while True:
        yield f"{with_suffix}_{number}"
        number += 1


def _finish_concept(project: Project, config: Config, plan: _Planned, removed_root: Path,
                    result: PrepareResult) -> None:
    """Captions brought along, records for the wizard, warnings, near-duplicates, foreign files."""
    outcome = result.outcome
    resolution = config.dataset.resolution
    images = []
    redone = plan.redone
    for entry in plan.entries:
        record = plan.state.outputs.get(entry.relpath)
        if record is None:
            continue
        image = _image_from_record(plan, entry, record, redone=entry.relpath in redone)
        images.append(image)
        _bring_caption(project, plan, entry, image.output, outcome)
        _size_warnings(image, resolution, config.dataset.crop, outcome)
        for note in image.notes:
            if note.startswith(("animated", "crop box")):
                outcome.warn(entry.path, note)
    result.images.extend(images)
    for members in duplicate_groups([image.hash for image in images]):
        group = sorted((images[i] for i in members),
                       key=lambda im: (-(im.source_size[0] * im.source_size[1]), natural_key(im.relpath)))
        result.duplicate_groups.append(group)
        for image in group[1:]:
            outcome.warn(image.source, f"near-duplicate of {group[0].relpath}: keep one (concepts.exclude lists "
                                       "pictures to leave out)")
    ours = {image.output.name for image in images}
    if plan.folder.is_dir():
        for path in sorted(plan.folder.iterdir(), key=lambda p: natural_key(p.name)):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.name not in ours and not path.name.startswith("."):
                outcome.warn(path, "not made by prepare: kohya trains it too; delete it if it does not belong")


def _image_from_record(plan: _Planned, entry: SourceEntry, record: dict[str, Any], redone: bool) -> PreparedImage:
    hashed = record.get("hash")
    return PreparedImage(
        concept=plan.concept.name,
        source=entry.path,
        relpath=entry.relpath,
        output=plan.folder / record["output"],
        source_size=tuple(record["source_size"]),
        box=tuple(record["box"]),
        size=tuple(record["size"]),
        method=record["method"],
        faces=[tuple(face) for face in record.get("faces", [])],
        notes=list(record.get("notes", [])),
        hash=int(hashed, 16) if hashed else None,
        redone=redone,
    )


def _size_warnings(image: PreparedImage, resolution: int, crop: str, outcome: Outcome) -> None:
    width, height = image.source_size
    scale = usable_side(width, height, crop) / resolution
    if image.upscaled:
        outcome.warn(image.source, f"upscaled {image.upscale:.1f}x: {width}x{height} is below the {resolution} px "
                                   "training size, so it will look soft; use a bigger picture if you have one")
    elif scale < GOOD_SCALE:
        outcome.warn(image.source, f"small: {width}x{height} is {scale:.1f}x the {resolution} px training size "
                                   f"(the guide asks for {GOOD_SCALE:.0f}x)")


def _bring_caption(project: Project, plan: _Planned, entry: SourceEntry, output: Path, outcome: Outcome) -> None:
    """Give the prepared picture a caption when it has none: the one kept aside earlier, else the user's own."""
    target = captions.caption_path(output)
    if target.exists():
        return
    kept = plan.state.removed_captions.pop(entry.relpath, None)
    if kept and (project.state_dir / kept).is_file():
        shutil.move(str(project.state_dir / kept), target)
        return
    source_caption = captions.find_source_caption(entry.path)
    if source_caption is None:
        return
    try:
        caption = captions.read_caption(source_caption)
    except OSError as exc:
        outcome.warn(source_caption, f"caption not copied: cannot be read ({exc.strerror or exc})")
        return
    if not caption.tags:
        outcome.warn(source_caption, "empty caption: not copied (kohya refuses empty caption files; tag the "
                                     "picture instead)")
        return
    if caption.certain:
        captions.write_caption(target, caption.tags)
    else:
        # Its encoding is a guess: a UTF-8 copy of the guess could garble it for good; the same bytes keep it fixable.
        atomic_write_bytes(target, source_caption.read_bytes())
    for warning in caption.warnings:
        outcome.warn(source_caption, warning)


# --- running the jobs ----------------------------------------------------------------------------


def default_workers() -> int:
    """One worker process per core, at most 8 (each holds one decoded picture at a time)."""
    return max(1, min(8, os.cpu_count() or 1))


def _run(jobs: list[_Job], workers: int | None, cancel: CancelToken | None) -> Iterator[_JobResult]:
    """Results as pictures finish. One worker runs in this process; more use processes (the face detector holds
    the GIL, so threads would queue behind it). On cancel, pictures under way finish and are yielded first."""
    workers = min(workers or default_workers(), len(jobs))
    if workers <= 1:
        for job in jobs:
            if cancel:
                cancel.check()
            yield prepare_one(job)
        return
    with _executor(workers) as pool:
        queue = iter(jobs)
        # A short queue, so that a cancel waits for a few pictures under way, not for all of them.
        pending = {pool.submit(prepare_one, job) for job in itertools.islice(queue, workers * 2)}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
            if cancel and cancel.cancelled:
                for future in pending:
                    future.cancel()
                for future in as_completed(pending):
                    if not future.cancelled():
                        yield future.result()
                cancel.check()
            pending |= {pool.submit(prepare_one, job) for job in itertools.islice(queue, len(finished))}


def _executor(workers: int) -> Executor:
    # fork starts a worker in milliseconds; spawn (the safe choice on macOS and Windows) re-imports numpy, Pillow
    # and OpenCV in each worker first. prepare runs as its own process, without threads that fork could upset.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
