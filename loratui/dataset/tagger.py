"""WD14 tagging through onnxruntime: the session, thresholds, and captions for a dataset (input: tagger_input)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from loratui.config import Concept, Config, TaggingSettings
from loratui.dataset import caption_backup, captions
from loratui.dataset.image_scan import dataset_pictures
from loratui.dataset.tagger_input import default_workers, preprocess_files
from loratui.dataset.tagger_models import ModelFiles, resolve_model
from loratui.errors import LoratuiError
from loratui.progress import CancelToken, Outcome, Progress, ProgressCallback, no_progress

if TYPE_CHECKING:
    from types import ModuleType

    from onnxruntime import InferenceSession

    from loratui.project import Project

CATEGORY_GENERAL, CATEGORY_CHARACTER, CATEGORY_RATING = 0, 4, 9
# The SmilingWolf space floors the character MCut so one lone character score cannot drag it to zero.
CHARACTER_MCUT_FLOOR = 0.15
# Tags whose underscore is part of the face, not a word separator (toriato's list, copied by every tagger UI).
KAOMOJIS = frozenset({
    "0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3", "6_9", ">_o", "@_@",
    "^_^", "o_o", "u_u", "x_x", "|_|", "||_||",
})
_CPU, _CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


# --- the tag table ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labels:
    """selected_tags.csv: tag names in output order and the output indices of each category."""

    names: tuple[str, ...]
    rating: np.ndarray
    general: np.ndarray
    character: np.ndarray


def load_labels(path: Path) -> Labels:
    """Read and check a WD14 selected_tags.csv (header ``tag_id,name,category,count``; names may hold quotes)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LoratuiError(f"{path}: cannot be read ({exc}): download selected_tags.csv again") from None
    reader = csv.reader(io.StringIO(text))
    header = [column.strip() for column in next(reader, [])]
    if "name" not in header or "category" not in header:
        raise LoratuiError(f"{path}: not a WD14 selected_tags.csv (its first line should be "
                           "tag_id,name,category,count): download it again from the model's page")
    name_at, category_at = header.index("name"), header.index("category")
    names, categories = [], []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) <= max(name_at, category_at):
            raise LoratuiError(f"{path}:{line}: too few columns: the file is damaged; download it again")
        try:
            categories.append(int(row[category_at]))
        except ValueError:
            raise LoratuiError(f"{path}:{line}: category {row[category_at]!r} is not a number: the file is damaged; "
                               "download it again") from None
        names.append(row[name_at])
    if not names:
        raise LoratuiError(f"{path}: holds no tags: download selected_tags.csv again")
    cats = np.array(categories)
    # Unknown categories (copyright rows of pre-WD1.4 tables) are read but never written.
    return Labels(tuple(names), *(np.flatnonzero(cats == c) for c in (CATEGORY_RATING, CATEGORY_GENERAL,
                                                                         CATEGORY_CHARACTER)))


# --- the model ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """What the session says about its graph; names and sizes are never assumed."""

    input_name: str
    output_name: str
    side: int
    fixed_batch: int | None  # v2.0 exports take exactly 1 picture per run; None = any batch
    outputs: int | None  # scores per picture, when the graph says


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is loaded and the user has not hidden the GPUs (CUDA_VISIBLE_DEVICES="" or -1)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if Path("/proc/driver/nvidia/version").exists():
        return True
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        result = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "GPU" in result.stdout


