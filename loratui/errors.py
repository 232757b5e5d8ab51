"""User-facing errors: one line that names the file or field and what to do (CLI exit status 2)."""

from __future__ import annotations

from dataclasses import dataclass


class LoratuiError(Exception):
    """Bad input from the user: the CLI prints the message alone (no traceback) and exits with status 2."""


ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file or setting, formatted as ``file:line: key: message``.

    ``severity`` is ``"error"`` (blocks training: `loratui check` exits 2) or ``"warning"`` (worth knowing,
    printed as a ``warning:`` line, exit status unchanged).
    """

    file: str
    key: str
    message: str
    line: int | None = None
    severity: str = ERROR

    @property
    def is_warning(self) -> bool:
        return self.severity == WARNING

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ProblemsError(LoratuiError):
    """Several problems found at once; each is printed on its own line."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
