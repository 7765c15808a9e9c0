"""Input problems are collected, never raised one at a time: a user fixes everything in one pass."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input: the file it concerns and what is wrong with it."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


class InputError(Exception):
    """Bad input; carries every problem found so the CLI can list them all and exit 1."""

    def __init__(self, problems: Iterable[Problem] | Problem | str, path: str | None = None):
        if isinstance(problems, str):
            problems = [Problem(path or "", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))
