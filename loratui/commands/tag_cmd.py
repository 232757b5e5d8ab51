"""`loratui tag DIR`: auto-tag the prepared pictures with a WD14 tagger and write their captions."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from loratui.commands.common import add_project_dir, open_project

if TYPE_CHECKING:
    from loratui.config import Concept, Config
    from loratui.dataset.tagger import TagRun
    from loratui.project import Project

# CLI flag -> tagging setting it overrides for one run (the project file keeps its own value).
OVERRIDES = {
    "model": "model",
    "general_threshold": "general_threshold",
    "character_threshold": "character_threshold",
    "mcut": "mcut",
    "merge": "merge",
    "batch_size": "batch_size",
    "write_rating": "write_rating",
    "fast_decode": "fast_decode",
}


def register(commands: argparse._SubParsersAction) -> None:
    tag = commands.add_parser(
        "tag",
        help="auto-tag the prepared pictures (WD14 tagger) and write their captions",
        description="Tag every prepared picture in DIR's dataset/ with a WD14 tagger and write its caption "
        "(dataset/N_concept/picture.txt): characters first, then general tags by confidence, the concept's "
        "trigger word in front, deleted tags left out. Flags override the project's [tagging] settings for this "
        "run only; --trigger is saved. Captions that get rewritten are backed up first: "
        "`loratui tags DIR --undo` puts them back.",
    )
    add_project_dir(tag, optional=True)
    tag.add_argument("--model", metavar="M",
                     help="hub id (e.g. SmilingWolf/wd-swinv2-tagger-v3) or a folder with model.onnx and "
                     "selected_tags.csv")
    tag.add_argument("--general-threshold", type=float, metavar="T",
                     help="score a general tag needs (default 0.35; lower = more tags)")
    tag.add_argument("--character-threshold", type=float, metavar="T",
                     help="score a character name needs (default 0.85)")
    tag.add_argument("--mcut", action=argparse.BooleanOptionalAction, default=None,
                     help="let each picture pick its own cut-off (MCut) instead of the thresholds")
    tag.add_argument("--merge", choices=("overwrite", "append", "skip"),
                     help="captions a picture already has: overwrite, append the new tags, or skip the picture")
    tag.add_argument("--batch-size", type=int, metavar="N", help="pictures per model run (default 8)")
    tag.add_argument("--write-rating", action=argparse.BooleanOptionalAction, default=None,
                     help="also write the rating tag (general, sensitive, questionable, explicit)")
    tag.add_argument("--fast-decode", action=argparse.BooleanOptionalAction, default=None,
                     help="decode large JPEGs faster (tagging.fast_decode): the tagger sees slightly different "
                     "pixels, which can move a tag across the threshold")
    tag.add_argument("--trigger", metavar="WORD",
                     help="set the concept's trigger word (saved in loratui.toml) and put it first")
    tag.add_argument("--concept", metavar="NAME",
                     help="tag only this concept (needed with --trigger when the project has several)")
    tag.add_argument("--list-models", action="store_true", help="list the known WD14 taggers and exit")
    tag.add_argument("--detach", action="store_true",
                     help="run in the background (goes on if you log out); watch it with `loratui status DIR` or "
                     "`loratui logs DIR --follow`")
    tag.set_defaults(run=run_tag)


def run_tag(args: argparse.Namespace) -> int:
    from loratui.errors import LoratuiError

    if args.list_models:
        print_models()
        return 0
    if args.dir is None:
        raise LoratuiError("give the project folder: loratui tag DIR (or `loratui tag --list-models`)")

    from loratui.commands.progress_view import print_outcome
    from loratui.jobs.command import command_line, options_from_args
    from loratui.jobs.runner import job

    project = open_project(args)
    config = project.load()
    _apply_overrides(config, args)
    concepts = _chosen_concepts(config, args)
    if args.trigger is not None:
        _check_trigger(project, concepts[0].name, args.trigger)  # a bad trigger word is refused before the run
    argv = command_line(args.dir, options_from_args("tag", args))
    if args.detach:
        from loratui.commands.jobs_cmd import detach

        return detach(args.dir, "tag", argv)
    with job(project, "tag", argv):  # the trigger is saved inside the same job as the captions it goes with
        run = _tag(project, config, concepts, args)
    print_outcome(run.outcome, "captions written")
    if not run.tagged and not run.outcome.skipped:
        print(f"Nothing to tag: every picture has a caption and merge is {config.tagging.merge!r}; "
              "use --merge overwrite or --merge append to tag them again")
        return 0
    batch_note = f"batch {run.batch_size}" + (" (this model takes one picture per run)"
                                              if run.batch_size < config.tagging.batch_size else "")
    print(f"Tagger: {run.model} on the {run.device}, {batch_note}: {run.tagged} pictures in {run.seconds:.1f} s "
          f"({run.images_per_s:.1f} pictures/s)")
    if run.ratings:
        shown = ", ".join(f"{name} {count}" for name, count in run.ratings.items())
        print(f"Ratings: {shown}{'' if config.tagging.write_rating else ' (not written; --write-rating adds it)'}")
    if run.snapshot is not None:
        print(f"Previous captions backed up: `loratui tags {args.dir} --undo` puts them back")
    print(f"Next: loratui tags {args.dir} --list")
    return 0


def _tag(project: Project, config: Config, concepts: list[Concept], args: argparse.Namespace) -> TagRun:
    from loratui.commands.progress_view import ProgressBar
    from loratui.dataset.tagger import tag_dataset

    if args.trigger is not None:
        _change_trigger(project, config, concepts[0], args.trigger)
    bar = ProgressBar()
    try:
        run = tag_dataset(project, config, concepts=concepts, progress=bar)
    finally:
        bar.close()
        # Saved after the run's caption snapshot (which holds loratui.toml as it was), so `tags --undo` puts the
        # old trigger back along with the old captions; saved even after a cancel, to match what was written.
        # Only the trigger changes: an edit made to loratui.toml during the run stays.
        if args.trigger is not None:
            name, trigger = concepts[0].name, args.trigger
            project.update(lambda stored: _set_trigger(stored, name, trigger))
    return run


def _set_trigger(config: Config, concept_name: str, trigger: str) -> None:
    for concept in config.concepts:
        if concept.name == concept_name:
            concept.trigger = trigger


def _apply_overrides(config: Config, args: argparse.Namespace) -> None:
    """Put the flags into the run's settings and check them with the same rules as loratui.toml."""
    from loratui.config_io import dump_config, parse_config
    from loratui.errors import LoratuiError

    given = {flag: getattr(args, flag) for flag in OVERRIDES if getattr(args, flag) is not None}
    for flag, value in given.items():
        setattr(config.tagging, OVERRIDES[flag], value)
    _, problems = parse_config(dump_config(config), "loratui.toml")
    for problem in problems:
        for flag in given:
            if problem.key == f"tagging.{OVERRIDES[flag]}":
                raise LoratuiError(f"--{flag.replace('_', '-')}: {problem.message}")


