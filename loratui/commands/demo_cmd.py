"""`loratui demo [DIR]`: build the embedded demo project (made-up pictures, tiny offline models)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="build a demo project offline: made-up pictures, tiny SD1.5 model, tiny tagger",
        description="Build the embedded demo in DIR: synthetic pictures of a drawn character, a tiny SD1.5 "
        "model as an A1111-style .safetensors file and a tiny WD14-style tagger, all made offline on the CPU, "
        "and a project that uses them. Every step works on it; the results mean nothing.",
    )
    demo.add_argument("dir", nargs="?", type=Path, default=Path("loratui-demo"), metavar="DIR",
                      help="where to build it (default: ./loratui-demo)")
    demo.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from loratui.demo.build import build_demo_project

    started = time.monotonic()

    def progress(step: str) -> None:
        print(f"  {step}", file=sys.stderr, flush=True)

    print(f"Building the demo in {args.dir} ...", file=sys.stderr)
    demo = build_demo_project(args.dir, progress=progress)
    print(f"Demo ready in {time.monotonic() - started:.1f} s:")
    print(f"  project    {demo.project.config_path}")
    print(f"  pictures   {demo.pictures_dir}  ({demo.picture_count} made-up pictures of {demo.concept})")
    print(f"  base model {demo.base_model}  (tiny SD1.5, A1111 single file)")
    print(f"  tagger     {demo.tagger_dir}  (tiny WD14-style ONNX model)")
    print(f"Next: loratui check {args.dir}")
    return 0
