"""A job's command line, built from its options in one place (the CLI's --detach and the wizard both use it).

Each job kind has a dataclass of the options its subcommand takes; :func:`command_line` turns one into the
``loratui`` argument list a detached child runs (DIR made absolute), and :func:`options_from_args` reads one back
from parsed arguments. Field names are the subcommand's argparse ``dest`` names, so the mapping is the flag's name:
``max_steps`` is ``--max-steps``. A ``bool`` field defaulting to False is a plain flag; ``bool | None`` is an
on/off flag (``--mcut`` / ``--no-mcut``); a list repeats values after one flag.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class JobOptions:
    KIND: ClassVar[str] = ""


@dataclass(frozen=True)
class PrepareOptions(JobOptions):
    KIND: ClassVar[str] = "prepare"
    force: bool = False
    json: bool = False


@dataclass(frozen=True)
class TagOptions(JobOptions):
    KIND: ClassVar[str] = "tag"
    model: str | None = None
    general_threshold: float | None = None
    character_threshold: float | None = None
    mcut: bool | None = None
    merge: str | None = None
    batch_size: int | None = None
    write_rating: bool | None = None
    fast_decode: bool | None = None
    trigger: str | None = None
    concept: str | None = None


@dataclass(frozen=True)
class TrainOptions(JobOptions):
    KIND: ClassVar[str] = "train"
    resume: bool = False
    from_scratch: bool = False
    gpus: int | None = None
    allow_pickle: bool = False
    max_steps: int | None = None


@dataclass(frozen=True)
class GridOptions(JobOptions):
    KIND: ClassVar[str] = "grid"
    checkpoints: tuple[str, ...] | None = None
    weights: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int | None = None
    sampler: str | None = None
    size: str | None = None
    no_score: bool = False


OPTION_CLASSES: dict[str, type[JobOptions]] = {cls.KIND: cls for cls in (PrepareOptions, TagOptions, TrainOptions,
                                                                        GridOptions)}


def command_line(project_dir: Path | str, options: JobOptions) -> list[str]:
    """``[kind, ABSOLUTE_DIR, flags...]``: the foreground command that does what ``options`` say."""
    argv = [options.KIND, str(Path(project_dir).expanduser().resolve())]
    for item in dataclasses.fields(options):
        value = getattr(options, item.name)
        flag = "--" + item.name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                argv.append(flag)
            elif item.default is None:  # an on/off flag set to off
                argv.append("--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            if value:
                argv += [flag, *(_absolute_if_file(str(v)) for v in value)]
        else:
            argv.append(f"{flag}={value}")  # `=`: a value starting with "-" stays a value
    return argv


def options_from_args(kind: str, args: argparse.Namespace) -> JobOptions:
    """The options of ``kind`` given on a parsed command line (unknown kinds are refused)."""
    cls = OPTION_CLASSES[kind]
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        value = getattr(args, item.name, item.default)
        values[item.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def _absolute_if_file(item: str) -> str:
    """A file given relative to here (a checkpoint) must still point at it from the job's folder."""
    path = Path(item).expanduser()
    return str(path.resolve()) if path.is_file() else item
