"""`loratui lora-info FILE`: what a LoRA file holds (family, rank, alpha, modules, training facts), without torch."""

from __future__ import annotations

import argparse
import json

# How many of a folder's most frequent tags the summary names.
TOP_TAGS = 8


def register(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser(
        "lora-info",
        help="show what a LoRA .safetensors file holds",
        description="Read a LoRA file's header (no weights are loaded) and print its model family, rank, alpha, "
        "modules per part and the training facts kohya-style trainers record (epoch, steps, images, tags).",
    )
    info.add_argument("file", metavar="FILE", help="a LoRA .safetensors file")
    info.add_argument("--json", action="store_true", help="print one JSON object instead")
    info.add_argument("--metadata", action="store_true", help="also print every metadata key and value")
    info.set_defaults(run=run_lora_info)


def run_lora_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from loratui.lora.read import read_lora

    info = read_lora(Path(args.file))
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(info.path),
                    "name": info.output_name,
                    "family": info.family,
                    "rank": info.rank,
                    "alpha": info.alpha,
                    "dtype": info.dtype,
                    "modules": info.module_counts,
                    "metadata": info.metadata if args.metadata else None,
                }
            )
        )
        return 0
    md = info.metadata
    parts = ", ".join(f"{name} {count}" for name, count in info.module_counts.items())
    print(
        f"{info.path.name}: LoRA for {info.family or 'an unknown model'}, rank {info.rank}, alpha {info.alpha:g} "
        f"(scale {info.alpha / info.rank:g}), {len(info.modules)} modules ({parts}), {info.dtype}"
    )
    if "ss_steps" in md:
        print(
            f"trained: epoch {md.get('ss_epoch', '?')} of {md.get('ss_num_epochs', '?')}, step {md['ss_steps']} of "
            f"{md.get('ss_max_train_steps', '?')}, {_images(md)}, "
            f"resolution {md.get('ss_resolution', '?')}, base {md.get('ss_sd_model_name', '?')}"
        )
    if md.get("modelspec.trigger_phrase"):
        print(f"trigger: {md['modelspec.trigger_phrase']}")
    for folder, tags in _tag_frequency(md).items():
        top = sorted(tags.items(), key=lambda item: (-item[1], item[0]))[:TOP_TAGS]
        print(f"tags in {folder}: " + ", ".join(f"{tag} {count}" for tag, count in top))
    if args.metadata:
        for key in sorted(md):
            print(f"  {key} = {md[key]}")
    return 0


def _images(metadata: dict[str, str]) -> str:
    """``48 images per epoch (24 pictures x 2 repeats)``: ss_num_train_images already counts the repeats; the
    folders' own counts (ss_dataset_dirs) show how."""
    total = metadata.get("ss_num_train_images", "?")
    try:
        folders = json.loads(metadata.get("ss_dataset_dirs", "{}"))
        counts = [(int(f["img_count"]), int(f["n_repeats"])) for f in folders.values()]
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        counts = []  # written by another trainer, or damaged: the total alone
    images = f"{total} image{'' if total == '1' else 's'} per epoch"
    if not counts:
        return f"{images} (pictures x repeats)"
    (pictures, repeats), *others = counts
    first = f"{pictures} picture{'s' if pictures != 1 else ''} x {repeats} repeat{'s' if repeats != 1 else ''}"
    return f"{images} ({' + '.join([first, *(f'{p} x {r}' for p, r in others)])})"


def _tag_frequency(metadata: dict[str, str]) -> dict[str, dict[str, int]]:
    # Written by other trainers too: anything unreadable is just not shown.
    try:
        value = json.loads(metadata.get("ss_tag_frequency", "{}"))
    except json.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {
        str(folder): {str(tag): n for tag, n in tags.items() if isinstance(n, int)}
        for folder, tags in value.items()
        if isinstance(tags, dict)
    }
