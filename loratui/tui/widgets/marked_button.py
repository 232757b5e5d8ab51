"""A Button whose focus shows without colour (design §2.10): the focused one reads ``▸ Quit``, the others
``  Stay``, so a NO_COLOR terminal or a text capture still tells which one enter presses. Under ``--ascii`` the
app's stylesheet drops Textual's half-block button edges (ambiguous width in CJK terminals) and the label is
bracketed instead."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Button


class MarkedButton(Button):
    def __init__(self, label: str, *, id: str | None = None, variant: str = "default") -> None:  # noqa: A002
        super().__init__(label, id=id, variant=variant)  # type: ignore[arg-type]
        self.text = label

    def on_mount(self) -> None:
        self._mark(self.has_focus)

    def on_focus(self) -> None:
        self._mark(True)

    def on_blur(self) -> None:
        self._mark(False)

    def _mark(self, focused: bool) -> None:
        glyphs = getattr(self.app, "glyphs", None)
        cursor = glyphs.cursor if glyphs is not None else ">"
        mark = cursor if focused else " "
        text = f"[{self.text}]" if getattr(self.app, "ascii_only", False) else self.text
        self.label = Text(f"{mark} {text}")  # a Text: brackets are not markup
