"""The `loratui` command: one argparse subcommand per engine action; heavy modules load only when used."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from loratui import __version__
from loratui.commands import (
    demo_cmd,
    estimate_cmd,
    export_cmd,
    grid_cmd,
    install_cmd,
    jobs_cmd,
    lora_info_cmd,
    prepare_cmd,
    presets_cmd,
    project_cmds,
    recent_cmd,
    settings_cmd,
    tag_cmd,
    tags_cmd,
    train_cmd,
)
from loratui.errors import LoratuiError, ProblemsError

DESCRIPTION = """\
Train Stable Diffusion LoRA models from a folder of pictures, over SSH, in one terminal.

The wizard:  loratui [DIR] [--ascii]   (a keyboard-driven terminal app; DIR defaults to here)
Workflow: new -> check -> prepare -> tag -> tags -> estimate -> train -> grid -> install.
Try it offline on made-up pictures and tiny models:  loratui demo ~/loratui-demo
"""

EPILOG = "Exit status: 0 done, 2 bad input (the message names the file or setting), 130 interrupted."

# Each module adds its own subcommands; the order here is the order in `loratui --help`.
COMMAND_MODULES = (
    project_cmds,
    recent_cmd,
    prepare_cmd,
    tag_cmd,
    tags_cmd,
    estimate_cmd,
    train_cmd,
    jobs_cmd,
    grid_cmd,
    install_cmd,
    lora_info_cmd,
    export_cmd,
    presets_cmd,
    settings_cmd,
    demo_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loratui", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"loratui {__version__}")
    # Commands that run other commands (demo --headless) get the dispatcher from here instead of importing it.
    parser.set_defaults(dispatch=main)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def wizard_target(argv: Sequence[str], commands: set[str]) -> tuple[str, bool] | None:
    """``loratui [DIR] [--ascii]`` opens the wizard: (DIR, ascii); None when argv is a subcommand or --help."""
    rest = [a for a in argv if a != "--ascii"]
    if len(rest) > 1 or (rest and (rest[0].startswith("-") or rest[0] in commands)):
        return None
    return (rest[0] if rest else ".", "--ascii" in argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = set(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)
    target = wizard_target(argv, commands)
    if target is not None and (argv or sys.stdout.isatty()):
        return _open_wizard(*target)
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    try:
        status = args.run(args) or 0
        sys.stdout.flush()  # inside the try: a closed pipe is reported here, not as a traceback at exit
        return status
    except ProblemsError as exc:
        for problem in exc.problems:
            print(f"loratui: {problem}", file=sys.stderr)
        return 2
    except LoratuiError as exc:
        print(f"loratui: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loratui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `loratui tags DIR --list | head` closed our stdout early: that is the reader's choice, not an error.
        # Point stdout at devnull so the interpreter's final flush cannot raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _open_wizard(where: str, ascii_only: bool) -> int:
    from pathlib import Path

    folder = Path(where).expanduser()
    if folder.exists() and not folder.is_dir():
        print(f"loratui: {folder} is a file, not a folder: give a project folder (or a new one)", file=sys.stderr)
        return 2
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        print("loratui: the wizard needs a terminal; from a script use the subcommands (`loratui --help`)",
              file=sys.stderr)
        return 2
    from loratui.tui.app import run_wizard

    return run_wizard(folder, ascii_only=ascii_only)


if __name__ == "__main__":
    sys.exit(main())
