"""Rank preview cells without a human: resemblance to the training set, the prompt's extra tags, and damage.

Three measures per cell, all 0..1:

* **resemblance** - does the cell look like the training pictures? A weighted mix of *tag recall* (the WD14
  tagger's probabilities for the dataset's subject tags: hair and eye colour, clothes...) and *colour similarity*
  (a colour histogram of the cell's central area against the training pictures').
* **flexibility** - are the prompt's extra tags (``smile`` in ``akari, smile``) seen by the tagger? A LoRA that
  only ever draws its training pictures scores low here.
* **damage** - is the picture broken (black, white, flat, clipped colours, noise)? Measured on pixel statistics
  alone, no model.

``total = (0.7 * resemblance + 0.3 * flexibility) * (1 - damage)``; :func:`suggest` picks the best undamaged cell.
Without a tagger (offline, not downloaded) resemblance uses the colours alone and flexibility is not measured.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loratui.dataset.captions import caption_path, parse_caption_bytes, split_tags, tag_key
from loratui.errors import LoratuiError
from loratui.progress import Progress, ProgressCallback, no_progress

if TYPE_CHECKING:
    from PIL import Image

    from loratui.config import Config
    from loratui.dataset.tagger import Tagger
    from loratui.project import Project

# --- what counts as the subject -------------------------------------------------------------------------------

# A tag in at least this share of the captions describes the subject (its hair, eyes, clothes), not one picture.
SUBJECT_MIN_SHARE = 0.3
# Tags that say how a picture is framed, not what the subject looks like: a cell that lacks them is no worse.
# Kept short on purpose: everything else the captions share is taken as part of the subject.
GENERIC_TAGS = frozenset(tag_key(t) for t in (
    "1girl", "1boy", "2girls", "2boys", "solo", "simple background", "white background", "grey background",
    "transparent background", "looking at viewer", "upper body", "portrait", "full body", "cowboy shot",
    "close-up", "standing",
))
RATING_TAGS = frozenset({"general", "sensitive", "questionable", "explicit"})
# Quality words people put in prompts that no tagger outputs: not "extra tags" the LoRA should show.
QUALITY_WORDS = frozenset(tag_key(t) for t in (
    "masterpiece", "best quality", "high quality", "good quality", "normal quality", "amazing quality",
    "very aesthetic", "absurdres", "highres", "ultra detailed", "extremely detailed", "detailed", "8k", "4k", "hdr",
))

# --- how the measures combine -------------------------------------------------------------------------------

# Resemblance: tags 0.6, colours 0.4. The tagger's tags name what matters (red hair, blue eyes, yellow shirt)
# whatever the lighting, pose or background; a colour histogram is cruder (a sunset or a new background shifts
# it) but needs no model and catches a palette the tags miss. So tags lead and colours support.
TAG_SHARE, COLOUR_SHARE = 0.6, 0.4
# Total: resemblance 0.7, flexibility 0.3. A LoRA that does not look like the subject has failed whatever else
# it does; following the prompt is the second test (the seed article's "trigger + something new" check).
RESEMBLANCE_SHARE, FLEXIBILITY_SHARE = 0.7, 0.3
# The total when there is nothing to compare with (no captions, no pictures): only damage tells cells apart.
NEUTRAL_TOTAL = 0.5
# A cell this damaged is never suggested.
SUGGEST_MAX_DAMAGE = 0.5

# --- colour reference ---------------------------------------------------------------------------------------

# 8 bins per channel (512 colours): coarse enough that a cell's slightly different shading lands in the same
# bins, fine enough to tell crimson hair from orange.
COLOUR_BINS = 8
# The middle of the picture (60% of each side) is where the subject usually is; the borders are background.
CENTRE_MARGIN = 0.2
_HISTOGRAM_SIDE = 64
# Enough pictures for a stable reference; a 500-picture set is sampled evenly instead of read whole.
MAX_REFERENCE_PICTURES = 64

# --- damage thresholds, calibrated on the demo pictures, gradients, photos-like value noise and broken images --
# Each kind has a ramp: 0 below the first value (every clean test picture is there), 1 beyond the second.
_DAMAGE_SIDE = 256
# Noise is measured at full resolution on the middle of the picture (a 1024 px cell would blur it at 256).
_NOISE_SIDE = 384
# black: the share of nearly black pixels (luminance < 0.05), or the mean luminance (clean pictures >= 0.15).
_DARK_LUMA, _BLACK_SHARE, _BLACK_MEAN = 0.05, (0.90, 0.98), (0.08, 0.03)
# white: the share of nearly white pixels; a drawing on white keeps its lines (clean demo pictures <= 0.95).
_LIGHT_LUMA, _WHITE_SHARE = 0.96, (0.97, 0.995)
# flat: the largest channel standard deviation; a pastel two-colour gradient has 0.037, clean pictures >= 0.2.
_FLAT_STD = (0.03, 0.01)
# saturated: the share of channel values clipped at 0 or 255 in colourful pixels (white and black backgrounds
# do not count). Clean pictures <= 0.06; a picture with contrast and saturation turned up 4x 0.78.
_CLIP_LOW, _CLIP_HIGH, _COLOURFUL_CHROMA, _SATURATED_SHARE = 2 / 255, 253 / 255, 0.25, (0.25, 0.5)
# noisy: mean |Laplacian| per channel over the channels' standard deviation, at full resolution. Independent
# pixel noise gives 3.6 at any strength; clean pictures 0.02-0.41 (the demo's grainy backgrounds included);
# Gaussian noise of sigma 60/255 over a demo picture 1.7-3.6; the untrained tiny demo model's renders 1.3 (mildly
# noisy, still suggestable). The absolute Laplacian must also be visible, so faint grain on a flat picture is
# called flat, not noisy.
_NOISE_RATIO, _NOISE_MIN_LAPLACIAN = (1.1, 2.0), 0.04
DAMAGE_KINDS = ("black", "white", "flat", "saturated", "noisy")


@dataclass
class CellScore:
    """The scores of one rendered cell (see the module docstring for what each means)."""

    resemblance: float | None  # 0..1: looks like the training set (tags + colours); None if nothing to compare
    flexibility: float | None  # 0..1: the prompt's extra tags are seen; None without extra tags or a tagger
    damage: float  # 0..1, 0 = clean
    damage_kinds: list[str]  # subset of DAMAGE_KINDS, empty exactly when damage is 0
    total: float  # 0..1 combined
    found_tags: list[str] = field(default_factory=list)  # the subject tags seen in the cell

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CellScore:
        """Read what :meth:`to_dict` wrote (grid.json); ValueError for anything else."""
        try:
            return cls(
                resemblance=_optional_float(data.get("resemblance")),
                flexibility=_optional_float(data.get("flexibility")),
                damage=float(data["damage"]),
                damage_kinds=[str(kind) for kind in data.get("damage_kinds") or []],
                total=float(data["total"]),
                found_tags=[str(tag) for tag in data.get("found_tags") or []],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a cell score ({type(exc).__name__}: {exc})") from None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class SubjectTag:
    """A tag most captions share: what the cell should show too. ``weight`` = its share of the captions."""

    name: str
    weight: float


def suggest(scores: Sequence[CellScore | None]) -> int | None:
    """Index of the best cell: the highest total among cells damaged less than 0.5 (the first on a tie)."""
    best: int | None = None
    for index, score in enumerate(scores):
        if score is None or score.damage >= SUGGEST_MAX_DAMAGE:
            continue
        if best is None or score.total > scores[best].total:  # type: ignore[union-attr]
            best = index
    return best


# --- the scorer ---------------------------------------------------------------------------------------------


@dataclass
class _TagIndex:
    """Subject or prompt tags that the tagger knows: output index, weight, and the score that counts as seen."""

    names: list[str]
    indices: np.ndarray
    weights: np.ndarray
    thresholds: np.ndarray


class Scorer:
    """Scores cells against one project's training set; build it with :meth:`for_project` (reads the dataset once)."""

    def __init__(
        self,
        subject_tags: list[SubjectTag],
        colour_reference: np.ndarray | None,
        colour_typical: float,
        *,
        extra_tags: list[str] | None = None,
        tagger: Tagger | None = None,
        general_threshold: float = 0.35,
        character_threshold: float = 0.85,
        warnings: list[str] | None = None,
    ):
        self.subject_tags = subject_tags
        self.colour_reference = colour_reference
        # What the training pictures themselves score against the reference: a cell as close as a typical
        # training picture gets colour similarity 1.
        self.colour_typical = colour_typical
        self.extra_tags = list(extra_tags or [])
        self.tagger = tagger
        self.warnings: list[str] = list(warnings or [])
        self._subject: _TagIndex | None = None
        self._extra: _TagIndex | None = None
        if tagger is not None:
            vocabulary = _vocabulary(tagger, general_threshold, character_threshold)
            self._subject = _index(vocabulary, [(t.name, t.weight) for t in subject_tags])
            known = [(name, 1.0) for name in self.extra_tags if tag_key(name) in vocabulary]
            for name in self.extra_tags:
                if tag_key(name) not in vocabulary:
                    self.warnings.append(f"prompt tag \"{name}\" is not in the tagger's vocabulary: flexibility "
                                         "does not count it")
            self._extra = _index(vocabulary, known)

    @classmethod
    def for_project(cls, project: Project, config: Config, prompt: str, *, use_tagger: bool = True,
                    progress: ProgressCallback = no_progress) -> Scorer:
        """The subject tags from the captions, the colour reference from dataset/, the project's tagger if it
        loads (a warning and colours only if not), and the prompt's extra tags."""
        pictures = _dataset_pictures(project, config)
        warnings: list[str] = []
        subject = subject_tags([_read_tags(p) for p in pictures], _trigger_keys(config))
        reference, typical, unreadable = colour_reference(pictures, progress)
        if unreadable:
            warnings.append(f"{unreadable} dataset picture{'s' if unreadable != 1 else ''} could not be read: the "
                            "colour reference leaves them out")
        if not pictures:
            warnings.append(f"{project.dataset_dir}: no prepared pictures: nothing to compare the cells with "
                            f"(run `loratui prepare {project.root}`)")
        tagger = None
        if use_tagger:
            tagger, problem = _load_tagger(project, config, progress)
            if tagger is None:
                warnings.append(f"tagger not available ({problem}): resemblance uses colours only and "
                                "flexibility is not measured")
            else:
                warnings.extend(tagger.warnings)
        return cls(subject, reference, typical, extra_tags=prompt_extra_tags(prompt, config), tagger=tagger,
                   general_threshold=config.tagging.general_threshold,
                   character_threshold=config.tagging.character_threshold, warnings=warnings)

    def score(self, image: Image.Image) -> CellScore:
        rgb = image.convert("RGB")
        damage, kinds = measure_damage(rgb)
        colour = self._colour_similarity(rgb)
        tag_recall = flexibility = None
        found: list[str] = []
        if self.tagger is not None and (self._subject or self._extra):
            from loratui.dataset.tagger_input import preprocess_exact

            probabilities = self.tagger.probabilities(preprocess_exact(rgb, self.tagger.side)[None])[0]
            if self._subject:
                seen = probabilities[self._subject.indices]
                tag_recall = float(np.dot(self._subject.weights, seen) / self._subject.weights.sum())
                found = [name for name, p, t in zip(self._subject.names, seen, self._subject.thresholds, strict=True)
                         if p > t]
            if self._extra:
                flexibility = float(probabilities[self._extra.indices].mean())
        resemblance = _mix([(TAG_SHARE, tag_recall), (COLOUR_SHARE, colour)])
        combined = _mix([(RESEMBLANCE_SHARE, resemblance), (FLEXIBILITY_SHARE, flexibility)])
        total = (NEUTRAL_TOTAL if combined is None else combined) * (1.0 - damage)
        return CellScore(_round(resemblance), _round(flexibility), round(damage, 4), kinds, round(total, 4), found)

    def _colour_similarity(self, rgb: Image.Image) -> float | None:
        if self.colour_reference is None or self.colour_typical <= 0:
            return None
        similarity = histogram_intersection(colour_histogram(rgb), self.colour_reference)
        return min(1.0, similarity / self.colour_typical)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _mix(parts: list[tuple[float, float | None]]) -> float | None:
    """Weighted mean of the parts that are measured, the weights renormalised over them; None if none is."""
    known = [(weight, value) for weight, value in parts if value is not None]
    if not known:
        return None
    return sum(weight * value for weight, value in known) / sum(weight for weight, _ in known)


