"""The command palette's wizard commands (design §2.6): every step, help, the shell line of this step, quit."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from loratui.tui.steps import STEPS

if TYPE_CHECKING:
    from loratui.tui.app import WizardApp


Command = tuple[str, str, Callable[[], object]]  # title, help line, what it does


class ListedCommands(Provider):
    """A palette provider over a plain list of commands: subclasses only say which (:meth:`_commands`)."""

    def _commands(self) -> list[Command]:
        raise NotImplementedError

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class WizardCommands(ListedCommands):
    def _commands(self) -> list[Command]:
        app = cast("WizardApp", self.app)
        found: list[Command] = []
        for step in STEPS:
            found.append((f"Go to step {step.number}: {step.name}", f"^g {step.number} - {step.purpose}",
                          lambda n=step.number: app.go_to(n)))
        if app.project is not None:
            found.append(("Copy this step as a shell command", "shown in the status line",
                          app.action_show_command))
        found.append(("Show the last message in full", "the status line's message and the job's reason",
                      app.action_show_message))
        found.append(("Help", "? or f1: this screen's keys", app.action_help))
        found.append(("Quit", "^q; jobs keep running", app.action_quit_wizard))
        return found
