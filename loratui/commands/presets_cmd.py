"""`loratui presets list | show NAME | save NAME DIR`."""

from __future__ import annotations

import argparse
import json

from loratui.commands.common import add_project_dir, open_project


def register(commands: argparse._SubParsersAction) -> None:
    presets = commands.add_parser(
        "presets",
        help="list, show and save presets (named sets of settings)",
        description="Presets hold settings, never paths. Built-in ones ship with loratui; yours are saved in "
        "your config folder ($LORATUI_CONFIG_DIR/presets when set).",
    )
    actions = presets.add_subparsers(title="actions", metavar="ACTION")
    listing = actions.add_parser("list", help="every preset with its description")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(run=run_list)
    show = actions.add_parser("show", help="print a preset's settings")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(run=run_show)
    save = actions.add_parser("save", help="save a project's settings as a preset of yours")
    save.add_argument("name", metavar="NAME", help="letters, digits, - and _")
    add_project_dir(save, help="the project whose settings to save")
    save.add_argument("--description", metavar="TEXT", help="one line saying what the preset is for")
    save.add_argument("--force", action="store_true", help="replace a preset of yours with the same name")
    save.set_defaults(run=run_save)
    presets.set_defaults(run=run_list, json=False)


def run_list(args: argparse.Namespace) -> int:
    from loratui.presets import list_presets

    presets = list_presets()
    if args.json:
        print(json.dumps([{"name": p.name, "origin": p.origin, "family": p.family, "description": p.description,
                           "path": str(p.path)} for p in presets], indent=2))
        return 0
    width = max(len(p.name) for p in presets)
    for p in presets:
        print(f"{p.name:<{width}}  {p.origin:<8}  {p.description}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from loratui.presets import find_preset

    preset = find_preset(args.name)
    print(f"# {preset.name} ({preset.origin}, {preset.path})")
    print(preset.path.read_text(encoding="utf-8-sig").rstrip())
    return 0


def run_save(args: argparse.Namespace) -> int:
    from loratui.presets import save_preset

    project = open_project(args)
    config = project.load()
    description = args.description or f"Saved from {project.root.resolve().name}"
    path = save_preset(args.name, config, description, force=args.force)
    print(f"Saved preset {args.name} to {path}")
    return 0