def _chosen_concepts(config: Config, args: argparse.Namespace) -> list[Concept]:
    from loratui.errors import LoratuiError

    names = ", ".join(c.name for c in config.concepts)
    if args.concept is not None:
        chosen = [c for c in config.concepts if c.name == args.concept]
        if not chosen:
            raise LoratuiError(f"--concept {args.concept}: no such concept in this project (it has: {names})")
        return chosen
    if args.trigger is not None and len(config.concepts) > 1:
        raise LoratuiError(f"--trigger: this project has {len(config.concepts)} concepts ({names}): say which one "
                           "with --concept NAME")
    return list(config.concepts)


def _change_trigger(project: Project, config: Config, concept: Concept, trigger: str) -> None:
    """Use the new trigger in this run (dropping the old one from captions, which append would otherwise keep)."""
    from loratui.dataset.captions import split_tags, tag_key

    previous = concept.trigger
    concept.trigger = trigger
    kept = {tag_key(t) for t in split_tags(trigger)}
    stale = [t for t in split_tags(previous) if tag_key(t) not in kept]
    config.tagging.deleted_tags = [*config.tagging.deleted_tags, *stale]
    was = f"was {previous!r}; " if previous and previous != trigger else ""
    print(f"Trigger of {concept.name}: {trigger!r} ({was}saved in {project.config_path.name})")


def _check_trigger(project: Project, concept_name: str, trigger: str) -> None:
    """Refuse a trigger word loratui.toml would not accept, with the rule it breaks."""
    from loratui.config_io import dump_config, parse_config
    from loratui.errors import LoratuiError

    stored = project.load()
    _set_trigger(stored, concept_name, trigger)
    _, problems = parse_config(dump_config(stored), "loratui.toml")
    if problems:
        raise LoratuiError(f"--trigger {trigger!r}: {problems[0].message}")


def print_models(stream: TextIO | None = None) -> None:
    from loratui.dataset.tagger_models import DEFAULT_MODEL, KNOWN_MODELS, cached_locally

    stream = stream or sys.stdout
    print("Known WD14 taggers (pass one to --model or set tagging.model; a folder with model.onnx and "
          "selected_tags.csv works too):", file=stream)
    print(f"  {'repo':<42} {'family':<6} {'tags':>6} {'model.onnx':>10} {'here':<4}  notes", file=stream)
    for model in KNOWN_MODELS:
        mark = "*" if model.repo == DEFAULT_MODEL else " "
        here = "yes" if cached_locally(model.repo) else "-"
        print(f"{mark} {model.repo:<42} {model.family:<6} {model.tags:>6} {model.size or '?':>10} {here:<4}  "
              f"{model.notes}", file=stream)
    print("* default. here: already downloaded. P=R: the model card's threshold where precision equals recall "
          "(v3 values are not comparable with the usual 0.35).", file=stream)
