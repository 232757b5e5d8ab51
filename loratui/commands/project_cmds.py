"""`loratui new` and `loratui check`: create a project folder and list everything wrong with one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loratui.commands.common import add_project_dir


def register(commands: argparse._SubParsersAction) -> None:
    new = commands.add_parser(
        "new",
        help="create a project folder with its loratui.toml",
        description="Create a project: DIR gets loratui.toml, dataset/, output/, preview/, logs/. "
        "Your pictures stay where they are; loratui never changes them.",
    )
    add_project_dir(new, help="the project folder (created if missing)")
    new.add_argument("--source", type=Path, required=True, metavar="SRC", help="the folder of your pictures")
    new.add_argument("--concept", required=True, metavar="NAME",
                     help="what you train, e.g. RishiNaruto (becomes dataset/5_RishiNaruto)")
    new.add_argument("--repeats", type=int, metavar="N", help="times each picture is shown per epoch (default 5)")
    new.add_argument("--trigger", metavar="WORD", help="the word that calls up the LoRA (default: the concept name)")
    new.add_argument("--preset", metavar="P", help="settings to start from (`loratui presets list`)")
    new.add_argument("--base-model", metavar="PATH",
                     help="diffusers folder, A1111 .safetensors file or hub id of the model to train on")
    new.set_defaults(run=run_new)

    check = commands.add_parser(
        "check",
        help="validate a project: every problem on its own line",
        description="Validate DIR's loratui.toml, its sources, its base model and its prepared dataset (concept "
        "folders, pictures, captions, trigger words). Every problem is printed on its own line as FILE:LINE: KEY: "
        "MESSAGE; the exit status is 2 when there is any. Warnings (on stderr, starting with `warning:`) are worth "
        "a look but do not change the exit status.",
    )
    add_project_dir(check)
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.add_argument("--train", action="store_true",
                       help="the pre-flight checklist before a run instead (what the wizard's Train step shows): "
                       "pictures, captions with the trigger first, base model, total steps, output folder, free "
                       "disk, GPU; one line each, v / ! / x with the fix; exit status 2 if a run could not start")
    check.set_defaults(run=run_check)


def run_new(args: argparse.Namespace) -> int:
    from loratui.project import create_project, optimizer_problem
    from loratui.recent import remember

    project, config = create_project(args.dir, args.source, args.concept, repeats=args.repeats,
                                     trigger=args.trigger, preset=args.preset, base_model=args.base_model)
    remember(project.root)
    concept = config.concepts[0]
    print(f"Created {project.config_path}")
    print(f"  concept   {concept.name} x{concept.repeats} from {concept.source} (trigger: {concept.trigger})")
    print(f"  preset    {config.project.preset or 'none (built-in defaults)'}")
    print(f"  model     {config.project.base_model or 'not set yet: edit project.base_model'}")
    # A preset's optimizer may need a package this machine lacks (low-vram's AdamW8bit): say so now, not at train.
    if (missing := optimizer_problem(config.training, str(project.config_path))) is not None:
        sys.stdout.flush()
        print(f"warning: {missing}", file=sys.stderr, flush=True)
    print(f"Next: loratui check {args.dir}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from loratui.project import base_model_detection, check_project

    if args.train:
        return run_train_checklist(args)
    found = check_project(args.dir, warnings=True)
    problems = [p for p in found if not p.is_warning]
    warnings = [p for p in found if p.is_warning]
    model = base_model_detection(args.dir)
    if args.json:
        print(json.dumps({"ok": not problems, "problems": [
            {"file": p.file, "line": p.line, "key": p.key, "message": p.message} for p in problems],
            "warnings": [{"file": p.file, "line": p.line, "key": p.key, "message": p.message} for p in warnings],
            "base_model": model and {"family": model.family, "kind": model.kind, "location": model.location,
                                     "note": model.note}}, indent=2))
        return 2 if problems else 0
    if model:
        print(f"base model: {model.describe()}")
    for problem in problems:
        print(problem)
    # Warnings go to stderr, like a compiler's: stdout stays the list of problems that scripts parse, and a
    # dataset that is merely not prepared yet still reads "no problems found".
    sys.stdout.flush()
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if warnings:
        print(f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''} in {args.dir}", file=sys.stderr,
              flush=True)
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {args.dir}")
    else:
        print(f"{args.dir}: no problems found")
    return 2 if problems else 0


CHECK_MARKS = {"ok": "✓", "warn": "!", "fail": "✗"}


def run_train_checklist(args: argparse.Namespace) -> int:
    """`loratui check DIR --train`: the checklist, one line per check; 2 when a run could not start."""
    from loratui.commands.common import open_project
    from loratui.training.checklist import train_checklist

    project = open_project(args)
    checklist = train_checklist(project, where=args.dir)
    if args.json:
        print(json.dumps(checklist.to_dict(), indent=2))
        return 0 if checklist.ready else 2
    for line in checklist.lines:
        fix = f" - {line.fix}" if line.fix and line.state != "ok" else ""
        print(f"{CHECK_MARKS[line.state]} {line.name}: {line.found}{fix}")
    print(f"Ready: loratui train {args.dir} --detach" if checklist.ready else
          f"Not ready: fix the lines marked {CHECK_MARKS['fail']}")
    return 0 if checklist.ready else 2