class Tagger:
    """A loaded WD14 tagger: one onnxruntime session and its tag table."""

    def __init__(self, files: ModelFiles, session: InferenceSession, labels: Labels, signature: Signature,
                 warnings: list[str]):
        self.files = files
        self.session = session
        self.labels = labels
        self.signature = signature
        self.warnings = warnings  # e.g. CUDA asked for but unusable: tagging goes on on the CPU

    @classmethod
    def load(cls, files: ModelFiles, *, gpu: bool | None = None) -> Tagger:
        """Open the model; CUDA only where an NVIDIA GPU is present (``gpu`` forces the choice)."""
        labels = load_labels(files.tags)
        try:
            import onnxruntime as ort
        except ImportError:
            # The runtime is an extra (cpu or gpu builds hold the same module): a bare `pip install loratui` lacks it.
            raise LoratuiError("the tagger needs onnxruntime, which is not installed: run scripts/setup, or "
                               "pip install 'loratui[cpu]' ('loratui[gpu]' on an NVIDIA machine)") from None

        want_cuda = has_nvidia_gpu() if gpu is None else gpu
        providers, warnings = [_CPU], []
        if want_cuda:
            if _CUDA in ort.get_available_providers():
                _preload_cuda_libraries(ort)
                providers.insert(0, _CUDA)
            else:
                warnings.append("an NVIDIA GPU is present but this onnxruntime has no CUDA support (install "
                                "onnxruntime-gpu): tagging on the CPU")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the graph-optimiser notes mean nothing to a user
        # Idle onnxruntime threads otherwise spin on the cores the decoding threads need (measured: bench/).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(files.model), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for every kind of bad file
            raise LoratuiError(f"{files.model}: cannot be loaded as an ONNX model ({_short(exc)}): download it "
                               "again or choose another tagger") from None
        if _CUDA in providers and _CUDA not in session.get_providers():
            warnings.append("CUDA was asked for but onnxruntime could not start it (it needs the CUDA 13 and "
                            "cuDNN 9 libraries): tagging on the CPU")
        signature = read_signature(session, files.model)
        if signature.outputs is not None and signature.outputs != len(labels.names):
            raise LoratuiError(f"{files.tags}: lists {len(labels.names)} tags but {files.model.name} gives "
                               f"{signature.outputs} scores: the two files come from different models; take both "
                               "from the same repo")
        return cls(files, session, labels, signature, warnings)

    @property
    def side(self) -> int:
        return self.signature.side

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    @property
    def device(self) -> str:
        return "CUDA" if _CUDA in self.providers else "CPU"

    def batch_size_for(self, requested: int) -> int:
        return self.signature.fixed_batch or max(1, requested)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Scores [n, tags] for a float32 NHWC BGR batch; fixed-batch graphs are fed exactly their size."""
        step = self.signature.fixed_batch
        if step is None:
            return self._run(batch)
        parts = []
        for start in range(0, len(batch), step):
            chunk = batch[start:start + step]
            short = step - len(chunk)
            if short:  # only graphs fixed above 1 get here: pad with the last picture, drop its scores
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], short, axis=0)])
            parts.append(self._run(chunk)[:step - short])
        return np.concatenate(parts)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        sig = self.signature
        try:
            scores = self.session.run([sig.output_name], {sig.input_name: batch})[0]
        except Exception as exc:  # out of GPU memory, a graph that rejects the input: say which and what to try
            raise LoratuiError(f"{self.files.model}: tagging failed on the {self.device} ({_short(exc)}): try a "
                               "smaller --batch-size") from None
        if scores.ndim != 2 or scores.shape[1] != len(self.labels.names):
            raise LoratuiError(f"{self.files.tags}: lists {len(self.labels.names)} tags but {self.files.model.name} "
                               f"gave scores of shape {list(scores.shape)}: take both files from the same repo")
        return scores


def _preload_cuda_libraries(ort: ModuleType) -> None:
    # onnxruntime >= 1.21 can load the CUDA/cuDNN libraries that pip's nvidia-* packages (torch's) put in
    # site-packages; where they are missing the session falls back to the CPU and we say so.
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception:  # best effort: a failure here shows up as the CPU fallback warning
            pass


def read_signature(session: InferenceSession, model: Path) -> Signature:
    """Input/output names, the square side and the batch rule, checked to be a WD14-style NHWC graph."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if not inputs or not outputs:
        raise LoratuiError(f"{model}: the graph has no input or no output: not a WD14 tagger")
    first, scores = inputs[0], outputs[0]
    shape = list(first.shape)
    if (len(shape) != 4 or shape[3] != 3 or not isinstance(shape[1], int) or shape[1] != shape[2]
            or shape[1] < 1):
        raise LoratuiError(f"{model}: input {first.name!r} has shape {shape}, not [batch, side, side, 3]: not a "
                           "WD14 tagger (those take square BGR pictures)")
    if first.type != "tensor(float)":
        raise LoratuiError(f"{model}: input {first.name!r} is {first.type}, not float32: not a WD14 tagger")
    batch = shape[0]
    fixed = batch if isinstance(batch, int) and batch > 0 else None
    width = scores.shape[-1] if scores.shape and isinstance(scores.shape[-1], int) else None
    return Signature(first.name, scores.name, int(shape[1]), fixed, width)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