# --- reference from the dataset -----------------------------------------------------------------------------


def _dataset_pictures(project: Project, config: Config) -> list[Path]:
    from loratui.dataset.image_scan import dataset_pictures

    return [p for concept in config.concepts for p in dataset_pictures(project.concept_dir(concept))]


def _read_tags(picture: Path) -> list[str]:
    try:
        return parse_caption_bytes(caption_path(picture).read_bytes()).tags
    except OSError:
        return []


def _trigger_keys(config: Config) -> set[str]:
    return {tag_key(t) for concept in config.concepts for t in split_tags(concept.trigger or concept.name)}


def subject_tags(captions: list[list[str]], trigger_keys: set[str]) -> list[SubjectTag]:
    """Tags in at least SUBJECT_MIN_SHARE of the captions, minus triggers, ratings and GENERIC_TAGS; most
    frequent first. The first spelling of each tag is kept."""
    captioned = [tags for tags in captions if tags]
    if not captioned:
        return []
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for tags in captioned:
        keys = {tag_key(t): t for t in tags}
        counts.update(keys.keys())
        for key, tag in keys.items():
            spelling.setdefault(key, tag)
    left_out = trigger_keys | GENERIC_TAGS | RATING_TAGS
    chosen = [SubjectTag(spelling[key], round(count / len(captioned), 4)) for key, count in counts.items()
              if count / len(captioned) >= SUBJECT_MIN_SHARE and key not in left_out]
    return sorted(chosen, key=lambda t: (-t.weight, tag_key(t.name)))


