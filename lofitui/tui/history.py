"""Prompt history: the prompts typed in the app, newest last, kept in the state directory."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from lofitui import paths
from lofitui.atomic import write_bytes_atomic

MAX_ENTRIES = 200


def history_file() -> Path:
    return paths.state_dir() / "prompt-history.txt"


class PromptHistory:
    """A list of prompts with a cursor for Up/Down browsing; duplicates move to the end."""

    def __init__(self, entries: Iterable[str] = (), path: Path | None = None) -> None:
        self.path = path
        self.entries: list[str] = []
        for entry in entries:
            self._add(entry)
        self._cursor = len(self.entries)

    @classmethod
    def load(cls, seed: Iterable[str] = (), path: Path | None = None) -> PromptHistory:
        """``seed`` (the configured prompts) first, then what was typed in earlier runs."""
        path = path or history_file()
        try:
            saved = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            saved = []
        return cls([*reversed(list(seed)), *saved], path)

    def _add(self, prompt: str) -> None:
        prompt = " ".join(prompt.split())
        if not prompt:
            return
        if prompt in self.entries:
            self.entries.remove(prompt)
        self.entries.append(prompt)
        del self.entries[:-MAX_ENTRIES]

    def add(self, prompt: str) -> None:
        """Record a submitted prompt and save (a failed save is not worth an error)."""
        self._add(prompt)
        self._cursor = len(self.entries)
        if self.path is not None:
            with contextlib.suppress(OSError):
                write_bytes_atomic(self.path, ("\n".join(self.entries) + "\n").encode())

    def previous(self) -> str | None:
        if not self.entries:
            return None
        self._cursor = max(0, self._cursor - 1)
        return self.entries[self._cursor]

    def next(self) -> str | None:
        """The newer entry, or None past the newest (back to an empty line)."""
        self._cursor = min(len(self.entries), self._cursor + 1)
        return self.entries[self._cursor] if self._cursor < len(self.entries) else None

    @property
    def browsing(self) -> bool:
        """True while Up/Down has moved away from the (empty) newest line."""
        return self._cursor < len(self.entries)

    def reset(self) -> None:
        self._cursor = len(self.entries)