# --- from scores to tags ------------------------------------------------------------------------------------


def format_tag(name: str) -> str:
    """Danbooru name -> caption text: ``_`` becomes a space except in kaomoji; nothing is escaped, because
    kohya trains on the literal text (``\\(`` would be learnt as a backslash)."""
    return name if name in KAOMOJIS else name.replace("_", " ")


def mcut_threshold(scores: np.ndarray) -> float | None:
    """Maximum-cut threshold (Largeron et al. 2012): the middle of the largest gap between sorted scores.
    None when there are fewer than two scores (no gap to cut)."""
    if len(scores) < 2:
        return None
    ordered = np.sort(scores)[::-1]
    gap = int(np.argmax(ordered[:-1] - ordered[1:]))
    return float((ordered[gap] + ordered[gap + 1]) / 2)


@dataclass
class TaggedImage:
    """One picture's result: the tags chosen, each with its confidence, and the rating scores."""

    path: Path
    characters: dict[str, float]  # caption text -> score, most confident first
    general: dict[str, float]
    ratings: dict[str, float] = field(default_factory=dict)

    @property
    def rating(self) -> str:
        return max(self.ratings, key=self.ratings.__getitem__) if self.ratings else ""

    @property
    def confidences(self) -> dict[str, float]:
        """Chosen tags in caption order (characters, then general) with their scores."""
        return {**self.characters, **self.general}

    def tags(self, write_rating: bool = False) -> list[str]:
        chosen = list(self.characters) + list(self.general)
        return chosen + [self.rating] if write_rating and self.rating else chosen


def choose_tags(path: Path, scores: np.ndarray, labels: Labels, settings: TaggingSettings) -> TaggedImage:
    """Thresholds (``>``, as the reference) or MCut per category; characters and general sorted by score."""
    def pick(indices: np.ndarray, threshold: float, mcut_floor: float | None) -> dict[str, float]:
        values = scores[indices]
        if settings.mcut:
            cut = mcut_threshold(values)
            if cut is not None:
                threshold = max(cut, mcut_floor) if mcut_floor is not None else cut
        above = np.flatnonzero(values > threshold)
        chosen: dict[str, float] = {}
        for i in above[np.argsort(-values[above], kind="stable")]:  # by score, ties in table order
            chosen.setdefault(format_tag(labels.names[indices[i]]), float(values[i]))
        return chosen

    ratings = {labels.names[i]: float(scores[i]) for i in labels.rating}
    return TaggedImage(
        Path(path),
        characters=pick(labels.character, settings.character_threshold, CHARACTER_MCUT_FLOOR),
        general=pick(labels.general, settings.general_threshold, None),
        ratings=ratings,
    )


# --- running over many pictures -----------------------------------------------------------------------------