def colour_reference(pictures: list[Path], progress: ProgressCallback = no_progress
                     ) -> tuple[np.ndarray | None, float, int]:
    """(mean histogram of the pictures' central areas, the median similarity of a picture to it, unreadable)."""
    from PIL import Image

    if len(pictures) > MAX_REFERENCE_PICTURES:
        step = len(pictures) / MAX_REFERENCE_PICTURES
        pictures = [pictures[int(i * step)] for i in range(MAX_REFERENCE_PICTURES)]
    histograms, unreadable = [], 0
    for done, picture in enumerate(pictures):
        progress(Progress("reading the training pictures", done, len(pictures), picture.name))
        try:
            with Image.open(picture) as opened:
                opened.draft("RGB", (_HISTOGRAM_SIDE * 4, _HISTOGRAM_SIDE * 4))
                histograms.append(colour_histogram(opened.convert("RGB")))
        except (OSError, ValueError, Image.DecompressionBombError):
            unreadable += 1
    progress(Progress("reading the training pictures", len(pictures), len(pictures)))
    if not histograms:
        return None, 0.0, unreadable
    reference = np.mean(histograms, axis=0)
    typical = statistics.median(histogram_intersection(h, reference) for h in histograms)
    return reference, float(typical), unreadable


def colour_histogram(rgb: Image.Image) -> np.ndarray:
    """Normalised COLOUR_BINS^3 histogram of the central area (flattened)."""
    from PIL import Image

    width, height = rgb.size
    box = (round(width * CENTRE_MARGIN), round(height * CENTRE_MARGIN),
           max(round(width * (1 - CENTRE_MARGIN)), 1), max(round(height * (1 - CENTRE_MARGIN)), 1))
    small = rgb.resize((_HISTOGRAM_SIDE, _HISTOGRAM_SIDE), Image.Resampling.BOX, box=box)
    bins = np.asarray(small, dtype=np.uint16) * COLOUR_BINS // 256
    index = (bins[..., 0] * COLOUR_BINS + bins[..., 1]) * COLOUR_BINS + bins[..., 2]
    counts = np.bincount(index.ravel(), minlength=COLOUR_BINS ** 3).astype(np.float64)
    return counts / counts.sum()


