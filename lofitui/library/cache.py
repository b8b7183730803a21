"""The track cache (WAV + sidecar JSON + index), and saving a cached track to the music folder.

Cache layout, in ``paths.cache_dir()``::

    <key>.wav       the audio (32-bit float WAV), key = ``TrackRequest.key`` (SHA-256)
    <key>.json      sidecar: the request, duration, saved flag and the generation metadata
    index.json      size, duration, created/played times and saved flag of every track

Every file is written atomically (temp file + rename), so a crash leaves either the old state or
the new one. The index is a fast summary; the sidecars are the truth: a lost or corrupt index is
rebuilt from them, and orphans left by a crash (a WAV without sidecar, stale temp files) are
removed when the cache is opened. A truncated or corrupt WAV is detected when read, dropped, and
reported as a miss (``get``) or :class:`CorruptAudioError` (``load_audio``) so the caller
regenerates it: it is never played as noise.

Beyond ``cap_bytes`` the least recently used tracks (last played, or created if never played)
are evicted; saved tracks and pinned ones (queued or playing right now) never are.

A full disk never costs a track: :meth:`TrackCache.put` evicts what it may to make room and
tries once more; if the track still cannot be written it is kept in memory only (its
:class:`CachedTrack` holds the audio, which plays and saves as a stored one does) and
:attr:`TrackCache.write_problem` says why, until a later write succeeds. A failed index write
is logged and skipped: the sidecars are the truth.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lofitui import paths
from lofitui.atomic import write_json_atomic
from lofitui.audio.types import Audio
from lofitui.audio.wav import CorruptAudioError, read_wav, write_wav
from lofitui.engines.base import TrackRequest
from lofitui.library.files import track_stem, write_new_pair
from lofitui.library.space import is_disk_full, write_error

log = logging.getLogger(__name__)

DEFAULT_CAP_BYTES = 2 * 1024**3
INDEX_NAME = "index.json"
INDEX_VERSION = 1
SIDECAR_VERSION = 1
STALE_TEMP_S = 600.0  # temp files older than this are leftovers of a crash
_TEMP_SUFFIXES = (".part", ".tmp")

__all__ = [
    "CachedTrack",
    "CorruptAudioError",
    "TrackCache",
    "save_track",
]


@dataclass(frozen=True)
class CachedTrack:
    """A track in the cache: its key, WAV path, the request that made it and its metadata.

    ``audio`` is set only for a track the cache could not write (a full disk): it lives in
    memory, and ``path`` is where it would have been stored.
    """

    key: str
    path: Path
    request: TrackRequest
    duration_s: float
    metadata: dict
    audio: Audio | None = field(default=None, compare=False, repr=False)

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def stored(self) -> bool:
        """Whether the track is on disk (False: in memory only, see ``audio``)."""
        return self.audio is None


@dataclass
class _Entry:
    """One track's line in the index."""

    bytes: int
    duration_s: float
    created: float
    played: float | None = None
    saved: bool = False

    @property
    def last_used(self) -> float:
        return max(self.created, self.played or 0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "duration_s": self.duration_s,
            "created": self.created,
            "played": self.played,
            "saved": self.saved,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Entry:
        played = data.get("played")
        return cls(
            bytes=int(data["bytes"]),
            duration_s=float(data["duration_s"]),
            created=float(data["created"]),
            played=None if played is None else float(played),
            saved=bool(data.get("saved", False)),
        )


class TrackCache:
    """Generated tracks keyed by request, with a persistent index and an LRU size cap.

    Thread-safe: the scheduler writes from worker threads and reads from the event loop.
    """

    def __init__(self, root: Path | None = None, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        if cap_bytes < 0:
            raise ValueError(f"cache cap must be >= 0 bytes (got {cap_bytes})")
        self.root = Path(root) if root is not None else paths.cache_dir()
        self.cap_bytes = int(cap_bytes)
        self._lock = threading.RLock()
        self._pinned: dict[str, int] = {}
        self._last_stamp = 0.0
        self.write_problem: str | None = None  # why the last track was not stored, if it was not
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # tracks will live in memory; playing does not need the cache
            self.write_problem = self._problem(exc)
            log.warning("track cache unavailable: %s", self.write_problem)
        self._entries: dict[str, _Entry] = self._open()

    # -- lookups --------------------------------------------------------------------------------

    def wav_path(self, key: str) -> Path:
        return self.root / f"{key}.wav"

    def sidecar_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(e.bytes for e in self._entries.values())

    def is_saved(self, key: str) -> bool:
        with self._lock:
            entry = self._entries.get(key)
            return bool(entry and entry.saved)

    def get(self, request: TrackRequest) -> CachedTrack | None:
        """The cached track for ``request`` after checking its WAV; None on a miss.

        A track whose WAV is missing, truncated or corrupt is dropped and reported as a miss.
        """
        found = self.fetch(request)
        return found[0] if found else None

    def fetch(self, request: TrackRequest) -> tuple[CachedTrack, Audio] | None:
        """Like :meth:`get`, and also return the audio it read to check the file."""
        key = request.key
        with self._lock:
            if key not in self._entries:
                return None
            try:
                track = self._track(key, request)
                audio = read_wav(track.path)
            except (CorruptAudioError, OSError, ValueError, KeyError) as exc:
                log.warning("dropping cached track %s: %s", key[:12], exc)
                self._drop(key)
                return None
        return track, audio

    def track(self, key: str) -> CachedTrack | None:
        """The cached track ``key`` from its sidecar, without reading its audio (a damaged WAV
        shows when it is read); None if it is not cached or its sidecar is broken."""
        with self._lock:
            if key not in self._entries:
                return None
            try:
                return self._track(key)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("dropping cached track %s: %s", key[:12], exc)
                self._drop(key)
                return None

    def played_tracks(self) -> list[tuple[CachedTrack, float]]:
        """Every cached track that was played, with when it last was, oldest first."""
        with self._lock:
            played = sorted(
                (entry.played, key) for key, entry in self._entries.items() if entry.played
            )
        found = []
        for at, key in played:
            track = self.track(key)
            if track is not None:
                found.append((track, at))
        return found

    def load_audio(self, track: CachedTrack) -> Audio:
        """Read a cached track's audio; a damaged file is dropped and CorruptAudioError raised."""
        if track.audio is not None:
            return track.audio
        try:
            return read_wav(track.path)
        except (CorruptAudioError, OSError) as exc:
            with self._lock:
                self._drop(track.key)
            if isinstance(exc, CorruptAudioError):
                raise
            raise CorruptAudioError(f"{track.path.name}: cannot read ({exc})") from exc

    # -- changes --------------------------------------------------------------------------------

    def put(self, request: TrackRequest, audio: Audio, metadata: dict) -> CachedTrack:
        """Store ``audio`` for ``request`` (WAV, then sidecar, then index; each atomic), evict.

        Never fails for want of room: on a full disk the least recently used tracks are evicted
        and the write tried once more, and a track that still cannot be written (or fails for
        any other OS reason) comes back in memory only, with :attr:`write_problem` set.
        """
        key = request.key
        with self._lock:
            try:
                self._write(request, audio, metadata)
            except OSError as exc:
                if not (is_disk_full(exc) and self._make_room(_wav_size(audio))):
                    return self._unstored(request, audio, metadata, exc)
                try:
                    self._write(request, audio, metadata)
                except OSError as again:
                    return self._unstored(request, audio, metadata, again)
            self.write_problem = None
            wav = self.wav_path(key)
            old = self._entries.get(key)
            self._entries[key] = _Entry(
                bytes=wav.stat().st_size,
                duration_s=audio.duration_s,
                created=self._stamp(),
                played=old.played if old else None,
                saved=bool(old and old.saved),
            )
            self._evict(protect={key})
            self._save_index()
            return CachedTrack(key, wav, request, audio.duration_s, dict(metadata))

    def _write(self, request: TrackRequest, audio: Audio, metadata: dict) -> None:
        """The track's WAV and sidecar, both or neither."""
        key = request.key
        wav = self.wav_path(key)
        write_wav(wav, audio)
        try:
            sidecar = self._sidecar(key, request, audio.duration_s, metadata)
            write_json_atomic(self.sidecar_path(key), sidecar)
        except BaseException:
            wav.unlink(missing_ok=True)
            raise

    def _problem(self, exc: OSError) -> str:
        """What the user is told when the cache cannot write (``disk full: <dir>``...)."""
        return f"disk full: {self.root}" if is_disk_full(exc) else str(write_error(exc, self.root))

    def _make_room(self, needed: int) -> bool:
        """Evict least recently used tracks until ``needed`` bytes are freed; whether any was."""
        evicted = self._evict_lru(needed, protect=set())
        if evicted:
            log.info("disk full: evicted %d cached tracks to make room", len(evicted))
            self._save_index()
        return bool(evicted)

    def _unstored(
        self, request: TrackRequest, audio: Audio, metadata: dict, exc: OSError
    ) -> CachedTrack:
        """The track in memory only: the cache could not write it (``exc``)."""
        self.write_problem = self._problem(exc)
        log.warning("track %s kept in memory only: %s", request.key[:12], exc)
        key = request.key
        return CachedTrack(
            key, self.wav_path(key), request, audio.duration_s, dict(metadata), audio=audio
        )

    def touch_played(self, key: str) -> None:
        """Record that ``key`` was just played (it becomes the most recently used)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.played = self._stamp()
            self._save_index()

    def mark_saved(self, key: str) -> None:
        """Protect ``key`` from eviction for good (it was saved by the listener)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.saved:
                return
            entry.saved = True
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(self.sidecar_path(key).read_text())
                data["saved"] = True
                write_json_atomic(self.sidecar_path(key), data)
            self._save_index()

    def pin(self, key: str) -> None:
        """Keep ``key`` from eviction while it is in use (queued or playing); counted."""
        with self._lock:
            self._pinned[key] = self._pinned.get(key, 0) + 1

    def unpin(self, key: str) -> None:
        with self._lock:
            count = self._pinned.get(key, 0) - 1
            if count > 0:
                self._pinned[key] = count
            else:
                self._pinned.pop(key, None)

    def remove(self, key: str) -> None:
        """Delete one track (WAV, sidecar and index line); missing is fine."""
        with self._lock:
            self._drop(key)

    def evict(self) -> list[str]:
        """Drop least-recently-used tracks until the cache fits its cap; returns their keys."""
        with self._lock:
            evicted = self._evict(protect=set())
            if evicted:
                self._save_index()
            return evicted

    def save(self, track: CachedTrack, dest_dir: Path | None = None) -> Path:
        """:func:`save_track` plus :meth:`mark_saved` (the cached copy is then never evicted)."""
        path = save_track(track, dest_dir)
        if track.stored:
            self.mark_saved(track.key)
        return path

    # -- internals ------------------------------------------------------------------------------

    def _stamp(self) -> float:
        """A wall-clock time strictly after the previous one (LRU order needs no ties)."""
        now = max(time.time(), self._last_stamp + 1e-6)
        self._last_stamp = now
        return now

    def _track(self, key: str, request: TrackRequest | None = None) -> CachedTrack:
        data = json.loads(self.sidecar_path(key).read_text())
        if data.get("key") != key:
            raise ValueError("sidecar key does not match")
        stored = TrackRequest.from_dict(data["request"])
        if request is not None and stored.key != request.key:
            raise ValueError("sidecar request does not match")
        return CachedTrack(
            key=key,
            path=self.wav_path(key),
            request=request or stored,
            duration_s=float(data["duration_s"]),
            metadata=dict(data.get("metadata") or {}),
        )

    @staticmethod
    def _sidecar(
        key: str, request: TrackRequest, duration_s: float, metadata: dict
    ) -> dict[str, Any]:
        return {
            "version": SIDECAR_VERSION,
            "key": key,
            "request": request.to_dict(),
            "duration_s": duration_s,
            "saved": False,
            "metadata": metadata,
        }

    def _drop(self, key: str) -> None:
        self._entries.pop(key, None)
        self.wav_path(key).unlink(missing_ok=True)
        self.sidecar_path(key).unlink(missing_ok=True)
        self._save_index()

    def _evict(self, protect: set[str]) -> list[str]:
        """Evict least recently used tracks until the cache fits its cap."""
        excess = sum(e.bytes for e in self._entries.values()) - self.cap_bytes
        evicted = self._evict_lru(excess, protect) if excess > 0 else []
        if evicted:
            log.info("evicted %d cached tracks", len(evicted))
        return evicted

    def _evict_lru(self, needed: int, protect: set[str]) -> list[str]:
        """Drop least recently used tracks (never saved, pinned or ``protect``-ed ones) until
        ``needed`` bytes are freed or none is left to drop; their keys."""
        freed = 0
        evicted: list[str] = []
        for key, entry in sorted(self._entries.items(), key=lambda kv: kv[1].last_used):
            if freed >= needed:
                break
            if entry.saved or key in protect or key in self._pinned:
                continue
            self._entries.pop(key)
            self.wav_path(key).unlink(missing_ok=True)
            self.sidecar_path(key).unlink(missing_ok=True)
            freed += entry.bytes
            evicted.append(key)
        return evicted

    def _save_index(self) -> None:
        """Write the index; a failure (a full disk) is logged: the next open rebuilds it."""
        data = {
            "version": INDEX_VERSION,
            "tracks": {k: e.to_json() for k, e in self._entries.items()},
        }
        try:
            write_json_atomic(self.root / INDEX_NAME, data)
        except OSError as exc:
            log.warning("cache index not written: %s", write_error(exc, self.root))

    def _open(self) -> dict[str, _Entry]:
        """Read the index, reconcile it with the files, clean up what a crash left behind."""
        self._remove_stale_temps()
        entries = self._read_index()
        rebuilt = entries is None
        if entries is None:
            entries = {}
        wavs = {p.stem for p in self.root.glob("*.wav")}
        sidecars = {p.stem for p in self.root.glob("*.json") if p.name != INDEX_NAME}
        changed = rebuilt
        for key in list(entries):
            if key not in wavs or key not in sidecars:
                entries.pop(key)
                changed = True
        for key in wavs | sidecars:
            if key in entries:
                continue
            entry = self._entry_from_files(key) if key in wavs and key in sidecars else None
            if entry is None:  # an orphan: half of a write interrupted by a crash
                self.wav_path(key).unlink(missing_ok=True)
                self.sidecar_path(key).unlink(missing_ok=True)
            else:
                entries[key] = entry
            changed = True
        self._entries = entries
        stamps = [e.last_used for e in entries.values()]
        self._last_stamp = max(stamps, default=0.0)
        if changed:
            self._save_index()
        return entries

    def _read_index(self) -> dict[str, _Entry] | None:
        try:
            data = json.loads((self.root / INDEX_NAME).read_text())
            if data.get("version") != INDEX_VERSION:
                return None
            return {str(k): _Entry.from_json(v) for k, v in data["tracks"].items()}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("cache index unreadable, rebuilding it from the sidecars: %s", exc)
            return None

    def _entry_from_files(self, key: str) -> _Entry | None:
        try:
            data = json.loads(self.sidecar_path(key).read_text())
            if data.get("key") != key:
                return None
            stat = self.wav_path(key).stat()
            return _Entry(
                bytes=stat.st_size,
                duration_s=float(data["duration_s"]),
                created=stat.st_mtime,
                saved=bool(data.get("saved", False)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _remove_stale_temps(self) -> None:
        now = time.time()
        for path in self._temp_files():
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_TEMP_S:
                    path.unlink()

    def _temp_files(self) -> Iterator[Path]:
        for path in self.root.glob(".*"):
            if path.suffix in _TEMP_SUFFIXES:
                yield path


# ---------------------------------------------------------------------------------------------
# Saved tracks

_save_lock = threading.Lock()


def save_track(track: CachedTrack, dest_dir: Path | None = None) -> Path:
    """Copy ``track`` into ``dest_dir`` (default ``paths.music_dir()``) with its metadata.

    The name is readable and filesystem-safe (``<prompt-slug>-<seed>.wav`` plus a sidecar
    ``.json``). Saving the same track again returns the existing copy; a different track with
    the same name gets ``-2``, ``-3``... and nothing is ever overwritten. A track held in memory
    only (the cache was full) is written from its audio. A failed write leaves neither file and
    raises a one-line :class:`~lofitui.errors.LofiError` (``no space left on <dir>``...).
    """
    dest = Path(dest_dir) if dest_dir is not None else paths.music_dir()
    stem = track_stem(track.request)
    sidecar = {
        "key": track.key,
        "request": track.request.to_dict(),
        "duration_s": track.duration_s,
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "metadata": track.metadata,
    }
    with _save_lock:
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, dest) from None
        existing = _find_saved(dest, stem, track.key)
        if existing is not None:
            return existing
        if track.audio is None:
            read_wav(track.path)  # never save a damaged file (raises CorruptAudioError)
        try:
            return write_new_pair(dest, stem, lambda wav: _copy_audio(track, wav), sidecar)
        except OSError as exc:
            raise write_error(exc, dest) from None


def _copy_audio(track: CachedTrack, target: Path) -> None:
    """``track``'s audio into the new file ``target``: its cached WAV, or written from memory."""
    if track.audio is not None:
        write_wav(target, track.audio)
    else:
        shutil.copyfile(track.path, target)


def _find_saved(dest: Path, stem: str, key: str) -> Path | None:
    """A WAV in ``dest`` saved earlier from the track ``key`` (its sidecar names the key)."""
    for sidecar in sorted(dest.glob(f"{stem}*.json")):
        wav = sidecar.with_suffix(".wav")
        if not wav.is_file():
            continue
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if json.loads(sidecar.read_text()).get("key") == key:
                return wav
    return None


def _wav_size(audio: Audio) -> int:
    """The bytes a float WAV of ``audio`` takes (the 44-byte header and the samples)."""
    return 44 + audio.frames * audio.channels * 4