def _tag_stream(
    paths: list[Path],
    tagger: Tagger,
    settings: TaggingSettings,
    outcome: Outcome,
    progress: ProgressCallback,
    cancel: CancelToken | None,
    workers: int | None = None,
) -> Iterator[TaggedImage]:
    """Tag ``paths`` batch by batch, yielding each result as soon as its batch is scored (so callers can save
    it at once); unreadable files go to ``outcome.skipped``; ``cancel`` is checked before every batch."""
    size = tagger.batch_size_for(settings.batch_size)
    total, done = len(paths), 0
    waiting: list[tuple[Path, np.ndarray]] = []
    workers = workers or default_workers()

    def score(batch: list[tuple[Path, np.ndarray]]) -> Iterator[TaggedImage]:
        nonlocal done
        if cancel is not None:
            cancel.check()
        probabilities = tagger.probabilities(np.stack([array for _, array in batch]))
        for (path, _), scores in zip(batch, probabilities, strict=True):
            done += 1
            yield choose_tags(path, scores, tagger.labels, settings)
            progress(Progress("tagging", done, total, path.name))

    if cancel is not None:
        cancel.check()
    progress(Progress("tagging", 0, total))
    # Enough decoded ahead that the next batch is ready when the model finishes this one, and no more.
    for path, loaded in preprocess_files(paths, tagger.side, fast=settings.fast_decode, workers=workers,
                                         ahead=size + 2 * workers):
        if isinstance(loaded, str):
            outcome.skip(path, loaded)
            done += 1
            progress(Progress("tagging", done, total, path.name))
            continue
        waiting.append((path, loaded))
        if len(waiting) == size:
            yield from score(waiting)
            waiting = []
    if waiting:
        yield from score(waiting)


@dataclass
class ImageTags:
    """Result of :func:`tag_images`: one entry per readable picture, in input order."""

    images: list[TaggedImage]
    outcome: Outcome
    seconds: float


def tag_images(
    paths: Iterable[Path],
    tagger: Tagger,
    settings: TaggingSettings | None = None,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    workers: int | None = None,
) -> ImageTags:
    """Tag any picture files and return each one's tags with confidences; nothing is written."""
    settings = settings or TaggingSettings()
    outcome = Outcome()
    started = time.perf_counter()
    images = list(_tag_stream([Path(p) for p in paths], tagger, settings, outcome, progress, cancel, workers))
    outcome.done = len(images)
    return ImageTags(images, outcome, time.perf_counter() - started)


@dataclass
class TagRun:
    """What ``loratui tag`` did to a project's captions."""

    outcome: Outcome
    model: str = ""
    providers: list[str] = field(default_factory=list)
    device: str = "CPU"
    batch_size: int = 0
    tagged: int = 0  # pictures run through the model (written or unchanged)
    ratings: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # decoding + inference + writing, model loading excluded
    snapshot: Path | None = None

    @property
    def images_per_s(self) -> float:
        return self.tagged / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Job:
    concept: Concept
    image: Path
    existing: captions.Caption | None


