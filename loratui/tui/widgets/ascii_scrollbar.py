"""`--ascii` scrollbars (design §2.10): Textual draws the thumb's ends with eighth blocks (▁▂… ▉▊…), which are
ambiguous-width and turn two cells wide in CJK terminals, and the thumb itself only as reversed colour. This
renderer draws the thumb as ``#`` on a blank track, so it is one cell wide everywhere and shows without colour."""

from __future__ import annotations

from rich.segment import Segment, Segments
from rich.style import Style
from textual.scrollbar import ScrollBarRender


class AsciiScrollBarRender(ScrollBarRender):
    VERTICAL_BARS = [" "] * 8
    HORIZONTAL_BARS = [" "] * 8

    @classmethod
    def render_bar(cls, *args, **kwargs) -> Segments:  # type: ignore[override]
        drawn = super().render_bar(*args, **kwargs)
        segments = []
        for segment in drawn.segments:
            style = segment.style
            if style is not None and style.reverse:  # the thumb
                segments.append(Segment("#" * len(segment.text), Style(meta=style.meta)))
            else:
                segments.append(segment)
        return Segments(segments, new_lines=drawn.new_lines)
