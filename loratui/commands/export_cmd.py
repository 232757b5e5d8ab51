"""`loratui export-kohya DIR`: write the project's run as an sd-scripts --config_file TOML and say how to launch it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loratui.commands.common import add_project_dir, open_project


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export-kohya",
        help="write the same run as a kohya sd-scripts config (TOML)",
        description="Write DIR's training settings as an sd-scripts --config_file TOML (lora-scripts' section "
        "layout), for training the same LoRA with kohya's train_network.py, or sdxl_train_network.py for SDXL. "
        "The model family decides the script and the v2 / v_parameterization flags. \"auto\" settings are "
        "resolved (mixed precision bf16, keep_tokens from the trigger words); what sd-scripts cannot express "
        "(previews) is left out. Prints the file and the exact launch line.",
    )
    add_project_dir(export)
    export.add_argument("--output", type=Path, metavar="FILE",
                        help="where to write it (default: DIR/kohya-config.toml; a folder gets that name inside)")
    export.add_argument("--family", metavar="F",
                        help="model family sd15, sd2, sd2-v or sdxl (default: detected from the base model)")
    export.add_argument("--allow-pickle", action="store_true",
                        help="read a .ckpt/.pt base model (weights only) to detect its family; --family avoids it")
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from loratui.training.kohya_export import write_kohya_config

    project = open_project(args)
    result = write_kohya_config(project, project.load(), args.output, family=args.family,
                                allow_pickle=args.allow_pickle)
    print(f"Wrote {result.config_file}  (family {result.family}, {result.family_from})")
    for note in result.notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"Run it from your sd-scripts folder:\n  {result.launch_line}")
    return 0