def tag_dataset(
    project: Project,
    config: Config,
    *,
    concepts: list[Concept] | None = None,
    tagger: Tagger | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> TagRun:
    """Tag every prepared picture of ``concepts`` (all by default) and write its caption per ``config.tagging``:
    merge with the caption it has, drop deleted tags, put the concept's trigger first. Runs as a ``tag`` job on the
    dataset (joining the caller's). Captions that would be rewritten are snapshotted once first (``loratui tags
    DIR --undo``); each caption is saved as soon as its batch is scored, so a cancel or a crash keeps the work
    done."""
    from loratui.jobs.runner import job

    with job(project, "tag") as handle:
        run = _tag_dataset(project, config, concepts, tagger, handle.progress(progress),
                           handle.cancel_token(linked=cancel))
        handle.done(tagged=run.tagged, skipped=len(run.outcome.skipped), warnings=len(run.outcome.warnings))
        return run


def _tag_dataset(project: Project, config: Config, concepts: list[Concept] | None, tagger: Tagger | None,
                 progress: ProgressCallback, cancel: CancelToken) -> TagRun:
    settings = config.tagging
    concepts = list(config.concepts if concepts is None else concepts)
    if not concepts:
        raise LoratuiError(f"{project.config_path}: no concepts: add one with a [[concepts]] table")
    outcome = Outcome()
    jobs = _plan(project, concepts, settings, outcome)
    run = TagRun(outcome, model=settings.model)
    if not jobs:
        return run
    if tagger is None:
        files = resolve_model(settings.model, project.root, progress)
        progress(Progress("loading tagger", 0, 1, files.name))
        tagger = Tagger.load(files)
        progress(Progress("loading tagger", 1, 1, files.name))
    run.model, run.providers, run.device = tagger.files.name, tagger.providers, tagger.device
    run.batch_size = tagger.batch_size_for(settings.batch_size)
    for warning in tagger.warnings:
        outcome.warn(tagger.files.model, warning)
    if any(job.existing is not None for job in jobs):
        folders = sorted({project.concept_dir(job.concept) for job in jobs})
        run.snapshot = caption_backup.take_snapshot(
            project.dataset_dir, folders, project.state_dir, "tagging run", config_file=project.config_path
        ).path

    by_path = {job.image: job for job in jobs}
    ratings: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        for tagged in _tag_stream(list(by_path), tagger, settings, outcome, progress, cancel):
            run.tagged += 1
            if tagged.rating:
                ratings[tagged.rating] += 1
            _write(by_path[tagged.path], tagged, settings, outcome)
    finally:
        run.seconds = time.perf_counter() - started
        run.ratings = dict(ratings.most_common())
        if run.snapshot is not None and not outcome.done:
            # Nothing was rewritten after all (every caption came out the same): an undo would do nothing.
            shutil.rmtree(run.snapshot, ignore_errors=True)
            run.snapshot = None
    return run


def _plan(project: Project, concepts: list[Concept], settings: TaggingSettings, outcome: Outcome) -> list[_Job]:
    """Every picture to tag, with the caption it has now; merge=skip leaves captioned pictures alone."""
    jobs, found = [], 0
    for concept in concepts:
        for image in dataset_pictures(project.concept_dir(concept)):
            found += 1
            existing = _existing_caption(image, outcome, report=settings.merge == "append")
            if existing is _UNREADABLE:
                continue
            if existing is not None and not existing.certain and settings.merge != "overwrite":
                # Its tags are a guess: merging them (or counting it as tagged) would write the guess back as
                # UTF-8. overwrite keeps none of it, and the backup holds its bytes.
                if settings.merge == "append":
                    outcome.skip(captions.caption_path(image), existing.warnings[0])
                else:
                    outcome.unchanged += 1
                continue
            if settings.merge == "skip" and existing is not None and existing.tags:
                outcome.unchanged += 1
                continue
            jobs.append(_Job(concept, image, existing))
    if not found:
        names = ", ".join(project.concept_dir(c).name for c in concepts)
        raise LoratuiError(f"{project.dataset_dir}: no prepared pictures in {names}: run `loratui prepare "
                           f"{project.root}` first")
    return jobs


_UNREADABLE = captions.Caption([])


def _existing_caption(image: Path, outcome: Outcome, report: bool) -> captions.Caption | None:
    """The caption a picture has now; what was fixed to read it matters only where its tags are kept."""
    path = captions.caption_path(image)
    if not path.is_file():
        return None
    try:
        existing = captions.read_caption(path)
    except OSError as exc:
        outcome.skip(image, f"its caption {path.name} cannot be read ({exc.strerror or exc})")
        return _UNREADABLE
    for warning in existing.warnings if report and existing.certain else ():
        outcome.warn(path, warning)  # an uncertain caption is skipped instead, with its encoding line
    return existing


def _write(job: _Job, tagged: TaggedImage, settings: TaggingSettings, outcome: Outcome) -> None:
    new = tagged.tags(settings.write_rating)
    if settings.merge == "append" and job.existing is not None:
        new = job.existing.tags + new
    final = captions.apply_trigger_and_deletions(new, job.concept.trigger, settings.deleted_tags)
    path = captions.caption_path(job.image)
    if job.existing is not None and path.read_bytes() == (captions.join_tags(final) + "\n").encode("utf-8"):
        outcome.unchanged += 1
        return
    captions.write_caption(path, final)
    outcome.done += 1
