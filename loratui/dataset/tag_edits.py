"""Writing tag edits (delete, keep, rename, add, trigger) to the captions and loratui.toml, one backup per step,
and undo."""

from __future__ import annotations

from dataclasses import dataclass

from loratui.config import Config
from loratui.dataset.caption_backup import Restored, Snapshot, list_snapshots, restore_last, take_snapshot
from loratui.dataset.captions import format_caption
from loratui.dataset.tag_edit_plan import EditPlan, TagEdit, plan_edit
from loratui.dataset.tag_table import CaptionEntry
from loratui.errors import LoratuiError
from loratui.fsutil import atomic_write_text
from loratui.jobs.kinds import DATASET
from loratui.jobs.locks import resource_lock
from loratui.progress import CancelToken, Outcome, Progress, ProgressCallback, no_progress
from loratui.project import Project


@dataclass
class EditResult:
    """What an edit wrote. ``outcome.done`` counts captions changed (created and removed included)."""

    plan: EditPlan
    outcome: Outcome
    snapshot: Snapshot | None
    created: int = 0
    removed: int = 0

    @property
    def notes(self) -> list[str]:
        return self.plan.notes


def apply_edit(
    project: Project,
    config: Config,
    plan: EditPlan,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> EditResult:
    """Write a planned edit: one backup of every caption and loratui.toml first, then the captions, then the
    settings (last, so a cancelled run repeated with the same command finishes the job). ``config`` is updated
    in place to what was saved."""
    outcome = plan.outcome
    result = EditResult(plan, outcome, None)
    outcome.unchanged = plan.unchanged
    if plan.nothing_to_do:
        return result
    folders = [project.concept_dir(c) for c in config.concepts if project.concept_dir(c).is_dir()]
    result.snapshot = take_snapshot(project.dataset_dir, folders, project.state_dir, plan.reason,
                                    config_file=project.config_path)
    for index, change in enumerate(plan.changes):
        if cancel:
            cancel.check()
        if _changed_since_planned(change.entry):
            outcome.skip(change.entry.caption, "changed on disk since the edit was worked out: left as it is; run "
                                               "the edit again")
            continue
        if change.after is None:
            try:
                change.entry.caption.unlink()
            except OSError as exc:
                outcome.skip(change.entry.caption, f"cannot be removed ({exc.strerror or exc}): left as it is")
                continue
            result.removed += 1
        else:
            result.created += change.action == "create"
            atomic_write_text(change.entry.caption, format_caption(change.after))
        outcome.done += 1
        progress(Progress("Writing captions", index + 1, len(plan.changes), change.entry.caption.name))
    if plan.config_changed:
        def change(stored: Config) -> None:
            stored.tagging.deleted_tags = list(plan.deleted_tags)
            for concept in stored.concepts:
                concept.trigger = plan.triggers.get(concept.name, concept.trigger)

        change(config)
        project.update(change)  # only these settings: an edit made to loratui.toml meanwhile stays
    return result


def _changed_since_planned(entry: CaptionEntry) -> bool:
    try:
        now = entry.caption.read_bytes()
    except FileNotFoundError:
        now = None
    except OSError:
        return True
    return now != entry.data


def edit_tags(
    project: Project,
    config: Config,
    edit: TagEdit,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> EditResult:
    """Plan and write one step of tag edits (see :class:`TagEdit`); refused while a dataset job (prepare, tag)
    runs, with one line naming it."""
    if edit.empty:
        raise LoratuiError("nothing to do: give tags to --delete, --keep or --add, a --rename, or a --trigger word")
    with resource_lock(project, DATASET, "tags"):
        plan = plan_edit(project, config, edit, progress=progress, cancel=cancel)
        return apply_edit(project, config, plan, progress=progress, cancel=cancel)


def delete_tags(project: Project, config: Config, tags: list[str], *, progress: ProgressCallback = no_progress,
                cancel: CancelToken | None = None) -> EditResult:
    """Take ``tags`` out of every caption and record them in tagging.deleted_tags."""
    return edit_tags(project, config, TagEdit(delete=list(tags)), progress=progress, cancel=cancel)


def keep_tags(project: Project, config: Config, tags: list[str], *, progress: ProgressCallback = no_progress,
              cancel: CancelToken | None = None) -> EditResult:
    """Take ``tags`` off tagging.deleted_tags and put them back where the newest backup had them."""
    return edit_tags(project, config, TagEdit(keep=list(tags)), progress=progress, cancel=cancel)


def set_trigger(project: Project, config: Config, trigger: str, concept: str | None = None, *,
                progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> EditResult:
    """Make ``trigger`` the concept's trigger word: first in each of its captions, the old one taken out."""
    return edit_tags(project, config, TagEdit(trigger=trigger, concept=concept), progress=progress, cancel=cancel)


# --- undo ----------------------------------------------------------------------------------------------------


def history(project: Project) -> list[Snapshot]:
    """The steps that can be undone, newest first."""
    return list(reversed(list_snapshots(project.state_dir)))


def undo(project: Project) -> Restored:
    """Put back the captions and loratui.toml as they were before the last tag edit or tagging run."""
    with resource_lock(project, DATASET, "tags"):
        return restore_last(project.dataset_dir, project.state_dir, config_file=project.config_path)
