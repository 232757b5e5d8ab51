"""`loratui recent [--json | --forget DIR | --prune]`: the projects opened lately, with what their jobs are doing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from loratui.errors import LoratuiError

if TYPE_CHECKING:
    from loratui.recent import RecentProject

NO_PROJECTS = "No recent projects yet: `loratui DIR` opens one and remembers it."


def register(commands: argparse._SubParsersAction) -> None:
    recent = commands.add_parser(
        "recent",
        help="list the projects you opened lately, with their jobs' state",
        description="List the projects you opened or created lately, most recent first: name, what its last job "
        "did (TRAINING 41%, DONE, FAILED...), folder, when you opened it. The list lives in your user data "
        "folder ($LORATUI_DATA_DIR when set); forgetting a project never touches its folder.",
    )
    actions = recent.add_mutually_exclusive_group()
    actions.add_argument("--json", action="store_true", help="print the list as JSON")
    actions.add_argument("--forget", type=Path, metavar="DIR", help="drop DIR from the list (the folder stays)")
    actions.add_argument("--prune", action="store_true", help="drop the projects whose folder is gone")
    recent.set_defaults(run=run_recent)


def run_recent(args: argparse.Namespace) -> int:
    from loratui.recent import KEEP, forget, prune, recent_projects

    if args.forget is not None:
        if not forget(args.forget):
            raise LoratuiError(f"{args.forget}: not in the recent projects (`loratui recent` lists them)")
        print(f"Forgot {args.forget} (its folder is left as it is)")
        return 0
    if args.prune:
        dropped = prune()
        if not dropped:
            print("Nothing to prune: every recent project is still there")
        for path in dropped:
            print(f"Forgot {path} (no loratui.toml there any more)")
        return 0
    projects = recent_projects(limit=KEEP)
    if args.json:
        print(json.dumps([project.to_dict() for project in projects], indent=2))
        return 0
    if not projects:
        print(NO_PROJECTS)
        return 0
    print("\n".join(recent_lines(projects)))
    missing = sum(not project.exists for project in projects)
    if missing:
        print(f"{missing} of these {'is' if missing == 1 else 'are'} gone (no loratui.toml): `loratui recent "
              "--prune` forgets them")
    return 0


def recent_lines(projects: list[RecentProject], now: float | None = None) -> list[str]:
    """One aligned line per project: name, job state, folder, when it was opened."""
    from loratui.recent import opened_ago

    rows = [(p.name, (p.job or "-") if p.exists else "MISSING", str(p.path), opened_ago(p.opened, now))
            for p in projects]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return [f"{name:<{widths[0]}}  {state:<{widths[1]}}  {path:<{widths[2]}}  {ago}"
            for name, state, path, ago in rows]
