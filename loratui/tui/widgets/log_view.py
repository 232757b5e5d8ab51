"""The Train step's log (design §4.5): the job's last lines, following the end; scrolling up pauses following
(the title says so), `end` follows again, and the view switches between every line and warnings only. It holds at
most :data:`~loratui.tui.widgets.train_feed.LOG_LINES` lines of each kind, however long the run."""

from __future__ import annotations

from collections import deque

from textual.binding import Binding
from textual.widgets import Log

from loratui.tui.widgets.train_feed import LOG_LINES, LogLine


class TrainLog(Log):
    BINDINGS = [
        Binding("up", "scroll_back('line')", "Scroll", show=False),
        Binding("pageup", "scroll_back('page')", "Page up", show=False),
        Binding("home", "scroll_back('home')", "Top", show=False),
        Binding("down", "scroll_on('line')", "Scroll", show=False),
        Binding("pagedown", "scroll_on('page')", "Page down", show=False),
        Binding("end", "follow", "Follow", show=False),  # the screen's footer names it
    ]

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(max_lines=LOG_LINES, auto_scroll=True, id=id)
        self.every: deque[LogLine] = deque(maxlen=LOG_LINES)
        self.warnings: deque[LogLine] = deque(maxlen=LOG_LINES)
        self.warnings_only = False
        self.following = True

    # --- lines ------------------------------------------------------------------------------------------------

    def add(self, lines: list[LogLine]) -> None:
        self.every.extend(lines)
        self.warnings.extend(line for line in lines if line.warning)
        shown = [line.text for line in lines if line.warning or not self.warnings_only]
        if shown:
            self.write_lines(shown, scroll_end=self.following)

    def restart(self) -> None:
        """A new job: its lines start the log over."""
        self.every.clear()
        self.warnings.clear()
        self.clear()

    def toggle_warnings(self) -> bool:
        self.warnings_only = not self.warnings_only
        self.clear()
        source = self.warnings if self.warnings_only else self.every
        self.write_lines([line.text for line in source], scroll_end=self.following)
        self._title()
        return self.warnings_only

    # --- following --------------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._title()

    def _title(self) -> None:
        parent = self.parent
        if parent is None:
            return
        view = "warnings only (^t all)" if self.warnings_only else "all lines"
        parent.border_title = f"Log, {view}, {'following' if self.following else 'paused: end follows'}"

    def set_following(self, following: bool) -> None:
        if following != self.following:
            self.following = following
            self.auto_scroll = following
            self._title()

    def action_scroll_back(self, how: str) -> None:
        self.set_following(False)
        {"line": self.scroll_up, "page": self.scroll_page_up, "home": self.scroll_home}[how](animate=False)

    def action_scroll_on(self, how: str) -> None:
        (self.scroll_down if how == "line" else self.scroll_page_down)(animate=False)

    def action_follow(self) -> None:
        self.set_following(True)
        self.scroll_end(animate=False)

    def on_mouse_scroll_up(self) -> None:
        self.set_following(False)
