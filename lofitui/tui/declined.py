"""Model downloads the listener declined: not offered again at start-up until asked from the app."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from lofitui import paths
from lofitui.atomic import write_json_atomic


def declined_file() -> Path:
    return paths.state_dir() / "declined-downloads.json"


class DeclinedDownloads:
    """A small set of model names kept in the state directory (a failed write is not an error)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or declined_file()
        try:
            names = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            names = []
        self._names = {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()

    def __contains__(self, model: str) -> bool:
        return model in self._names

    def add(self, model: str) -> None:
        self._names.add(model)
        self._save()

    def discard(self, model: str) -> None:
        if model in self._names:
            self._names.discard(model)
            self._save()

    def _save(self) -> None:
        with contextlib.suppress(OSError):
            write_json_atomic(self.path, sorted(self._names))
