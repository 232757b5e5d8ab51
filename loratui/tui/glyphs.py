"""The few glyphs the wizard draws, each one cell wide in CJK terminals too; `--ascii` swaps them for plain
characters (design §2.10)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Glyphs:
    done: str = "✓"
    failed: str = "✗"
    cursor: str = "▸"
    sep: str = "›"
    running: str = "⟳"
    stopped: str = "▪"
    bar: str = "│"
    dot: str = "∙"
    on: str = "◉"  # a chosen radio button, the suggested grid cell
    changed: str = "✎"  # a setting that differs from the preset


UNICODE = Glyphs()
ASCII = Glyphs(done="v", failed="x", cursor=">", sep=">", running="~", stopped="*", bar="|", dot="-", on="*",
               changed="*")
