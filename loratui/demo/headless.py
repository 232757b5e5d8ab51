"""`loratui demo --headless`: the whole workflow on the demo project with no UI, stage by stage.

Each stage runs the very `loratui` subcommand a user would type (in this process, through the command runner
the CLI hands in), after printing it, so the run doubles as a walk-through of the CLI: build → check → prepare →
tag → delete the tags the trigger word should carry → set the trigger → estimate → train → preview grid → install.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from loratui.demo.choices import FEATURE_TAGS, LORA_FOLDER
from loratui.errors import LoratuiError
from loratui.invocation import program


@dataclass
class Stage:
    title: str
    argv: list[str]
    seconds: float = 0.0
    code: int | None = None


@dataclass
class HeadlessRun:
    """What the headless demo did: each stage, its time and exit status, and the files it made."""

    root: Path
    stages: list[Stage] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.stages) and all(stage.code == 0 for stage in self.stages)


def run_headless(root: Path, *, run_command: Callable[[list[str]], int], out: TextIO = sys.stdout) -> HeadlessRun:
    """Build the demo in ``root`` and run every stage through ``run_command`` (the CLI's own dispatcher: argv in,
    exit status out); stops at the first stage that fails (its own one-line message is already printed) and
    returns what ran."""
    from loratui.demo.build import TRIGGER, build_demo_project

    root = Path(root)
    run = HeadlessRun(root)
    started = time.monotonic()

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    build = Stage("Build the demo project", ["demo", str(root)])
    run.stages.append(build)
    say(f"[1] {build.title}: made-up pictures, a tiny SD1.5 model (A1111 single file), a tiny tagger")
    began = time.monotonic()
    try:
        build_demo_project(root, progress=lambda step: say(f"    {step}"))
    except LoratuiError:
        build.code = 2
        raise
    build.seconds, build.code = time.monotonic() - began, 0

    where = str(root)
    lora_dir = root / LORA_FOLDER
    # Each stage's command is made when its turn comes: the tags to delete are the ones the tagger found.
    plan: list[tuple[str, Callable[[], list[str]]]] = [
        ("Check the settings, the pictures and the base model", lambda: ["check", where]),
        ("Prepare: crop and resize into dataset/", lambda: ["prepare", where]),
        ("Tag every picture with the WD14-style tagger", lambda: ["tag", where]),
        ("Delete the tags the trigger word should carry", lambda: ["tags", where, "--delete", *_feature_tags(root)]),
        ("Set the trigger word (first in every caption)", lambda: ["tags", where, "--trigger", TRIGGER]),
        ("Estimate the steps", lambda: ["estimate", where]),
        ("Train: two checkpoints, kohya format", lambda: ["train", where]),
        ("Preview: every checkpoint at every weight, scored", lambda: ["grid", where, "--text"]),
        ("Install the suggested cell into a WebUI Lora folder", lambda: ["install", where, "--to", str(lora_dir)]),
    ]
    for number, (title, command) in enumerate(plan, start=2):
        stage = Stage(title, command())
        if stage.argv[0] == "install":
            lora_dir.mkdir(parents=True, exist_ok=True)  # stands in for the WebUI's own folder
        run.stages.append(stage)
        say()
        say(f"[{number}] {stage.title}")
        say(f"$ {program()} {shlex.join(stage.argv)}")
        began = time.monotonic()
        stage.code = run_command(stage.argv)
        stage.seconds = time.monotonic() - began
        if stage.code != 0:
            break
    run.seconds = time.monotonic() - started
    return run


def _feature_tags(root: Path) -> list[str]:
    """The demo's feature tags the tagger found (by the spelling the captions use)."""
    from loratui.dataset.tag_table import tag_table
    from loratui.project import Project

    project = Project.open(root)
    table = tag_table(project, project.load())
    found = [row.tag for tag in FEATURE_TAGS if (row := table.find(tag)) is not None and row.count]
    if not found:
        raise LoratuiError(f"{root}: the tagger found none of {', '.join(FEATURE_TAGS)}: the demo's tagger or "
                           "pictures are not the ones this loratui builds")
    return found


def summary(run: HeadlessRun) -> list[str]:
    """Closing lines: the time of each stage and every file a user would look at, with where it is."""
    lines = ["", f"{'Done' if run.ok else 'Stopped'} in {run.seconds:.1f} s:"]
    for stage in run.stages:
        mark = "ok" if stage.code == 0 else ("FAILED" if stage.code is not None else "-")
        lines.append(f"  {stage.seconds:6.1f} s  {mark:6}  loratui {stage.argv[0]:9} {stage.title}")
    if not run.ok:
        return lines
    lines += ["", "What it made:", *(f"  {line}" for line in made_files(run.root))]
    # Written as this shell must type it: `.venv/bin/loratui` until the venv is activated.
    me, where = program(), shlex.quote(str(run.root))
    lines += ["", f"Look around: {me} status {where} · {me} tags {where} --list · {me} grid {where} --text"]
    return lines


def made_files(root: Path) -> list[str]:
    """One line per kind of output, with the path relative to ``root``."""
    from loratui.lora.paths import list_checkpoints
    from loratui.preview.grid_file import read_grid
    from loratui.project import Project

    project = Project.open(root)
    config = project.load()
    lines = []
    for concept in config.concepts:
        folder = project.concept_dir(concept)
        captions = list(folder.glob("*.txt"))
        lines.append(f"{_rel(folder, root)}/  {len(captions)} pictures + captions starting with '{concept.trigger}'")
    checkpoints = [path for _, path in list_checkpoints(project.output_dir, project.output_name(config))]
    lines.append(f"{_rel(project.output_dir, root)}/  {', '.join(p.name for p in checkpoints)} (kohya format)")
    grid = read_grid(project)
    if grid is not None:
        suggested = (f"suggests {Path(grid.suggestion.checkpoint).name} at {grid.suggestion.weight:g}"
                     if grid.suggestion else "has no suggestion")
        lines.append(f"{grid.png}  {len(grid.cells)} cells; preview/grid.json {suggested}")
    lora_dir = root / LORA_FOLDER
    for lora in sorted(lora_dir.glob("*.safetensors")):
        card = lora.with_suffix(".json")
        lines.append(f"{_rel(lora, root)}  + {card.name} (the A1111 Lora card)" if card.is_file()
                     else _rel(lora, root))
    lines.append(f"{_rel(project.logs_dir, root)}/events/  one events file per job (JOB-ID.jsonl)")
    return lines


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)
