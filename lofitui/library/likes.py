"""Likes and dislikes, per station, kept in the state directory.

A *station* here is its prompt (spaces folded): a like keeps its track's whole request (engine,
model, prompt, seed, duration, engine parameters, a flow prime if it had one) and the station's
settings it was made with, so the track can be played again from the cache (or, if it was
evicted, generated again: the same request gives the same audio) and the station can go on in
its vein. A like may also keep the track's codes (MusicGen's EnCodec tokens) so that a later
track can continue from it after a restart. A dislike keeps the seed and the request key: the
station never generates that variation again.

Layout, in ``paths.state_dir() / "likes"``::

    likes.json          {"version": 1, "stations": {prompt: {"liked": [...], "disliked": [...]}}}
    codes/<key>.npy     a liked track's codes (optional)

Every file is written atomically. A damaged ``likes.json`` is moved aside (never overwritten)
and :attr:`Likes.problem` says so; a store made with no directory lives in memory only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from lofitui import paths
from lofitui.atomic import atomic_path, write_json_atomic
from lofitui.engines.base import ParamValue, TrackRequest
from lofitui.library.space import write_error

log = logging.getLogger(__name__)

VERSION = 1
FILE_NAME = "likes.json"

__all__ = ["Like", "Likes", "likes_dir", "station_key"]


def likes_dir() -> Path:
    return paths.state_dir() / "likes"


def station_key(prompt: str) -> str:
    """The station a track belongs to: its prompt, with runs of spaces folded."""
    return " ".join(prompt.split())


@dataclass(frozen=True)
class Like:
    """One liked track: the request that made it, and its station's settings at the time.

    ``params`` are the station's engine parameters (the request's, less any flow prime).
    """

    request: TrackRequest
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    liked_at: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def key(self) -> str:
        """The track's cache key (``TrackRequest.key``)."""
        return self.request.key

    @property
    def seed(self) -> int:
        return self.request.seed

    @property
    def station(self) -> str:
        return station_key(self.request.prompt)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "request": self.request.to_dict(),
            "params": dict(self.params),
            "liked_at": self.liked_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Like:
        like = cls(
            TrackRequest.from_dict(data["request"]),
            dict(data.get("params") or {}),
            float(data.get("liked_at") or 0.0),
        )
        if data.get("key") != like.key:
            raise ValueError("the key does not match the request")
        return like


@dataclass
class _Station:
    liked: dict[str, Like] = field(default_factory=dict)  # key -> like, oldest first
    disliked_seeds: set[int] = field(default_factory=set)
    disliked_keys: set[str] = field(default_factory=set)
    disliked: list[dict[str, Any]] = field(default_factory=list)  # as saved: seed, key, at


