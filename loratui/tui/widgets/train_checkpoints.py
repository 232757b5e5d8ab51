"""The Train step's checkpoints box (design §4.5): one row per LoRA file the run saved, ``▸`` on the highlighted
one (the newest unless moved), then the plain lines under them (``none yet``, the next one's ETA). Focusable:
up/down choose a checkpoint and enter opens it in Preview (the screen handles ``OptionList.OptionSelected``).
Styled to look like the plain lines it replaces: no border, no background, no scrollbar."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import OptionList
from textual.widgets.option_list import Option

from loratui.tui.widgets.train_feed import CheckpointRow
from loratui.tui.widgets.train_text import checkpoint_line


class CheckpointList(OptionList):
    DEFAULT_CSS = """
    CheckpointList, CheckpointList:focus {
        height: 1fr; max-height: 100%; border: none; padding: 0; background: transparent;
        background-tint: $foreground 0%; scrollbar-size-vertical: 0; scrollbar-size-horizontal: 0;
    }
    CheckpointList > .option-list--option { padding: 0; }
    CheckpointList > .option-list--option-highlighted, CheckpointList > .option-list--option-hover {
        color: $foreground; background: transparent; text-style: none;
    }
    CheckpointList:focus > .option-list--option-highlighted {
        text-style: bold; background: $block-cursor-blurred-background;
    }
    CheckpointList > .option-list--option-disabled { color: $foreground; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.rows: list[CheckpointRow] = []
        self._extra: list[str] = []
        self._wide = False
        self._mark = "▸"
        self._shown: list[str] = []

    def show(self, rows: Sequence[CheckpointRow], extra: Sequence[str], *, wide: bool, mark: str) -> None:
        """Show ``rows`` and the lines ``extra`` under them; the highlight stays on the newest row while it was
        there (so it follows a run that saves more), else on the row it was on."""
        at_end = self.highlighted is None or not self.rows or self.highlighted >= len(self.rows) - 1
        self.rows, self._extra, self._wide, self._mark = list(rows), list(extra), wide, mark
        if not self.rows:
            target = None
        elif at_end:
            target = len(self.rows) - 1
        else:
            target = min(self.highlighted or 0, len(self.rows) - 1)
        self._draw(target, follow=at_end)

    @property
    def lines(self) -> list[str]:
        """The lines shown, top to bottom."""
        return list(self._shown)

    @property
    def chosen(self) -> CheckpointRow | None:
        index = self.highlighted
        return self.rows[index] if index is not None and 0 <= index < len(self.rows) else None

    def _texts_for(self, target: int | None) -> list[str]:
        return [checkpoint_line(row, self._mark if i == target else " ", self._wide)
                for i, row in enumerate(self.rows)] + self._extra

    def _draw(self, target: int | None, *, follow: bool = False) -> None:
        lines = self._texts_for(target)
        if lines == self._shown and self.highlighted == target:
            return
        same_shape = len(lines) == len(self._shown) and len(self.rows) == len(
            [o for o in self.options if not o.disabled])
        if same_shape:
            for index, (old, new) in enumerate(zip(self._shown, lines, strict=True)):
                if old != new:
                    self.replace_option_prompt_at_index(index, new)
        else:
            self.set_options([Option(line, disabled=index >= len(self.rows)) for index, line in enumerate(lines)])
        self._shown = lines
        if target is not None and self.highlighted != target:
            self.highlighted = target
        if follow:
            self.scroll_end(animate=False, immediate=True)  # the newest rows and the ETA line, as before

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list is self and event.option_index < len(self.rows):
            self._draw(event.option_index)  # the mark moves with the highlight
