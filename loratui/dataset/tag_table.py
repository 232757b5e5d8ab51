"""The dataset's captions as read from disk and the dataset-wide table of tags with their counts (Tags screen)."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from loratui.config import Concept, Config
from loratui.dataset.captions import caption_path, parse_caption_bytes, split_tags, tag_key
from loratui.dataset.image_scan import dataset_pictures
from loratui.errors import LoratuiError
from loratui.progress import CancelToken, Outcome, Progress, ProgressCallback, no_progress
from loratui.project import Project

SORT_KEYS = ("count", "name")


# --- reading the dataset -------------------------------------------------------------------------------------


@dataclass
class CaptionEntry:
    """One prepared picture and its caption as found on disk."""

    concept: str
    image: Path
    caption: Path
    data: bytes | None = None  # the caption's bytes; None when there is no caption file
    tags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    readable: bool = True  # False: edits leave the file alone (it could not be read, or its encoding is a guess)
    guessed: bool = False  # the encoding was guessed: ``tags`` may be garbled, so they are shown but never written

    @property
    def has_caption(self) -> bool:
        return self.data is not None


@dataclass
class DatasetCaptions:
    """Every picture of every concept folder with its caption, and the files that could not be read."""

    entries: list[CaptionEntry]
    outcome: Outcome
    spellings: dict[str, str]  # tag key -> the spelling most captions use

    def spelling(self, tag: str) -> str:
        return self.spellings.get(tag_key(tag), tag)


def _find_concept(config: Config, name: str) -> Concept:
    for concept in config.concepts:
        if concept.name == name:
            return concept
    known = ", ".join(c.name for c in config.concepts) or "none"
    raise LoratuiError(f"--concept {name}: no such concept in loratui.toml (concepts: {known})")


def chosen_concepts(config: Config, only: str | None = None) -> list[Concept]:
    if not config.concepts:
        raise LoratuiError("loratui.toml has no [[concepts]]: add one with name and source, then run "
                           "`loratui prepare DIR`")
    return [_find_concept(config, only)] if only else list(config.concepts)


def read_dataset(
    project: Project,
    config: Config,
    *,
    concept: str | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> DatasetCaptions:
    """Read the caption of every picture in the concept folders (one concept with ``concept``)."""
    pairs = [(c.name, image) for c in chosen_concepts(config, concept)
             for image in dataset_pictures(project.concept_dir(c))]
    outcome = Outcome()
    entries = []
    spellings: dict[str, Counter] = defaultdict(Counter)
    for index, (name, image) in enumerate(pairs):
        if cancel:
            cancel.check()
        entry = _read_entry(name, image, outcome)
        for tag in entry.tags:
            spellings[tag_key(tag)][tag] += 1
        entries.append(entry)
        progress(Progress("Reading captions", index + 1, len(pairs), image.name))
    return DatasetCaptions(entries, outcome, {key: _usual_spelling(key, c) for key, c in spellings.items()})


def _usual_spelling(key: str, counts: Counter) -> str:
    """The spelling most captions use; on a tie the tagger's own form (lower case, spaces), then the first met."""
    order = {tag: index for index, tag in enumerate(counts)}
    return min(counts, key=lambda tag: (-counts[tag], tag != key, order[tag]))


def _read_entry(concept: str, image: Path, outcome: Outcome) -> CaptionEntry:
    path = caption_path(image)
    entry = CaptionEntry(concept, image, path)
    if not os.path.lexists(path):
        return entry
    try:
        entry.data = path.read_bytes()
    except OSError as exc:
        entry.readable = False
        outcome.skip(path, f"cannot be read ({exc.strerror or exc}): left as it is")
        return entry
    caption = parse_caption_bytes(entry.data)
    entry.tags, entry.warnings = caption.tags, list(caption.warnings)
    if not caption.certain:
        # Rewriting tags read through a wrong guess would garble the file for good (its warning says so).
        entry.readable, entry.guessed = False, True
    if not entry.data.strip():
        entry.warnings.append("is empty: kohya stops on an empty caption file; tag the picture or set a trigger")
    for message in entry.warnings:
        outcome.warn(path, message)
    return entry


def no_pictures_error(project: Project) -> LoratuiError:
    return LoratuiError(f"{project.dataset_dir}: no prepared pictures yet: run `loratui prepare {project.root}` "
                        "first (then `loratui tag` to caption them)")


