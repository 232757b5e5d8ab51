"""`loratui settings [KEY]`: every setting of loratui.toml with its default, limits and meaning."""

from __future__ import annotations

import argparse
import textwrap


def register(commands: argparse._SubParsersAction) -> None:
    settings = commands.add_parser(
        "settings",
        help="explain the settings of loratui.toml",
        description="Print every setting (or the ones matching KEY, e.g. training.epochs or training) with its "
        "default, its allowed values and what it does.",
    )
    settings.add_argument("key", nargs="?", default="", metavar="KEY", help="a section or section.key")
    settings.set_defaults(run=run_settings)


def run_settings(args: argparse.Namespace) -> int:
    from dataclasses import MISSING, fields

    from loratui.config import SECTIONS
    from loratui.errors import LoratuiError

    shown = 0
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            key = f"{section}.{f.name}"
            if args.key and not (key == args.key or section == args.key):
                continue
            meta = f.metadata
            default = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
            limits = limits_text(meta)
            print(f"{key} = {default!r}{'  (' + limits + ')' if limits else ''}")
            print(textwrap.indent(textwrap.fill(meta["help"], 76), "    "))
            shown += 1
    if not shown:
        raise LoratuiError(f"no setting {args.key!r}: sections are {', '.join(SECTIONS)}")
    return 0


def limits_text(meta: dict) -> str:
    parts = []
    if meta["choices"]:
        parts.append(" | ".join(meta["choices"]))
    low, high = meta["minimum"], meta["maximum"]
    if low is not None:
        parts.append(f"{_number(low)} to {_number(high)}" if high is not None else f"{_number(low)} or more")
    if meta["multiple_of"]:
        parts.append(f"multiple of {meta['multiple_of']}")
    if meta["auto"]:
        parts.append('or "auto"')
    if meta["required"]:
        parts.append("required")
    return ", ".join(parts)


def _number(bound: float) -> str:
    """A limit as a person reads it: whole numbers in full (4,294,967,295, not 4.29497e+09), grouped by
    thousands from 10,000 on; other numbers short (1e-08, 0.001)."""
    if isinstance(bound, int):
        return f"{bound:,}" if abs(bound) >= 10_000 else str(bound)
    return f"{bound:g}"
