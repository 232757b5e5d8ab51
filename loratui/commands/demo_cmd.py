"""`loratui demo [DIR]`: build the embedded demo project (made-up pictures, tiny offline models)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from loratui.commands.common import add_project_dir


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="build a demo project offline: made-up pictures, tiny SD1.5 model, tiny tagger",
        description="Build the embedded demo in DIR: synthetic pictures of a drawn character, a tiny SD1.5 "
        "model as an A1111-style .safetensors file and a tiny WD14-style tagger, all made offline on the CPU, "
        "and a project that uses them. Every step works on it; the results mean nothing. With --headless it "
        "then runs the whole workflow, one loratui command per stage: check, prepare, tag, delete the tags the "
        "trigger word should carry, set the trigger, estimate, train, preview grid, install.",
    )
    add_project_dir(demo, optional=True, default=Path("loratui-demo"),
                    help="where to build it (default: ./loratui-demo)")
    demo.add_argument("--no-open", action="store_true",
                      help="only build it; do not open the wizard on it (what a script wants)")
    demo.add_argument("--headless", action="store_true",
                      help="run every stage with no UI and print what it made (about a minute on a 2-core CPU)")
    demo.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from loratui.project import refuse_a_file_in_the_way
    from loratui.recent import remember

    refuse_a_file_in_the_way(args.dir, "give another folder to `loratui demo` (it is created if missing)")
    if args.headless:
        return _run_headless(args.dir, args.dispatch)
    from loratui.demo.build import build_demo_project

    started = time.monotonic()

    def progress(step: str) -> None:
        print(f"  {step}", file=sys.stderr, flush=True)

    print(f"Building the demo in {args.dir} ...", file=sys.stderr)
    demo = build_demo_project(args.dir, progress=progress)
    remember(demo.project.root)
    print(f"Demo ready in {time.monotonic() - started:.1f} s:")
    print(f"  project    {demo.project.config_path}")
    print(f"  pictures   {demo.pictures_dir}  ({demo.picture_count} made-up pictures of {demo.concept})")
    print(f"  base model {demo.base_model}  (tiny SD1.5, A1111 single file)")
    print(f"  tagger     {demo.tagger_dir}  (tiny WD14-style ONNX model)")
    if not args.no_open and sys.stdout.isatty() and sys.stdin.isatty():
        from loratui.tui.app import run_wizard

        return run_wizard(Path(args.dir), demo=True)
    print(f"Next: loratui {args.dir}  (the wizard) or loratui check {args.dir}")
    return 0


def _run_headless(root: Path, dispatch: Callable[[list[str]], int]) -> int:
    """``dispatch`` runs one loratui command line (the CLI puts its own ``main`` on the parsed arguments)."""
    from loratui.demo.headless import run_headless, summary

    print(f"loratui demo --headless: the whole workflow in {root}, on made-up pictures and tiny models (the "
          "pictures it makes mean nothing; the files are real)")
    run = run_headless(root, run_command=dispatch)
    if (root / "loratui.toml").is_file():
        from loratui.recent import remember

        remember(root)
    print("\n".join(summary(run)))
    failed = next((stage for stage in run.stages if stage.code != 0), None)
    return 0 if failed is None else (failed.code or 2)
