"""`loratui tags DIR`: the dataset-wide tag list, delete/keep across every caption, trigger words, undo."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from loratui.commands.common import add_project_dir, open_project

if TYPE_CHECKING:
    from loratui.config import Config
    from loratui.dataset.tag_edits import EditResult
    from loratui.dataset.tag_table import TagRow, TagTable
    from loratui.project import Project

DESCRIPTION = """\
Edit the captions of every prepared picture at once (the kohya folders under dataset/).

Without an action it lists every tag with the number and share of pictures that carry it. DEL marks
a deleted tag (tagging.deleted_tags in loratui.toml: taken out of every caption and left out by
every later `loratui tag` run); trigger marks a concept's trigger word.

Take out of the captions what your trigger word should carry (hair and eye colour, outfit): the
trigger absorbs it and always draws it. Keep what should stay changeable in prompts.

Actions given together (--delete, --keep, --rename, --add, --trigger) are written as one step: every caption and
loratui.toml are backed up first, and one --undo puts them all back. --undo again goes one step
further back. Tags match whatever the case and "_" or space: red_hair = Red Hair.

Every write also applies the caption rules to every caption: deleted tags out, each concept's
trigger first (and nowhere else in it), one line of UTF-8. A caption left with no tag at all is
removed (kohya stops on an empty one and falls back to the folder's name without one).
"""

EPILOG = """\
examples:
  loratui tags ~/lora/akari                                  list tags, most common first
  loratui tags ~/lora/akari --min-share 5 --sort name        tags on at least 5% of pictures
  loratui tags ~/lora/akari --delete red_hair "blue eyes" --trigger akari
  loratui tags ~/lora/akari --keep "blue eyes"               put a deleted tag back
  loratui tags ~/lora/akari --rename 1girl woman             the same tag under another name
  loratui tags ~/lora/akari --add "anime style"              into every caption, after the trigger
  loratui tags ~/lora/akari --undo                           undo the last step
"""


def register(commands: argparse._SubParsersAction) -> None:
    tags = commands.add_parser(
        "tags",
        help="list, delete or keep tags across every caption; set the trigger word; undo",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_project_dir(tags)
    tags.add_argument("--list", action="store_true",
                      help="show the tag list (the default without an action; after one, shows the result)")
    tags.add_argument("--sort", choices=("count", "name"), default="count", help="list order (default: count)")
    tags.add_argument("--min-share", type=float, default=0.0, metavar="PERCENT",
                      help="list only tags on at least this share of the pictures, 0-100 (deleted tags always show)")
    tags.add_argument("--json", action="store_true", help="print the list or the result as JSON")
    tags.add_argument("--delete", nargs="+", action="extend", default=[], metavar="TAG",
                      help="take these tags out of every caption and record them as deleted, even when no caption "
                           "holds them yet (the tagger then leaves them out)")
    tags.add_argument("--keep", nargs="+", action="extend", default=[], metavar="TAG",
                      help="undelete these tags and put them back into the captions that had them before")
    tags.add_argument("--rename", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
                      help="give a tag a new name in every caption (repeatable); the old name is recorded as "
                           "deleted, so the tagger leaves it out from now on")
    tags.add_argument("--add", nargs="+", action="extend", default=[], metavar="TAG",
                      help="put these tags into every caption (of --concept only, if given), right after the "
                           "trigger; pictures without a caption get one")
    tags.add_argument("--trigger", metavar="WORD",
                      help="the concept's trigger word: first in each of its captions, nowhere else in them; the "
                           "old trigger is taken out. Pictures without a caption get one holding the trigger. "
                           "Several comma-separated tags are allowed (\"rishi, naruto\")")
    tags.add_argument("--concept", metavar="NAME",
                      help="whose trigger --trigger sets; required when the project has several concepts, since each "
                           "needs its own word. With the list: count only this concept's pictures")
    tags.add_argument("--undo", action="store_true",
                      help="put back the captions and loratui.toml as they were before the last step (tag edit or "
                           "tagging run); repeat to go further back")
    tags.set_defaults(run=run_tags)


def run_tags(args: argparse.Namespace) -> int:
    from loratui.errors import LoratuiError

    if not 0 <= args.min_share <= 100:
        raise LoratuiError(f"--min-share: {args.min_share:g} is not a share of the pictures: give 0 to 100")
    acting = bool(args.delete or args.keep or args.rename or args.add or args.trigger is not None)
    if args.undo and acting:
        raise LoratuiError("--undo cannot be combined with --delete, --keep, --rename, --add or --trigger: run it "
                           "on its own")
    if args.concept and acting and args.trigger is None and not args.add:
        raise LoratuiError("--concept goes with --trigger, --add (or the list): deleted tags are one list for "
                           "every concept, so --delete, --keep and --rename always apply to all")
    renames: dict[str, str] = {}
    for old, new in args.rename:
        if old in renames:
            raise LoratuiError(f"--rename {old!r}: given twice ({renames[old]!r} and {new!r}): choose one name")
        renames[old] = new
    args.rename = renames
    project = open_project(args)
    config = project.load()
    if args.undo:
        return _undo(args, project)
    report = {}
    if acting:
        report["edit"] = _edit(args, project, config)
    if args.list or not acting:
        report["list"] = _list(args, project, config)
    if args.json:
        # One JSON document per call: the list alone, the edit alone, or both under their names.
        print(json.dumps(report if len(report) > 1 else next(iter(report.values())), ensure_ascii=False, indent=1))
    return 0


# Reading a few hundred captions takes a blink: a bar (or, off a terminal, ten log lines) only for big datasets.
PROGRESS_FROM = 500


class _BigWorkBar:
    """A progress bar that shows only once the work has :data:`PROGRESS_FROM` items or more."""

    def __init__(self):
        from loratui.commands.progress_view import ProgressBar

        self.bar = ProgressBar()

    def __call__(self, progress) -> None:
        if progress.total >= PROGRESS_FROM:
            self.bar(progress)

    def close(self) -> None:
        self.bar.close()


def _progress() -> _BigWorkBar:
    return _BigWorkBar()


# --- list ----------------------------------------------------------------------------------------------------


def _list(args: argparse.Namespace, project: Project, config: Config) -> dict | None:
    """Print the tag table, or with --json return it as a dict."""
    from loratui.dataset.tag_table import no_pictures_error, tag_table

    bar = _progress()
    try:
        table = tag_table(project, config, concept=args.concept, progress=bar)
    finally:
        bar.close()
    if not table.images:
        raise no_pictures_error(project)
    rows = [r for r in table.sorted(args.sort) if r.deleted or r.share * 100 >= args.min_share]
    if args.json:
        return _table_json(table, rows)
    concepts = list(table.concept_images) if len(table.concept_images) > 1 else []
    print(_heading(project, table, several=len(config.concepts) > 1))
    _print_rows(table, rows, concepts)
    print(_footer(project, table, rows, several=len(config.concepts) > 1))
    _print_notes(table.outcome, len(table.outcome.warnings) + len(table.outcome.skipped))
    return None


def _heading(project: Project, table: TagTable, several: bool) -> str:
    where = f"concept {table.concept}" if table.concept else _count(len(table.concept_images), "concept")
    missing = []
    if table.uncaptioned:
        missing.append(f"{table.uncaptioned} without a caption")
    if table.empty:
        missing.append(f"{table.empty} with an empty caption")
    state = ", ".join(missing) if missing else "all captioned"
    lines = [f"{project.root}: {_count(table.images, 'picture')} in {where}, {state}"]
    for name, trigger in table.triggers.items():
        pictures = table.concept_images[name]
        first = table.trigger_first.get(name, 0)
        if not trigger:
            concept = f" --concept {_shell_word(name)}" if several else ""
            lines.append(f"Trigger of {name}: none yet: set it with `loratui tags {project.root} --trigger WORD"
                         f"{concept}`")
        elif first < pictures:
            command = f"loratui tags {project.root} --trigger {_shell_word(trigger)}"
            command += f" --concept {_shell_word(name)}" if several else ""
            lines.append(f"Trigger of {name}: {trigger!r}, first in {first} of {_count(pictures, 'picture')}: "
                         f"`{command}` puts it first in all")
        else:
            lines.append(f"Trigger of {name}: {trigger!r}, first in all {_count(pictures, 'picture')}")
    return "\n".join(lines)


def _shell_word(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _print_rows(table: TagTable, rows: list[TagRow], concepts: list[str]) -> None:
    if not rows:
        print("  (no tags yet: run `loratui tag DIR` to caption the pictures)")
        return
    width = min(max(len("tag"), *(_width(r.tag) for r in rows)), 40)
    header = f"  {'tag'.ljust(width)}  images  share" + "".join(f"  {c[:12]:>12}" for c in concepts)
    print(header)
    for row in rows:
        line = f"  {_fit(row.tag, width)}  {row.count:6d}  {_percent(row.share):>5}"
        line += "".join(f"  {row.concepts.get(c, 0):12d}" for c in concepts)
        marks = []
        if row.deleted:
            marks.append("DEL")
        if row.trigger_of:
            # Plain "trigger" only where the table shows one concept and the tag is that concept's own trigger.
            own = len(table.concept_images) == 1 and row.trigger_of == list(table.concept_images)
            marks.append("trigger" if own else f"trigger of {', '.join(row.trigger_of)}")
        print(line + ("  " + ", ".join(marks) if marks else ""))


def _footer(project: Project, table: TagTable, rows: list[TagRow], several: bool) -> str:
    hidden = len(table.rows) - len(rows)
    deleted = sum(1 for r in table.rows if r.deleted)
    lines = [f"{_count(len(table.rows), 'tag')}, {deleted} deleted" + (f" ({hidden} under --min-share not shown)"
                                                                      if hidden else "")]
    stale = [r.tag for r in table.rows if r.deleted and r.count]
    if stale:
        lines.append(f"Deleted but still in captions: {', '.join(stale)}. Take them out with "
                     f"`loratui tags {project.root} --delete TAG ...`")
    elif table.rows:
        lines.append(_next_step(project, table, several))
    return "\n".join(lines)


def _next_step(project: Project, table: TagTable, several: bool) -> str:
    """The workflow's next step from the captions' state: delete the tags the trigger should carry, then set
    the trigger first everywhere, then count the steps and train."""
    root = project.root
    if not table.deleted:
        return f"Next: take out what the trigger word should carry: `loratui tags {root} --delete TAG ...`"
    for name, trigger in table.triggers.items():
        concept = f" --concept {_shell_word(name)}" if several else ""
        if not trigger:
            return f"Next: set the trigger word of {name}: `loratui tags {root} --trigger WORD{concept}`"
        if table.trigger_first.get(name, 0) < table.concept_images.get(name, 0):
            return (f"Next: put the trigger word first in every caption of {name}: "
                    f"`loratui tags {root} --trigger {_shell_word(trigger)}{concept}`")
    return (f"Next: the captions are ready: count the steps with `loratui estimate {root}`, then "
            f"`loratui train {root}` (to delete more: `loratui tags {root} --delete TAG ...`)")


def _table_json(table: TagTable, rows: list[TagRow]) -> dict:
    return {
        "pictures": table.images,
        "uncaptioned": table.uncaptioned,
        "empty_captions": table.empty,
        "concept": table.concept,
        "concepts": {name: {"pictures": count, "uncaptioned": table.concept_uncaptioned[name]}
                     for name, count in table.concept_images.items()},
        "deleted": table.deleted,
        "tags": [{"tag": r.tag, "images": r.count, "share": round(r.share, 4), "concepts": r.concepts,
                  "deleted": r.deleted, "trigger_of": r.trigger_of} for r in rows],
        "warnings": [str(n) for n in table.outcome.warnings],
        "skipped": [str(n) for n in table.outcome.skipped],
    }


# --- edit ----------------------------------------------------------------------------------------------------


def _edit(args: argparse.Namespace, project: Project, config: Config) -> dict | None:
    """Write one step of edits and print what it did, or with --json return that as a dict."""
    from loratui.commands.progress_view import print_outcome
    from loratui.dataset.tag_edit_plan import TagEdit
    from loratui.dataset.tag_edits import edit_tags

    edit = TagEdit(delete=args.delete, keep=args.keep, trigger=args.trigger, concept=args.concept,
                   rename=args.rename, add=args.add)
    bar = _progress()
    try:
        result = edit_tags(project, config, edit, progress=bar)
    finally:
        bar.close()
    if args.json:
        return _edit_json(result)
    for note in result.notes:
        print(note)
    if result.plan.nothing_to_do:
        print("Nothing to change: every caption and loratui.toml already match.")
        _print_notes(result.outcome, len(result.outcome.warnings) + len(result.outcome.skipped))
        return None
    print_outcome(result.outcome, "captions changed")
    extra = []
    if result.created:
        extra.append(f"{result.created} created")
    if result.removed:
        extra.append(f"{result.removed} removed (no tag left)")
    if result.plan.config_changed:
        extra.append("loratui.toml saved")
    if extra:
        print("  " + ", ".join(extra))
    print(f"Backup taken: `loratui tags {project.root} --undo` puts everything back.")
    return None


def _edit_json(result: EditResult) -> dict:
    return {
        "changed": result.outcome.done,
        "unchanged": result.outcome.unchanged,
        "created": result.created,
        "removed": result.removed,
        "config_saved": result.plan.config_changed and result.snapshot is not None,
        "deleted_tags": result.plan.deleted_tags,
        "triggers": result.plan.triggers,
        "notes": result.notes,
        "warnings": [str(n) for n in result.outcome.warnings],
        "skipped": [str(n) for n in result.outcome.skipped],
        "undo_available": result.snapshot is not None,
    }


# --- undo ----------------------------------------------------------------------------------------------------


def _undo(args: argparse.Namespace, project: Project) -> int:
    from loratui.dataset.tag_edits import undo

    restored = undo(project)
    if args.json:
        print(json.dumps({"undone": restored.snapshot.reason, "taken": restored.snapshot.when,
                          "restored": restored.written, "removed": restored.removed,
                          "config_restored": restored.config_restored, "missing_folders": restored.missing_folders,
                          "remaining": restored.remaining}, ensure_ascii=False, indent=1))
        return 0
    print(f"Undone: {restored.snapshot.reason or 'caption rewrite'} (backup of {restored.snapshot.when})")
    parts = [f"{_count(len(restored.written), 'caption')} restored"]
    if restored.removed:
        parts.append(f"{len(restored.removed)} made since removed")
    parts.append("loratui.toml restored" if restored.config_restored else "loratui.toml unchanged")
    print("  " + ", ".join(parts))
    for folder in restored.missing_folders:
        print(f"  warning dataset/{folder}: folder no longer exists; its captions were not restored")
    if restored.remaining:
        print(f"{_count(restored.remaining, 'older step')} can still be undone: run --undo again.")
    else:
        print("That was the oldest step: there is nothing more to undo.")
    return 0


# --- shared --------------------------------------------------------------------------------------------------


def _print_notes(outcome, count: int) -> None:
    if not count:
        return
    print(f"{_count(count, 'file')} to look at:")
    for note in outcome.skipped:
        print(f"  skipped {note}")
    for note in outcome.warnings:
        print(f"  warning {note}")


def _width(text: str) -> int:
    """Terminal columns of ``text``: CJK tags take two per character."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fit(text: str, width: int) -> str:
    """``text`` padded, or cut with an ellipsis, to ``width`` terminal columns."""
    if _width(text) > width:
        while _width(text) > width - 1:
            text = text[:-1]
        text += "…"
    return text + " " * (width - _width(text))


def _count(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _percent(share: float) -> str:
    if 0 < share < 0.005:
        return "<1%"
    return f"{share * 100:.0f}%"
