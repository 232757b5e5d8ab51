"""`loratui install DIR --to LORA_DIR`: copy the chosen checkpoint into a WebUI/ComfyUI LoRA folder, with its card."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loratui.commands.common import add_project_dir, open_project


def register(commands: argparse._SubParsersAction) -> None:
    install = commands.add_parser(
        "install",
        help="copy the chosen LoRA into your WebUI, Forge or ComfyUI Lora folder",
        description="Copy a checkpoint of DIR into LORA_DIR as NAME.safetensors (atomically: the WebUI never "
        "sees half a file) and write NAME.json, the card A1111 and Forge show for it (trigger word, preferred "
        "weight, negative prompt). Which checkpoint: --checkpoint; else the cell picked in the preview "
        "(preview/grid.json); else the preview's suggestion; else the run's final file. An existing file is "
        "replaced only with --force; --keep-both installs beside it as NAME-2.",
    )
    add_project_dir(install)
    # Required, but checked in run_install rather than by argparse: its message lists the Lora folders found.
    install.add_argument("--to", type=Path, metavar="LORA_DIR",
                         help="required: the Lora folder, e.g. ~/stable-diffusion-webui/models/Lora or "
                         "~/ComfyUI/models/loras (without it, install names the Lora folders it finds)")
    install.add_argument("--checkpoint", metavar="FILE",
                         help="the checkpoint to install: a path, or a file name in DIR/output/")
    install.add_argument("--name", metavar="NAME",
                         help="the installed name, called as <lora:NAME:0.8> (default: the project's output name)")
    install.add_argument("--weight", type=float, metavar="W",
                         help="the preferred weight on the card (default: the picked cell's weight, else 1.0)")
    existing = install.add_mutually_exclusive_group()
    existing.add_argument("--force", action="store_true", help="replace a LoRA of that name (and its card)")
    existing.add_argument("--keep-both", action="store_true",
                          help="when a LoRA of that name is there, keep it and install as NAME-2 (the first free "
                          "name)")
    install.add_argument("--no-card", action="store_true", help="do not write the NAME.json card")
    install.add_argument("--json", action="store_true", help="print one JSON object instead")
    # The usage line argparse writes brackets --to as optional: say it as it is.
    install.usage = install.format_usage().removeprefix("usage: ").replace("[--to LORA_DIR]", "--to LORA_DIR")
    install.set_defaults(run=run_install)


def run_install(args: argparse.Namespace) -> int:
    from loratui.errors import LoratuiError
    from loratui.lora.read import read_lora
    from loratui.preview.install import LORA_SUFFIX, card_for, choose_checkpoint, human_size, install_lora

    project = open_project(args)
    config = project.load()
    if args.to is None:
        raise LoratuiError(_missing_to())
    choice = choose_checkpoint(project, config, args.checkpoint)
    weight = args.weight if args.weight is not None else (choice.weight if choice.weight is not None else 1.0)
    name = args.name or project.output_name(config)
    card = None if args.no_card else card_for(project, config, read_lora(choice.checkpoint), weight, choice.prompt,
                                              choice.negative_prompt)
    result = install_lora(choice.checkpoint, args.to, name, card=card, force=args.force,
                          keep_both=args.keep_both, project=project)
    name = result.path.stem
    trigger = card.activation_text if card else ", ".join(c.trigger for c in config.concepts if c.trigger)
    source = _shown(choice.checkpoint, project.root)
    if args.json:
        print(json.dumps({
            "path": str(result.path), "size": result.size, "family": result.family, "replaced": result.replaced,
            "card": str(result.card_path) if result.card_path else None, "checkpoint": source, "why": choice.why,
            "name": name, "weight": weight, "trigger": trigger,
            "renamed_from": result.renamed_from,
        }))
        return 0
    verb = "Replaced" if result.replaced else "Installed"
    if result.renamed_from:
        print(f"{result.renamed_from}{LORA_SUFFIX} is already there: kept it, and installed this one as "
              f"{result.path.name}")
    print(f"{verb} {result.path} ({human_size(result.size)}) from {source}: {choice.why}")
    if result.family is None:
        print("warning: the LoRA's model family is unknown: the card says sd version Unknown", file=sys.stderr)
    if result.card_path:
        print(f"Card: {result.card_path} (A1111/Forge show the trigger word and weight {weight:g})")
    print(f"In A1111/Forge: <lora:{name}:{weight:g}>" + (f" {trigger}" if trigger else ""))
    print(f"In ComfyUI: LoraLoader \u2192 {result.path.name}, strength {weight:g}")
    return 0


def _missing_to() -> str:
    from loratui.preview.install import find_lora_folders

    found = find_lora_folders()
    if found:
        return ("--to LORA_DIR is missing: give the Lora folder to install into; found here: "
                + ", ".join(str(folder) for folder in found))
    return ("--to LORA_DIR is missing: give the folder your WebUI reads LoRAs from (stable-diffusion-webui/models/"
            "Lora, or ComfyUI/models/loras); none was found under your home folder, /workspace or /opt")


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
