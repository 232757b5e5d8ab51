"""`loratui prepare` (sources -> cropped dataset/ PNGs) and `loratui scan` (what the sources hold, nothing written)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from loratui.commands.common import add_project_dir, open_project, rel_path


def register(commands: argparse._SubParsersAction) -> None:
    scan = commands.add_parser(
        "scan",
        help="check the source pictures: sizes, too small, near-duplicates, broken files",
        description="Look at every concept's source pictures without writing anything: how many, their sizes, "
        "which are too small for the training resolution (below 2x is warned, below 1x will be enlarged), "
        "near-duplicate groups, unreadable files with the reason, and advice.",
    )
    add_project_dir(scan)
    scan.add_argument("--json", action="store_true", help="print the report as JSON")
    scan.set_defaults(run=run_scan)

    prepare = commands.add_parser(
        "prepare",
        help="crop and resize the source pictures into dataset/",
        description="Crop and resize every concept's pictures into dataset/{repeats}_{concept}/ as PNG (crop mode "
        "and resolution from loratui.toml), and bring along captions (.txt/.caption) found beside them. Only what "
        "changed is redone. Source pictures are never modified.",
    )
    add_project_dir(prepare)
    prepare.add_argument("--force", action="store_true", help="redo every picture, even unchanged ones")
    prepare.add_argument("--json", action="store_true", help="print the result as JSON")
    prepare.add_argument("--detach", action="store_true",
                         help="run in the background (goes on if you log out); watch it with `loratui status DIR` "
                         "or `loratui logs DIR --follow`")
    prepare.set_defaults(run=run_prepare)


# --- prepare -------------------------------------------------------------------------------------


def run_prepare(args: argparse.Namespace) -> int:
    from loratui.commands.progress_view import ProgressBar, print_outcome
    from loratui.dataset.prepare import check_sources, prepare_project
    from loratui.jobs.command import command_line, options_from_args
    from loratui.jobs.runner import job

    project = open_project(args)
    config = project.load()
    check_sources(project, config)
    argv = command_line(args.dir, options_from_args("prepare", args))
    if args.detach:
        from loratui.commands.jobs_cmd import detach

        return detach(args.dir, "prepare", argv)
    with job(project, "prepare", argv):
        if not args.json:
            _print_plan(project, config)
        bar = ProgressBar()
        try:
            result = prepare_project(project, force=args.force, progress=bar)
        finally:
            bar.close()
    if args.json:
        print(json.dumps(_result_json(result, project.root), ensure_ascii=False, indent=2))
        return 0
    print_outcome(result.outcome, "prepared")
    for old, new in result.renamed:
        print(f"Renamed {rel_path(old, project.root)} -> {rel_path(new, project.root)} (repeats changed; captions "
              "kept)")
    if result.removed:
        where = f" (their captions moved to {rel_path(result.moved_captions[0].parent.parent, project.root)})" \
            if result.moved_captions else ""
        print(f"Removed {len(result.removed)} prepared picture{'s' if len(result.removed) != 1 else ''} whose "
              f"source is gone or excluded{where}")
    _print_crop_summary(result)
    for concept in config.concepts:
        folder = project.concept_dir(concept)
        images = [image for image in result.images if image.concept == concept.name]
        captioned = sum(1 for image in images if image.output.with_suffix(".txt").is_file())
        print(f"Dataset {rel_path(folder, project.root)}: {len(images)} picture{'s' if len(images) != 1 else ''}, "
              f"{captioned} with captions")
    if result.images:
        untagged = sum(1 for image in result.images if not image.output.with_suffix(".txt").is_file())
        print(f"Next: loratui tag {args.dir}" if untagged else f"Next: loratui tags {args.dir} --list")
    return 0


def _print_plan(project, config) -> None:
    dataset = config.dataset
    mode = {"focal": "focal crop (faces and detail)", "center": "centre crop",
            "none": "no crop (aspect-ratio buckets)"}[dataset.crop]
    for concept in config.concepts:
        print(f"Preparing {concept.name}: {concept.source} -> {rel_path(project.concept_dir(concept), project.root)}"
              f"  ({mode}, {dataset.resolution} px)", file=sys.stderr)


def _print_crop_summary(result) -> None:
    methods = result.methods()
    if not methods:
        return
    labels = {"face-anime": "on anime faces", "face-photo": "on faces (photo)", "saliency": "on detail (no face "
              "found)", "centre": "centred (nothing stood out)", "center": "centre crop", "bucket": "whole picture "
              "(buckets)", "manual": "your crop box"}
    parts = [f"{count} {labels.get(method, method)}" for method, count in methods.most_common()]
    upscaled = sum(1 for image in result.images if image.upscaled)
    if upscaled:
        parts.append(f"{upscaled} upscaled")
    groups = len(result.duplicate_groups)
    if groups:
        parts.append(f"{groups} near-duplicate group{'s' if groups != 1 else ''}")
    print("Crop: " + ", ".join(parts))


def _result_json(result, root: Path) -> dict[str, Any]:
    outcome = result.outcome
    return {
        "done": outcome.done,
        "unchanged": outcome.unchanged,
        "skipped": [{"path": str(note.path), "reason": note.message} for note in outcome.skipped],
        "warnings": [{"path": str(note.path), "message": note.message} for note in outcome.warnings],
        "images": [
            {
                "concept": image.concept,
                "source": str(image.source),
                "relpath": image.relpath,
                "output": rel_path(image.output, root),
                "source_size": list(image.source_size),
                "box": list(image.box),
                "size": list(image.size),
                "method": image.method,
                "upscale": round(image.upscale, 3),
                "upscaled": image.upscaled,
                "faces": [list(face) for face in image.faces],
                "redone": image.redone,
            }
            for image in result.images
        ],
        "removed": [rel_path(path, root) for path in result.removed],
        "moved_captions": [rel_path(path, root) for path in result.moved_captions],
        "renamed": [[rel_path(old, root), rel_path(new, root)] for old, new in result.renamed],
        "duplicate_groups": [[image.relpath for image in group] for group in result.duplicate_groups],
    }


# --- scan ----------------------------------------------------------------------------------------


def run_scan(args: argparse.Namespace) -> int:
    from loratui.commands.progress_view import ProgressBar
    from loratui.dataset.image_inspect import inspect_source
    from loratui.dataset.prepare import check_sources

    project = open_project(args)
    config = project.load()
    check_sources(project, config)
    reports = []
    for concept in config.concepts:
        bar = ProgressBar()
        try:
            report = inspect_source(project.source_dir(concept), concept.recursive, concept.exclude,
                                    config.dataset.resolution, config.dataset.crop, progress=bar)
        finally:
            bar.close()
        reports.append((concept, report))
    if args.json:
        print(json.dumps([_report_json(concept, project, report) for concept, report in reports],
                         ensure_ascii=False, indent=2))
        return 0
    for index, (concept, report) in enumerate(reports):
        if index:
            print()
        _print_report(concept, project, report)
    return 0


_MARKS = {"ok": "[ok]", "warn": "[!] ", "info": "[i] "}


def _print_report(concept, project, report) -> None:
    from loratui.dataset.image_inspect import group_label

    source = project.source_dir(concept)
    excluded = f", {len(report.excluded)} excluded" if report.excluded else ""
    print(f"{concept.name}: {concept.source}  {len(report.images)} pictures{excluded}"
          f"{', ' + str(len(report.broken)) + ' unreadable' if report.broken else ''}  "
          f"(crop {report.crop} at {report.resolution} px)")
    if report.images:
        smallest = min(report.images, key=lambda im: min(im.width, im.height))
        largest = max(report.images, key=lambda im: min(im.width, im.height))
        print(f"  sizes        {smallest.width}x{smallest.height} to {largest.width}x{largest.height}")
    small = sorted(report.too_small + report.small, key=lambda im: im.scale)
    if small:
        print(f"  too small    {len(report.too_small)} below 1x (will be enlarged), {len(report.small)} below 2x")
        for image in small:
            print(f"      {image.scale:4.1f}x  {image.entry.relpath}  {image.width}x{image.height}"
                  f"{'  !' if image.scale < 1 else ''}")
    else:
        print("  too small    none (every picture is 2x the training size or more)")
    if report.duplicate_groups:
        print(f"  near-dups    {len(report.duplicate_groups)} group{'s' if len(report.duplicate_groups) != 1 else ''}"
              " (keep the best of each)")
        for number, group in enumerate(report.duplicate_groups):
            members = ", ".join(f"{im.entry.relpath} {im.width}x{im.height}{' (best)' if im.best_of_group else ''}"
                                for im in group)
            print(f"      {group_label(number)}  {members}")
    else:
        print("  near-dups    none")
    if report.broken:
        print(f"  unreadable   {len(report.broken)} (skipped by prepare)")
        for note in report.broken:
            print(f"      {rel_path(note.path, source)}: {note.message}")
    else:
        print("  unreadable   none")
    if report.excluded:
        print(f"  excluded     {', '.join(entry.relpath for entry in report.excluded)}")
    for advice in report.advice:
        print(f"  {_MARKS[advice.level]} {advice.message}")


def _report_json(concept, project, report) -> dict[str, Any]:
    return {
        "concept": concept.name,
        "source": str(project.source_dir(concept)),
        "resolution": report.resolution,
        "crop": report.crop,
        "images": [
            {
                "relpath": image.entry.relpath,
                "width": image.width,
                "height": image.height,
                "format": image.format,
                "mode": image.mode,
                "file_size": image.entry.file_size,
                "animated": image.animated,
                "scale": round(image.scale, 3),
                "size_status": image.size_status,
                "duplicate_group": image.duplicate_group,
                "best_of_group": image.best_of_group,
            }
            for image in report.images
        ],
        "broken": [{"path": str(note.path), "reason": note.message} for note in report.broken],
        "excluded": [entry.relpath for entry in report.excluded],
        "duplicate_groups": [[image.entry.relpath for image in group] for group in report.duplicate_groups],
        "advice": [{"level": advice.level, "message": advice.message} for advice in report.advice],
    }
