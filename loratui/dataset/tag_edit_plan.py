"""Working out a tag edit (delete, keep, rename, add, trigger) without writing: each caption it changes, the
notes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from loratui.config import Config
from loratui.dataset.caption_backup import Snapshot, list_snapshots, snapshot_caption
from loratui.dataset.captions import (
    apply_trigger_and_deletions,
    format_caption,
    join_tags,
    normalise_tags,
    parse_caption_bytes,
    split_tags,
    tag_key,
)
from loratui.dataset.tag_table import CaptionEntry, DatasetCaptions, chosen_concepts, read_dataset, require_pictures
from loratui.errors import LoratuiError
from loratui.progress import CancelToken, Outcome, ProgressCallback, no_progress
from loratui.project import Project


@dataclass
class TagEdit:
    """One step of tag edits: written together, backed up once, undone as one."""

    delete: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    trigger: str | None = None
    concept: str | None = None  # whose trigger (needed when the project has several); limits ``add`` to it
    rename: dict[str, str] = field(default_factory=dict)  # old tag -> new name, in every caption
    add: list[str] = field(default_factory=list)  # put into every caption, right after the trigger

    @property
    def empty(self) -> bool:
        return not (self.delete or self.keep or self.rename or self.add or self.trigger is not None)


@dataclass
class CaptionChange:
    """What an edit does to one caption: ``after`` None removes the file (no tag would be left)."""

    entry: CaptionEntry
    after: list[str] | None

    @property
    def action(self) -> str:
        if self.after is None:
            return "remove"
        return "write" if self.entry.has_caption else "create"


@dataclass
class EditPlan:
    """An edit worked out but not written: the TUI can show it, :func:`apply_edit` writes it."""

    edit: TagEdit
    changes: list[CaptionChange]
    unchanged: int
    deleted_tags: list[str]  # tagging.deleted_tags after the edit
    triggers: dict[str, str]  # concept -> trigger after the edit (every concept)
    outcome: Outcome  # warnings and skipped files found while planning
    notes: list[str]
    reason: str
    config_changed: bool
    removed_from: dict[str, int] = field(default_factory=dict)  # deleted tag -> captions it leaves
    restored_to: dict[str, int] = field(default_factory=dict)  # kept tag key -> captions it goes back into
    renamed_in: dict[str, int] = field(default_factory=dict)  # old tag -> captions where it got its new name
    added_to: dict[str, int] = field(default_factory=dict)  # added tag -> captions it goes into
    dataset: DatasetCaptions | None = None

    @property
    def nothing_to_do(self) -> bool:
        return not self.changes and not self.config_changed

    def after(self, image: Path) -> list[str] | None:
        """The tags one picture's caption will hold once written (None: it will have no caption file)."""
        image = Path(image)
        for change in self.changes:
            if change.entry.image == image:
                return change.after
        for entry in self.dataset.entries if self.dataset else []:
            if entry.image == image:
                return list(entry.tags) if entry.has_caption else None
        return None




def _parse_tag_args(values: list[str]) -> list[str]:
    """Tags as the user typed them; ``"red hair, blue eyes"`` in one argument is two tags."""
    return normalise_tags([tag for value in values for tag in split_tags(value)])


