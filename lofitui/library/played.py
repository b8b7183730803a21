"""Track history: the tracks played in this session and earlier ones, newest first.

Kept in ``played.json`` in the state directory (written atomically, at most ``limit`` tracks):
each track's request (which gives its cache key, and regenerates it exactly if the cache has
evicted its audio), when it was last played, and the listener's marks (saved, liked). A track
played again moves to the top. Without the file (the first run with it), the tracks the cache
has seen played are imported from the cache's sidecars.

Not to be confused with the prompt history (:mod:`lofitui.tui.history`): that one holds typed text.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lofitui import paths
from lofitui.atomic import write_json_atomic
from lofitui.engines.base import TrackRequest
from lofitui.library.cache import TrackCache
from lofitui.library.space import write_error

log = logging.getLogger(__name__)

MAX_ENTRIES = 500
FILE_VERSION = 1

__all__ = ["MAX_ENTRIES", "BackStack", "PlayHistory", "PlayedTrack", "played_file"]


def played_file() -> Path:
    return paths.state_dir() / "played.json"


@dataclass(frozen=True)
class PlayedTrack:
    """One played track: what made it, when it was last played, and the listener's marks.

    ``liked``: True liked, False disliked, None neither.
    """

    request: TrackRequest
    played_at: float
    saved: bool = False
    liked: bool | None = None
    key: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.request.key)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "request": self.request.to_dict(),
            "played_at": self.played_at,
            "saved": self.saved,
            "liked": self.liked,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlayedTrack:
        liked = data.get("liked")
        return cls(
            request=TrackRequest.from_dict(data["request"]),
            played_at=float(data["played_at"]),
            saved=bool(data.get("saved", False)),
            liked=liked if isinstance(liked, bool) else None,
        )


class PlayHistory:
    """Played tracks, newest first, one entry per track, at most ``limit``.

    Thread-safe: the scheduler changes it on the event loop and writes it (:meth:`save`) off it.
    Changes are in memory until :meth:`save`; with ``path`` None nothing is written.
    """

    def __init__(
        self,
        entries: Iterable[PlayedTrack] = (),
        path: Path | None = None,
        limit: int = MAX_ENTRIES,
    ) -> None:
        if limit < 1:
            raise ValueError(f"history limit must be >= 1 (got {limit})")
        self.path = path
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: dict[str, PlayedTrack] = {}  # oldest first (insertion order)
        for entry in sorted(entries, key=lambda e: e.played_at):
            self._put(entry)

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        *,
        cache: TrackCache | None = None,
        limit: int = MAX_ENTRIES,
    ) -> PlayHistory:
        """The history in ``path`` (default: the state directory's ``played.json``).

        A missing file imports what ``cache`` has seen played; an unreadable one starts empty
        (logged, and replaced at the next save).
        """
        path = path or played_file()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            found = cache.played_tracks() if cache is not None else []
            return cls((PlayedTrack(t.request, at) for t, at in found), path, limit)
        except (OSError, ValueError) as exc:
            log.warning("track history unreadable, starting afresh: %s", exc)
            return cls((), path, limit)
        return cls(_parse(data), path, limit)

    # -- reading ---------------------------------------------------------------------------------

    @property
    def entries(self) -> list[PlayedTrack]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._entries.values()))

    def get(self, key: str) -> PlayedTrack | None:
        with self._lock:
            return self._entries.get(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    # -- changes ---------------------------------------------------------------------------------

    def record(
        self, request: TrackRequest, *, played_at: float | None = None, saved: bool = False
    ) -> PlayedTrack:
        """``request``'s track was played (now, unless ``played_at``): it becomes the newest.
        Its marks are kept; ``saved`` only ever sets the saved mark."""
        with self._lock:
            old = self._entries.pop(request.key, None)
            entry = PlayedTrack(
                request,
                time.time() if played_at is None else played_at,
                saved=saved or bool(old and old.saved),
                liked=old.liked if old else None,
            )
            self._put(entry)
            return entry

    def mark_saved(self, key: str) -> bool:
        """Mark ``key`` saved; False if it is not in the history."""
        return self._update(key, saved=True)

    def set_liked(self, key: str, liked: bool | None) -> bool:
        """Set ``key``'s like mark (True, False: disliked, None: neither); False if unknown."""
        return self._update(key, liked=liked)

    def save(self) -> None:
        """Write the history atomically; a failure (a full disk) is logged, never raised."""
        if self.path is None:
            return
        with self._lock:  # held while writing: the last write always has the newest state
            data = {
                "version": FILE_VERSION,
                "tracks": [e.to_json() for e in reversed(self._entries.values())],
            }
            try:
                write_json_atomic(self.path, data)
            except OSError as exc:
                log.warning("track history not written: %s", write_error(exc, self.path.parent))

    # -- internals -------------------------------------------------------------------------------

    def _put(self, entry: PlayedTrack) -> None:
        self._entries.pop(entry.key, None)
        self._entries[entry.key] = entry
        while len(self._entries) > self.limit:
            del self._entries[next(iter(self._entries))]

    def _update(self, key: str, **changes: Any) -> bool:
        with self._lock:
            old = self._entries.get(key)
            if old is None:
                return False
            self._entries[key] = replace(old, **changes)  # same place: marks are not plays
            return True


def _parse(data: Any) -> list[PlayedTrack]:
    """The entries of a history file; broken ones are skipped (logged)."""
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
        log.warning("track history has an unknown format, starting afresh")
        return []
    entries = []
    for item in data.get("tracks") or []:
        try:
            entries.append(PlayedTrack.from_json(item))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("skipping a broken track history entry: %s", exc)
    return entries


class BackStack:
    """The tracks heard before the one playing, oldest first: where going back (``b``) leads.

    Seeded with the history, so going back reaches earlier sessions. Every track that starts
    is pushed; :meth:`previous` takes the track before ``now`` off the stack (and ``now``'s own
    entry: it is pushed again when it plays again).
    """

    def __init__(self, history: PlayHistory) -> None:
        self.limit = history.limit
        self._requests = [e.request for e in reversed(history.entries)]

    def __len__(self) -> int:
        return len(self._requests)

    def push(self, request: TrackRequest) -> None:
        """``request``'s track starts (the same track again, from its start, counts once)."""
        if self._requests and self._requests[-1].key == request.key:
            return
        self._requests.append(request)
        del self._requests[: -self.limit]

    def previous(self, now: TrackRequest | None) -> TrackRequest | None:
        """The track heard before ``now`` (None: nothing plays), taken off the stack; None at
        the start of the history (the stack is left as it was)."""
        i = len(self._requests) - 1
        if now is not None and i >= 0 and self._requests[i].key == now.key:
            i -= 1
        if i < 0:
            return None
        previous = self._requests[i]
        del self._requests[i:]
        return previous