def require_pictures(dataset: DatasetCaptions, project: Project) -> None:
    if not dataset.entries:
        raise no_pictures_error(project)


# --- the tag table -------------------------------------------------------------------------------------------


@dataclass
class TagRow:
    """One tag of the dataset: how many pictures carry it, overall and per concept."""

    tag: str  # the spelling most captions use
    key: str
    count: int
    share: float  # count / pictures of the table (0..1)
    concepts: dict[str, int] = field(default_factory=dict)
    deleted: bool = False  # listed in tagging.deleted_tags
    trigger_of: list[str] = field(default_factory=list)  # concepts whose trigger word holds this tag


@dataclass
class TagTable:
    """Every tag of the dataset (or of one concept) with counts and shares, plus what is missing."""

    rows: list[TagRow]
    images: int
    uncaptioned: int  # pictures without a caption file
    empty: int  # caption files holding no tag
    concept_images: dict[str, int]
    concept_uncaptioned: dict[str, int]
    deleted: list[str]  # tagging.deleted_tags as saved
    outcome: Outcome  # captions that could not be read (skipped) or need fixing (warnings)
    concept: str | None = None  # the one concept this table covers, if any
    trigger_first: dict[str, int] = field(default_factory=dict)  # concept -> captions that start with its trigger
    triggers: dict[str, str] = field(default_factory=dict)  # concept -> its trigger word(s)

    def sorted(self, by: str = "count") -> list[TagRow]:
        """Rows by count (most first, then name) or by name."""
        if by not in SORT_KEYS:
            raise LoratuiError(f"sort: {by!r} is not a sort order: use {' or '.join(SORT_KEYS)}")
        if by == "name":
            return sorted(self.rows, key=lambda r: (r.key, r.tag))
        return sorted(self.rows, key=lambda r: (-r.count, r.key, r.tag))

    def find(self, tag: str) -> TagRow | None:
        key = tag_key(tag)
        return next((row for row in self.rows if row.key == key), None)

    def concept_share(self, row: TagRow, concept: str) -> float:
        """The share of one concept's pictures that carry the row's tag."""
        return row.concepts.get(concept, 0) / max(self.concept_images.get(concept, 0), 1)


def tag_table(
    project: Project,
    config: Config,
    *,
    concept: str | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> TagTable:
    """Count every tag over the concept folders. Deleted tags appear even where no caption holds them."""
    dataset = read_dataset(project, config, concept=concept, progress=progress, cancel=cancel)
    counts: Counter = Counter()
    per_concept: dict[str, Counter] = defaultdict(Counter)
    images: Counter = Counter()
    uncaptioned: Counter = Counter()
    empty = 0
    trigger_first: Counter = Counter()
    heads = {c.name: [tag_key(t) for t in split_tags(c.trigger)] for c in config.concepts}
    for entry in dataset.entries:
        images[entry.concept] += 1
        head = heads[entry.concept]
        if head and [tag_key(t) for t in entry.tags[:len(head)]] == head:
            trigger_first[entry.concept] += 1
        if not entry.has_caption and entry.readable:
            uncaptioned[entry.concept] += 1
        elif entry.readable and not entry.tags:
            empty += 1
        for key in {tag_key(t) for t in entry.tags}:
            counts[key] += 1
            per_concept[key][entry.concept] += 1
    total = sum(images.values())
    deleted_keys = {tag_key(t): t for t in config.tagging.deleted_tags}
    triggers = _trigger_owners(config)
    rows = [TagRow(dataset.spellings[key], key, count, count / max(total, 1), dict(per_concept[key]),
                   key in deleted_keys, triggers.get(key, [])) for key, count in counts.items()]
    rows += [TagRow(tag, key, 0, 0.0, {}, True, triggers.get(key, []))
             for key, tag in deleted_keys.items() if key not in counts]
    names = [c.name for c in chosen_concepts(config, concept)]
    return TagTable(rows, total, sum(uncaptioned.values()), empty, {n: images[n] for n in names},
                    {n: uncaptioned[n] for n in names}, list(config.tagging.deleted_tags), dataset.outcome, concept,
                    {n: trigger_first[n] for n in names},
                    {c.name: c.trigger for c in config.concepts if c.name in names})


def _trigger_owners(config: Config) -> dict[str, list[str]]:
    owners: dict[str, list[str]] = defaultdict(list)
    for concept in config.concepts:
        for tag in split_tags(concept.trigger):
            owners[tag_key(tag)].append(concept.name)
    return owners