def plan_edit(
    project: Project,
    config: Config,
    edit: TagEdit,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> EditPlan:
    """Work out every caption an edit changes, without writing anything."""
    delete, keep = _parse_tag_args(edit.delete), _parse_tag_args(edit.keep)
    both = {tag_key(t) for t in delete} & {tag_key(t) for t in keep}
    if both:
        raise LoratuiError(f"--delete and --keep both name {sorted(both)[0]!r}: choose one")
    trigger_targets = _trigger_targets(config, edit)
    dataset = read_dataset(project, config, progress=progress, cancel=cancel)
    require_pictures(dataset, project)
    # Notes, the backup's name and the deleted list use the spelling the captions (or the list) already have.
    listed = {tag_key(t): t for t in config.tagging.deleted_tags}
    delete = [dataset.spelling(t) for t in delete]
    keep = [listed.get(tag_key(t), dataset.spelling(t)) for t in keep]
    renames = _parse_renames(edit.rename, dataset)
    # A renamed tag is recorded as deleted under its old name, so a later tagging run does not bring it back.
    retired = [old for old, new in renames.items() if tag_key(old) != tag_key(new)]  # not a mere respelling
    deleted = _deleted_after(config, dataset, delete + retired, keep)
    trigger_after = {c.name: (join_tags(split_tags(edit.trigger or "")) if c.name in trigger_targets else c.trigger)
                     for c in config.concepts}
    adds = _parse_tag_args(edit.add)
    _check_new_names(renames, adds, delete, deleted, trigger_after, dataset)
    add_targets = {c.name for c in chosen_concepts(config, edit.concept)} if adds else set()
    triggers = {c.name: c.trigger for c in config.concepts}
    old_triggers: dict[str, list[str]] = {}
    for name in trigger_targets:
        old_triggers[name] = split_tags(triggers[name])
        triggers[name] = join_tags(split_tags(edit.trigger or ""))
    was_deleted = {tag_key(t) for t in config.tagging.deleted_tags}
    sources = _restore_sources(project, dataset, [t for t in keep if tag_key(t) in was_deleted])

    plan = EditPlan(edit, [], 0, deleted, triggers, dataset.outcome, [], _reason(delete, keep, edit, trigger_targets),
                    config_changed=_config_changes(config, deleted, triggers), dataset=dataset)
    delete_keys = {tag_key(t): t for t in delete}
    missing: Counter = Counter()
    for entry in dataset.entries:
        if not entry.readable:
            continue
        before = _reinsert(entry.tags, sources, entry.caption, plan.restored_to)
        before = _renamed(before, renames, plan.renamed_in)
        if entry.concept in add_targets:
            before = _added(before, adds, plan.added_to)
        # A changed trigger takes the old one out of the concept's captions, as if it had been deleted there.
        dropped = deleted + old_triggers.get(entry.concept, [])
        after = apply_trigger_and_deletions(before, triggers[entry.concept], dropped)
        if not entry.has_caption:
            # A picture without a caption gets one when a kept tag comes back to it or its trigger is being set.
            if not before:
                missing[entry.concept] += 1
            if after and (before or entry.concept in trigger_targets):
                plan.changes.append(CaptionChange(entry, after))
            continue
        gone = {tag_key(t) for t in entry.tags} - {tag_key(t) for t in after}
        for key in gone & delete_keys.keys():
            plan.removed_from[delete_keys[key]] = plan.removed_from.get(delete_keys[key], 0) + 1
        _add_change(plan, entry, after)
    _summarise(plan, config, dataset, delete, keep, sources, trigger_targets, missing)
    _summarise_names(plan, renames, adds, add_targets, config)
    return plan


def _parse_renames(rename: dict[str, str], dataset: DatasetCaptions) -> dict[str, str]:
    """old -> new, the old one in the captions' own spelling; refuses a rename of a tag no caption holds."""
    result: dict[str, str] = {}
    for old, new in rename.items():
        old_tags, new_tags = _parse_tag_args([old]), _parse_tag_args([new])
        if len(old_tags) != 1 or len(new_tags) != 1:
            raise LoratuiError(f"--rename {old!r} {new!r}: give one tag and its one new name (no commas)")
        old_tag, new_tag = dataset.spelling(old_tags[0]), new_tags[0]
        if tag_key(old_tag) == tag_key(new_tag) and old_tag == new_tag:
            raise LoratuiError(f"--rename {old!r} {new!r}: that is the same name")
        if not any(tag_key(old_tag) in {tag_key(t) for t in e.tags} for e in dataset.entries if e.readable):
            raise LoratuiError(f"--rename: {old!r} is in no caption: `loratui tags DIR` lists the tags there are")
        result[old_tag] = new_tag
    return result


def _check_new_names(renames: dict[str, str], adds: list[str], delete: list[str], deleted: list[str],
                     triggers: dict[str, str], dataset: DatasetCaptions) -> None:
    """A new name or an added tag that the same edit would take out again is a contradiction: refuse it."""
    deleted_keys = {tag_key(t) for t in deleted}
    trigger_of = {tag_key(t): name for name, trigger in triggers.items() for t in split_tags(trigger)}
    for old, new in renames.items():
        if tag_key(old) in {tag_key(t) for t in delete}:
            raise LoratuiError(f"--rename {old!r}: it is also given to --delete: choose one")
        if tag_key(old) in trigger_of:
            raise LoratuiError(f"--rename {old!r}: it is the trigger word of {trigger_of[tag_key(old)]}: change "
                               "it with --trigger")
        if tag_key(new) in deleted_keys and tag_key(new) != tag_key(old):
            raise LoratuiError(f"--rename {old!r} {new!r}: {new!r} is deleted (DEL), so it would be taken out "
                               f"again: put it back first with --keep {new!r}, or choose another name")
        if tag_key(new) in trigger_of:
            raise LoratuiError(f"--rename {old!r} {new!r}: {new!r} is the trigger word of "
                               f"{trigger_of[tag_key(new)]}: to drop {old!r}, use --delete {old!r}")
    for tag in adds:
        if tag_key(tag) in deleted_keys:
            raise LoratuiError(f"--add {tag!r}: it is deleted (DEL), so it would be taken out again: put it back "
                               f"with --keep {tag!r} instead")
        if tag_key(tag) in trigger_of:
            raise LoratuiError(f"--add {tag!r}: it is the trigger word of {trigger_of[tag_key(tag)]}, already first "
                               "in every caption")


def _renamed(tags: list[str], renames: dict[str, str], counts: dict[str, int]) -> list[str]:
    """``tags`` with each renamed tag under its new name, in its place (normalising later drops a duplicate)."""
    if not renames:
        return tags
    by_key = {tag_key(old): old for old in renames}
    result = []
    for tag in tags:
        old = by_key.get(tag_key(tag))
        if old is None:
            result.append(tag)
        else:
            result.append(renames[old])
            counts[old] = counts.get(old, 0) + 1
    return result


def _added(tags: list[str], adds: list[str], counts: dict[str, int]) -> list[str]:
    """``tags`` with the added ones in front (the trigger goes before them), each once."""
    keys = {tag_key(t) for t in tags}
    new = [tag for tag in adds if tag_key(tag) not in keys]
    for tag in new:
        counts[tag] = counts.get(tag, 0) + 1
    return new + list(tags)


def _summarise_names(plan: EditPlan, renames: dict[str, str], adds: list[str], targets: set[str],
                     config: Config) -> None:
    for old, new in renames.items():
        count = plan.renamed_in.get(old, 0)
        retired = "" if tag_key(old) == tag_key(new) else \
            f"; {old!r} is recorded as deleted, so the tagger leaves it out from now on"
        plan.notes.append(f"rename {old!r} to {new!r}: in {_plural(count, 'caption')}{retired}")
    several = len(config.concepts) > 1
    for tag in adds:
        count = plan.added_to.get(tag, 0)
        where = f" of {', '.join(sorted(targets))}" if several else ""
        if count:
            plan.notes.append(f"add {tag!r}: put into {_plural(count, 'caption')}{where}, right after the trigger; "
                              "a tagging run that overwrites captions takes it out again")
        else:
            plan.notes.append(f"add {tag!r}: every caption{where} has it already")


def _trigger_targets(config: Config, edit: TagEdit) -> list[str]:
    """The concepts whose trigger the edit sets."""
    concepts = chosen_concepts(config, edit.concept)
    if edit.trigger is None:
        return []
    if not split_tags(edit.trigger):
        raise LoratuiError("--trigger: empty: give the word that calls up your LoRA in a prompt (e.g. the "
                           "character's name)")
    if len(concepts) > 1:
        names = ", ".join(c.name for c in concepts)
        raise LoratuiError(f"--trigger: this project has {len(concepts)} concepts ({names}): say whose trigger it "
                           "is with --concept NAME (each concept needs its own word, or the LoRA cannot tell "
                           "them apart)")
    return [concepts[0].name]


def _deleted_after(config: Config, dataset: DatasetCaptions, delete: list[str], keep: list[str]) -> list[str]:
    """tagging.deleted_tags after the edit: kept tags off, new ones on in the dataset's own spelling."""
    keep_keys = {tag_key(t) for t in keep}
    deleted = [t for t in config.tagging.deleted_tags if tag_key(t) not in keep_keys]
    known = {tag_key(t) for t in deleted}
    for tag in delete:
        if tag_key(tag) not in known:
            deleted.append(dataset.spelling(tag))
            known.add(tag_key(tag))
    return deleted


@dataclass
class _Source:
    """The caption backup that last held a kept tag: caption path -> the tags that caption had then."""

    snapshot: Snapshot
    holders: dict[Path, list[str]]


def _restore_sources(project: Project, dataset: DatasetCaptions, keep: list[str]) -> dict[str, _Source]:
    """For each kept tag (by key), the newest backup in which some caption of today's dataset held it.

    Newest first, so a keep right after a delete puts the tag back exactly where it was.
    """
    if not keep:
        return {}
    snapshots = list(reversed(list_snapshots(project.state_dir)))
    live = {entry.caption for entry in dataset.entries if entry.readable}
    parsed: dict[tuple[int, str], list[str]] = {}
    sources: dict[str, _Source] = {}
    for key in dict.fromkeys(tag_key(t) for t in keep):
        for index, snapshot in enumerate(snapshots):
            holders = {}
            for rel in snapshot.files:
                path = project.dataset_dir / rel
                if path not in live:
                    continue
                if (index, rel) not in parsed:
                    parsed[index, rel] = _snapshot_tags(snapshot, rel)
                if any(tag_key(t) == key for t in parsed[index, rel]):
                    holders[path] = parsed[index, rel]
            if holders:
                sources[key] = _Source(snapshot, holders)
                break
    return sources


def _snapshot_tags(snapshot: Snapshot, rel: str) -> list[str]:
    try:
        return parse_caption_bytes(snapshot_caption(snapshot, rel)).tags
    except OSError:
        return []  # a damaged backup file simply holds nothing to restore


def _reinsert(tags: list[str], sources: dict[str, _Source], caption: Path, restored_to: dict[str, int]) -> list[str]:
    """Put kept tags back into ``tags`` after the neighbour they followed in the backup."""
    result = list(tags)
    for key, source in sources.items():
        old = source.holders.get(caption)
        if old is None or key in {tag_key(t) for t in result}:
            continue
        position = next(i for i, t in enumerate(old) if tag_key(t) == key)
        anchor = 0
        keys = [tag_key(t) for t in result]
        for previous in reversed(old[:position]):
            if tag_key(previous) in keys:
                anchor = keys.index(tag_key(previous)) + 1
                break
        result.insert(anchor, old[position])
        restored_to[key] = restored_to.get(key, 0) + 1
    return result


def _add_change(plan: EditPlan, entry: CaptionEntry, after: list[str]) -> None:
    if not after:
        # kohya stops on an empty caption file; without one it trains the picture on the folder's class token.
        plan.changes.append(CaptionChange(entry, None))
        plan.outcome.warn(entry.caption, "no tag would be left: the caption file is removed, so kohya uses the "
                                         "folder's class token (undo puts it back)")
    elif format_caption(after).encode("utf-8") != entry.data:
        plan.changes.append(CaptionChange(entry, after))
    else:
        plan.unchanged += 1


def _config_changes(config: Config, deleted: list[str], triggers: dict[str, str]) -> bool:
    return deleted != list(config.tagging.deleted_tags) or any(
        c.trigger != triggers[c.name] for c in config.concepts)


def _reason(delete: list[str], keep: list[str], edit: TagEdit, targets: list[str]) -> str:
    parts = []
    if delete:
        parts.append("delete " + ", ".join(delete))
    if keep:
        parts.append("keep " + ", ".join(keep))
    for old, new in edit.rename.items():
        parts.append(f"rename {old} to {new}")
    if edit.add:
        parts.append("add " + ", ".join(edit.add))
    for name in targets:
        parts.append(f"trigger of {name}: {join_tags(split_tags(edit.trigger or ''))}")
    return "; ".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _summarise(plan: EditPlan, config: Config, dataset: DatasetCaptions, delete: list[str], keep: list[str],
               sources: dict[str, _Source], trigger_targets: list[str], missing: Counter) -> None:
    """The notes and per-concept warnings that tell the user what the edit does."""
    old_deleted = {tag_key(t) for t in config.tagging.deleted_tags}
    for tag in delete:
        count = plan.removed_from.get(tag, 0)
        if count:
            plan.notes.append(f"delete {tag!r}: taken out of {_plural(count, 'caption')}")
        elif tag_key(tag) in old_deleted:
            plan.notes.append(f"delete {tag!r}: already deleted, and in no caption")
        else:
            plan.notes.append(f"delete {tag!r}: in no caption; recorded as deleted, so the tagger leaves it out "
                              "from now on")
        owners = [name for name, trigger in plan.triggers.items()
                  if tag_key(tag) in {tag_key(t) for t in split_tags(trigger)}]
        if owners:
            plan.notes.append(f"delete {tag!r}: it is the trigger word of {', '.join(owners)}, so it stays first in "
                              "those captions")
    for tag in keep:
        key = tag_key(tag)
        if key not in old_deleted:
            plan.notes.append(f"keep {tag!r}: it was not deleted, nothing to put back")
        elif key in sources:
            count = plan.restored_to.get(key, 0)
            plan.notes.append(f"keep {tag!r}: put back into {_plural(count, 'caption')}, where it was on "
                              f"{sources[key].snapshot.when}")
        else:
            plan.notes.append(f"keep {tag!r}: no longer deleted; no caption backup holds it, so it comes back with "
                              "the next `loratui tag` run")
    for name in trigger_targets:
        old = next(c.trigger for c in config.concepts if c.name == name)
        count = sum(1 for e in dataset.entries if e.concept == name and e.readable)
        was = f" (was {old!r})" if old and old != plan.triggers[name] else ""
        plan.notes.append(f"trigger of {name}: {plan.triggers[name]!r}{was}, first in every caption of its "
                          f"{_plural(count, 'picture')}")
    for concept in config.concepts:
        folder = _concept_folder(dataset, concept.name)
        count = missing[concept.name]
        if not count or folder is None:
            continue
        if concept.name in trigger_targets:
            plan.outcome.warn(folder, f"{_plural(count, 'picture')} had no caption: each gets one holding only the "
                                      f"trigger {plan.triggers[concept.name]!r} (without a caption kohya falls back "
                                      f"to the folder's class token {concept.name!r}); run `loratui tag` to "
                                      "describe them")
        else:
            them = "them" if count != 1 else "it"
            plan.outcome.warn(folder, f"{_plural(count, 'picture')} without a caption: kohya trains {them} on the "
                                      f"folder's class token {concept.name!r} alone; run `loratui tag` to caption "
                                      f"{them}")


def _concept_folder(dataset: DatasetCaptions, concept: str) -> Path | None:
    return next((e.image.parent for e in dataset.entries if e.concept == concept), None)