def histogram_intersection(a: np.ndarray, b: np.ndarray) -> float:
    """Share of colour the two normalised histograms have in common: 1 the same, 0 no colour in common."""
    return float(np.minimum(a, b).sum())


# --- the tagger ---------------------------------------------------------------------------------------------


def _load_tagger(project: Project, config: Config, progress: ProgressCallback) -> tuple[Tagger | None, str]:
    """The project's tagger, or None and why not (offline, not downloaded, onnxruntime missing, bad files)."""
    try:
        from loratui.dataset.tagger import Tagger
        from loratui.dataset.tagger_models import resolve_model

        files = resolve_model(config.tagging.model, project.root, progress)
        progress(Progress("loading tagger", 0, 1, files.name))
        tagger = Tagger.load(files)
        progress(Progress("loading tagger", 1, 1, files.name))
        return tagger, ""
    except LoratuiError as exc:
        return None, str(exc)
    except ImportError as exc:
        return None, f"onnxruntime cannot be imported: {exc}"


def _vocabulary(tagger: Tagger, general: float, character: float) -> dict[str, tuple[int, float]]:
    """Tag key -> (output index, the threshold that counts it as seen) for general and character tags."""
    from loratui.dataset.tagger import format_tag

    names = tagger.labels.names
    vocabulary = {tag_key(format_tag(names[i])): (int(i), character) for i in tagger.labels.character}
    vocabulary.update({tag_key(format_tag(names[i])): (int(i), general) for i in tagger.labels.general})
    return vocabulary