class Likes:
    """The listener's likes and dislikes; changes are saved at once.

    A change that cannot be saved still holds for this run: the method raises a one-line
    :class:`~lofitui.errors.LofiError` after making it. Used from one thread (the event loop).
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.problem: str | None = None  # why the saved likes could not be read, if so
        self._stations: dict[str, _Station] = {}
        self._by_key: dict[str, Like] = {}
        if directory is not None:
            self._read(directory / FILE_NAME)

    @classmethod
    def load(cls) -> Likes:
        """The likes kept in the state directory."""
        return cls(likes_dir())

    # -- reading --------------------------------------------------------------------------------

    def is_liked(self, key: str) -> bool:
        return key in self._by_key

    def get(self, key: str) -> Like | None:
        return self._by_key.get(key)

    def liked_keys(self) -> list[str]:
        """Every liked track's cache key (all stations)."""
        return list(self._by_key)

    def liked(self, prompt: str) -> list[Like]:
        """The liked tracks of ``prompt``'s station, newest first."""
        station = self._stations.get(station_key(prompt))
        return list(reversed(station.liked.values())) if station else []

    def disliked_seeds(self, prompt: str) -> frozenset[int]:
        station = self._stations.get(station_key(prompt))
        return frozenset(station.disliked_seeds) if station else frozenset()

    def is_disliked(self, request: TrackRequest) -> bool:
        """Whether ``request``'s seed, or the request itself, was disliked on its station."""
        station = self._stations.get(station_key(request.prompt))
        if station is None:
            return False
        return request.seed in station.disliked_seeds or request.key in station.disliked_keys

    def codes(self, key: str) -> np.ndarray | None:
        """A liked track's kept codes, or None (not liked, none kept, or unreadable)."""
        if key not in self._by_key or self.directory is None:
            return None
        path = self._codes_path(key)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("liked track %s: codes unreadable: %s", key[:12], exc)
            return None

    def has_codes(self, key: str) -> bool:
        return self.directory is not None and self._codes_path(key).is_file()

    # -- changes --------------------------------------------------------------------------------

    def like(
        self,
        request: TrackRequest,
        params: Mapping[str, ParamValue],
        codes: np.ndarray | None = None,
    ) -> Like:
        """Like the track ``request`` made (again: the first like is kept)."""
        existing = self._by_key.get(request.key)
        if existing is not None:
            return existing
        like = Like(request, params, time.time())
        self._station(like.station).liked[like.key] = like
        self._by_key[like.key] = like
        if codes is not None:
            self.keep_codes(like.key, codes)
        self._save()
        return like

    def unlike(self, key: str) -> bool:
        """Forget a like; whether there was one."""
        if not self._forget(key):
            return False
        self._save()
        return True

    def dislike(self, request: TrackRequest) -> bool:
        """Never generate ``request``'s seed (or the request) again on its station; a like of
        it is dropped. Whether it was liked."""
        key = request.key
        was_liked = self._forget(key)
        station = self._station(station_key(request.prompt))
        if key not in station.disliked_keys:
            station.disliked_seeds.add(request.seed)
            station.disliked_keys.add(key)
            station.disliked.append({"seed": request.seed, "key": key, "at": time.time()})
        self._save()
        return was_liked

    def keep_codes(self, key: str, codes: np.ndarray) -> None:
        """Keep a liked track's codes, so a track can continue from it after a restart."""
        if key not in self._by_key or self.directory is None:
            return
        path = self._codes_path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(codes), allow_pickle=False)
        except OSError as exc:  # only continuing from it after a restart is lost
            log.warning("liked track %s: codes not kept: %s", key[:12], exc)

    def _forget(self, key: str) -> bool:
        """Drop a like and its codes (not saved yet); whether there was one."""
        like = self._by_key.pop(key, None)
        if like is None:
            return False
        self._stations[like.station].liked.pop(key, None)
        if self.directory is not None:
            with contextlib.suppress(OSError):
                self._codes_path(key).unlink(missing_ok=True)
        return True

    # -- files ----------------------------------------------------------------------------------

    def _station(self, name: str) -> _Station:
        station = self._stations.get(name)
        if station is None:
            station = self._stations[name] = _Station()
        return station

    def _codes_path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / "codes" / f"{key}.npy"

    def _save(self) -> None:
        if self.directory is None:
            return
        data = {
            "version": VERSION,
            "stations": {
                name: {
                    "liked": [like.to_json() for like in station.liked.values()],
                    "disliked": station.disliked,
                }
                for name, station in self._stations.items()
                if station.liked or station.disliked
            },
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.directory / FILE_NAME, data)
        except OSError as exc:
            raise write_error(exc, self.directory, " (likes kept for this session only)") from None

    def _read(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self._set_aside(path, str(exc))
            return
        try:
            if data.get("version") != VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            for name, entry in data["stations"].items():
                self._read_station(str(name), entry)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            self._stations.clear()
            self._by_key.clear()
            self._set_aside(path, str(exc))

    def _read_station(self, name: str, entry: Mapping[str, Any]) -> None:
        station = self._station(name)
        for item in entry.get("liked") or []:
            like = Like.from_json(item)
            station.liked[like.key] = like
            self._by_key[like.key] = like
        for item in entry.get("disliked") or []:
            seed, key = int(item["seed"]), str(item["key"])
            station.disliked_seeds.add(seed)
            station.disliked_keys.add(key)
            station.disliked.append({"seed": seed, "key": key, "at": float(item.get("at", 0))})

    def _set_aside(self, path: Path, reason: str) -> None:
        """Move a damaged likes file out of the way (never overwrite what may be recovered)."""
        aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
        try:
            path.replace(aside)
        except OSError:
            self.directory = None  # cannot move it: do not write over it either
            self.problem = f"cannot read your likes ({reason}); likes are kept for this run only"
            return
        self.problem = f"your likes file was damaged ({reason}): set aside as {aside.name}"
        log.warning("likes: %s", self.problem)
