"""How much each model slows down within a track, remembered across sessions.

The scheduler's start rule predicts when a streamed track will be complete; MusicGen's steps
cost more the later they are in a window, so a rate measured early overstates the rest. The
scheduler learns each model's slowdown from its finished tracks (``scheduler._Pace``); kept
here, in ``paths.state_dir() / "paces.json"``, the first track of the next session starts from
it instead of from nothing. Written atomically; an unreadable file is a fresh start.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path

from lofitui import paths
from lofitui.atomic import write_json_atomic


class Paces:
    """Learned slowdowns by lane (engine, model, setup); in memory only without a path."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()  # each model's worker thread learns on its own
        self._by_lane: dict[str, float] = {}
        if path is not None:
            with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
                data = json.loads(path.read_text(encoding="utf-8"))
                self._by_lane = {
                    str(k): float(v)
                    for k, v in data.get("slowdown", {}).items()
                    if math.isfinite(float(v)) and float(v) >= 0
                }

    @classmethod
    def load(cls) -> Paces:
        return cls(paths.state_dir() / "paces.json")

    @staticmethod
    def _key(lane: Sequence[str]) -> str:
        return "|".join(lane)

    def slowdown(self, lane: Sequence[str]) -> float:
        """The lane's learned slowdown; 0 (a steady pace) until one is learned."""
        return self._by_lane.get(self._key(lane), 0.0)

    def learned(self, lane: Sequence[str], slowdown: float) -> None:
        """Keep ``slowdown`` for ``lane`` (saved at once; a failed save is not worth an error)."""
        with self._lock:
            self._by_lane[self._key(lane)] = slowdown
            if self.path is not None:
                with contextlib.suppress(OSError):
                    write_json_atomic(self.path, {"version": 1, "slowdown": dict(self._by_lane)})