def _index(vocabulary: dict[str, tuple[int, float]], tags: list[tuple[str, float]]) -> _TagIndex | None:
    known = [(name, weight, *vocabulary[tag_key(name)]) for name, weight in tags if tag_key(name) in vocabulary]
    if not known:
        return None
    return _TagIndex([k[0] for k in known], np.array([k[2] for k in known]), np.array([k[1] for k in known]),
                     np.array([k[3] for k in known]))


# --- the prompt ---------------------------------------------------------------------------------------------

_NETWORK = re.compile(r"<[^>]*>")  # <lora:name:0.8>, <hypernet:...>
_WEIGHT = re.compile(r":\s*-?[\d.]+\s*$")


def prompt_extra_tags(prompt: str, config: Config) -> list[str]:
    """The prompt's comma-separated parts minus trigger words, LoRA calls and quality words, plain (no brackets
    or weights), in order and without repeats: what the LoRA should draw that its pictures did not teach it."""
    triggers = _trigger_keys(config)
    extra: dict[str, str] = {}
    for part in split_tags(_NETWORK.sub(" ", prompt.replace("{trigger}", " "))):
        plain = _WEIGHT.sub("", part.strip().strip("()[]{}").strip()).strip("()[]{}").strip()
        key = tag_key(plain)
        if key and key != "break" and key not in triggers and key not in QUALITY_WORDS:
            extra.setdefault(key, plain)
    return list(extra.values())


# --- damage from pixel statistics ---------------------------------------------------------------------------


def _ramp(value: float, start: float, end: float) -> float:
    """0 at ``start``, 1 at ``end``, linear between; works both ways (start > end for "the lower the worse")."""
    if math.isclose(start, end):
        return float(value >= end) if end >= start else float(value <= end)
    return min(1.0, max(0.0, (value - start) / (end - start)))


def measure_damage(rgb: Image.Image) -> tuple[float, list[str]]:
    """(damage 0..1, kinds) from pixel statistics; damage is the worst kind's severity. A clean picture gives
    (0.0, []). A black or white picture is not also called flat."""
    from PIL import Image

    rgb = rgb.convert("RGB")
    small = rgb
    if max(small.size) > _DAMAGE_SIDE:
        small = small.copy()
        small.thumbnail((_DAMAGE_SIDE, _DAMAGE_SIDE), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float32) / 255.0
    luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    severity = {
        "black": max(_ramp(float((luma < _DARK_LUMA).mean()), *_BLACK_SHARE), _ramp(float(luma.mean()), *_BLACK_MEAN)),
        "white": _ramp(float((luma > _LIGHT_LUMA).mean()), *_WHITE_SHARE),
        "flat": _ramp(float(pixels.reshape(-1, 3).std(axis=0).max()), *_FLAT_STD),
        "saturated": _ramp(_clipped_share(pixels), *_SATURATED_SHARE),
        "noisy": _noise_severity(_centre_crop(rgb, _NOISE_SIDE)),
    }
    if severity["black"] > 0 or severity["white"] > 0:
        severity["flat"] = 0.0
    kinds = [kind for kind in DAMAGE_KINDS if severity[kind] > 0]
    return (max(severity.values()) if kinds else 0.0), kinds


def _clipped_share(pixels: np.ndarray) -> float:
    chroma = pixels.max(axis=2) - pixels.min(axis=2)
    clipped = (pixels <= _CLIP_LOW) | (pixels >= _CLIP_HIGH)
    return float((clipped & (chroma > _COLOURFUL_CHROMA)[..., None]).mean())


def _centre_crop(rgb: Image.Image, side: int) -> np.ndarray:
    """At most side x side pixels from the middle, at full resolution: shrinking would average the noise away."""
    width, height = rgb.size
    left, top = max(0, (width - side) // 2), max(0, (height - side) // 2)
    crop = rgb.crop((left, top, min(width, left + side), min(height, top + side)))
    return np.asarray(crop, dtype=np.float32) / 255.0


def _noise_severity(pixels: np.ndarray) -> float:
    if pixels.shape[0] < 3 or pixels.shape[1] < 3:
        return 0.0
    laplacian = np.abs(4 * pixels[1:-1, 1:-1] - pixels[:-2, 1:-1] - pixels[2:, 1:-1] - pixels[1:-1, :-2]
                       - pixels[1:-1, 2:]).mean()
    spread = float(pixels.reshape(-1, 3).std(axis=0).mean())
    if laplacian < _NOISE_MIN_LAPLACIAN or spread <= 0:
        return 0.0
    return _ramp(float(laplacian) / spread, *_NOISE_RATIO)
