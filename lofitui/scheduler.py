"""The generative queue: keeps the next tracks of a station generated and hands them to the player.

The scheduler owns every job and its state (queued → generating → ready → playing → played, or
failed / cancelled); the TUI only renders :class:`JobInfo` snapshots and calls the intents.

Threads: the public methods and every subscriber callback run on the asyncio loop thread.
Generation runs in one worker thread per loaded model (so one job at a time per model), player
control calls in one ordered thread of their own, and player events are hopped onto the loop
with ``loop.call_soon_threadsafe``. Progress is coalesced in the worker (at most ~10
:class:`JobProgress` per second per job), so subscribers never slow generation down.

Rules:

- **Lookahead**: ``lookahead`` jobs of the current station are kept queued, generating or ready
  beyond the playing one, each with a fresh random seed (recorded in its request). Cache hits
  skip generation.
- **Play order**: queue order, except that a ready track never waits behind one still
  generating: it moves to the front and is handed to the player early, so playback is gapless.
- **Station change**: queued and generating jobs of the old station are cancelled (the engine
  stops within one step); ready ones leave the queue as *cancelled* but stay in the cache. The
  playing track plays on (its generation stops if it is still streaming, except in flow) until
  the new station's first track can play, which then takes over.
- **Hand-over** (:meth:`Scheduler.hand_over`, e.g. the built-in engine giving way to a model
  just downloaded): the new station's first track is generated while the old station keeps its
  lookahead and plays on; once that track can play, the old station's upcoming tracks are
  dropped and it follows the playing track at its end, so the switch falls on a track boundary.
- **Regenerate**: ``"next"`` replaces the upcoming track by a new seed; ``"current"`` generates
  a new seed for the playing track's station that takes over as soon as it is ready.
- **Cancel** removes one job (cancelling the playing one is a skip); **clear** cancels
  every upcoming job; both refill the lookahead with fresh seeds.
- **Volume, mute and pause** live in one :class:`~lofitui.audio.transport.Transport`, shared
  with whichever player plays (the real one's, or a new one); the properties read it.
- **History**: every track that starts is recorded in :attr:`Scheduler.played` (the app's
  is kept in the state directory, so it spans sessions). :meth:`Scheduler.back` plays the
  track heard before the one playing, from the cache (no generation; a track whose audio was
  evicted or never completed is generated again from its request: same seed, same audio); the
  track that was playing goes back to the front of the queue, so skipping forward returns to
  it (from its start, its generation carrying on if it was still streaming), and going back
  again walks further back. :meth:`Scheduler.play` plays any played track now; the one it
  replaces is finished as a skip is, and ``back`` returns to it. Neither cancels an upcoming
  track.
- **Failures** are reported (``JobChanged`` with state failed and the error, plus a
  ``Notice``) and the scheduler moves on; after ``max_failures`` failures in a row it stops
  generating until the station changes or the listener asks to regenerate or clear.
- **Streaming**: a job's audio reaches the player chunk by chunk as the engine yields it. It is
  handed over as soon as it can play without running dry (:func:`can_start`): with ``G``
  seconds generated of a ``T``-second track at ``r`` audio seconds per wall second, every chunk
  still to come must be predicted to arrive ``LEAD_S`` before the playhead reaches its start,
  and the whole track ``MARGIN_S`` before the playhead reaches its end:
  ``(T - G) / r <= ahead + T - MARGIN_S``, ``ahead`` being the time until the playhead reaches
  the track (0 when nothing plays). Engines stream chunks of at most ``CHUNK_S``, each at most
  as long as all the audio before it (MusicGen: 0.3, 0.3, 0.6, 1, 1, ... s), so faster than
  real time (1.5x or more) a track starts with its first chunk; slower, it starts later instead
  of stuttering. Engines whose chunks the model fixes (ACE-Step's VAE tiles, 5-10 s, each
  handed out as it is decoded) get the same rule with their longest chunk so far in place of
  ``CHUNK_S`` (and of ``MARGIN_S`` when longer): such a track starts before its last tile only
  when the whole track generates faster than real time. ``r`` is measured on the engine's
  progress since its first report, scaled to the track's length, so a track's fixed start-up
  (encoding the prompt, the first chunk's pipeline) does not count as slowness; the chunks' own
  pace when an engine reports none.
  The cache and the library only ever see complete tracks: a track is written when its
  generation ends, and skipping, cancelling or a station change stops its generation and
  leaves nothing. Saving a track still generating saves it once complete.
- **Loudness** (:mod:`lofitui.audio.loudness`): the chunks handed to the player are normalised
  in the worker as they come (a running gain that settles, then the true-peak limiter); the
  complete track is cached at its exact gain, so a cache hit plays at the same level, and one
  cached at another target (or before lofi normalised) is brought to this one when read.
- **Flow** (``flow=True``, engines with ``continuation_params``): each track is primed with the
  codes of the track before it, so a station plays as one continuous piece (tracks joined by a
  ``FLOW_JOIN_S`` crossfade, 0: gapless); a station change continues the playing track under
  the new prompt (its first track follows the playing one instead of taking over). A track
  that came from the cache has no codes (unless it is liked: a like keeps them), so the one
  after it starts afresh.
- **Steering**: ``like_current`` keeps the playing track's request and settings in the
  :class:`~lofitui.library.likes.Likes` store (pinned in the cache, so never evicted) and
  anchors the station on it: the next track generated for the station continues from it (on
  engines that continue; in flow the next one usually does already). ``play_liked`` plays a
  liked track again (a cache hit, or the same request generated again) as ``regenerate`` does,
  makes its settings the station's and lets the next track continue from it.
  ``dislike_current`` skips the playing track at once, drops what continues it from the queue,
  and its seed and request are never generated again for the station; in flow the next track
  continues the last track that was not disliked instead (or starts afresh).
- **No audio output**: a :class:`~lofitui.audio.player.Player` without a device (none at start,
  or lost: the sound server quit, headphones unplugged) plays on unheard on its clock and retries
  the default device every few seconds (``retry_audio`` asks at once); nothing is re-queued, and
  sound resumes where the clock is. ``has_audio_output`` is False meanwhile, a :class:`Notice`
  tells of the loss and the return, and :class:`OutputChanged` is passed on. With no player at
  all (``player=None``, PortAudio missing) or one that failed for good, a
  :class:`~lofitui.audio.silent.SilentPlayer` plays the queue silently in real time, so
  generating, skipping and saving work the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from lofitui.audio.events import (
    Level,
    NowPlaying,
    OutputChanged,
    PlayerError,
    PlayerEvent,
    TrackFinished,
    TrackStarted,
)
from lofitui.audio.loudness import Loudness, warm_up
from lofitui.audio.silent import SilentPlayer
from lofitui.audio.transport import Transport
from lofitui.audio.types import Audio
from lofitui.engines.base import CancelToken, Engine, Progress, TrackRequest
from lofitui.errors import Cancelled, LofiError
from lofitui.events import (
    JobChanged,
    JobInfo,
    JobProgress,
    JobState,
    Notice,
    SchedulerEvent,
    Severity,
    Station,
    StationChanged,
    TrackSaved,
)
from lofitui.library import CachedTrack, CorruptAudioError, TrackCache, track_metadata
from lofitui.library.likes import Likes
from lofitui.library.paces import Paces
from lofitui.library.played import BackStack, PlayHistory

if TYPE_CHECKING:
    from lofitui.audio.player import Player

__all__ = [
    "JobChanged",
    "JobInfo",
    "JobProgress",
    "JobState",
    "Level",
    "Notice",
    "NowPlaying",
    "OutputChanged",
    "Scheduler",
    "SchedulerEvent",
    "Station",
    "StationChanged",
    "TrackSaved",
]

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.1  # at most ~10 JobProgress (and streaming JobChanged) per second per job
LEAD_S = 0.1  # each streamed chunk is predicted to arrive this long before the playhead needs it
# A streamed track is predicted to be complete this long before the playhead ends; can_start
# relies on MARGIN_S >= CHUNK_S + LEAD_S.
MARGIN_S = 1.5
CHUNK_S = 1.0  # the longest chunk engines stream (each is also at most the audio before it)
FLOW_JOIN_S = 0.0  # flow tracks join gaplessly (the measured step at the join is a normal one)
HISTORY = 20  # finished jobs kept for the queue view
MAX_FAILURES = 3


def can_start(
    generated_s: float,
    duration_s: float,
    rate: float,
    ahead_s: float = 0.0,
    chunk_s: float = CHUNK_S,
) -> bool:
    """The start rule: a track with ``generated_s`` of ``duration_s`` generated at ``rate``
    audio seconds per wall second can start playing ``ahead_s`` from now without running dry.

    The chunks still to come are taken as long as the engines' bound allows (each at most
    ``chunk_s`` and at most the audio before it); each must be predicted to arrive ``LEAD_S``
    before the playhead reaches its start, and the last ``MARGIN_S`` (or a chunk and its lead,
    if longer) before the track's end. ``chunk_s``: ``CHUNK_S``, or the longest chunk an engine
    whose chunks the model fixes (VAE tiles) has streamed.
    """
    if not (generated_s > 0 and rate > 0):
        return False
    margin = max(MARGIN_S, chunk_s + LEAD_S)
    if (duration_s - generated_s) / rate > ahead_s + duration_s - margin:
        return False
    made = generated_s
    while made < duration_s:
        chunk = min(chunk_s, made, duration_s - made)
        if (made + chunk - generated_s) / rate + LEAD_S > ahead_s + made:
            return False
        if chunk >= chunk_s:
            # From here on the slack is linear in the chunk's start: the tightest chunk is this
            # one (rate >= 1) or the last, which the MARGIN_S check covers (rate < 1).
            return True
        made += chunk
    return True


MAX_SLOWDOWN = 5.0  # a unit at the end of a track costs at most 6x one at its start


def _end_gain(prime: _Job | None) -> float | None:
    """Flow: the loudness gain the track a job continues was given (its own glides from it)."""
    if prime is None or prime.track is None:
        return None
    record = prime.track.metadata.get("loudness") or {}
    return record.get("gain_db")


class _Pace:
    """How fast a job generates, in audio seconds per wall second (worker thread).

    From the engine's progress since its first report, as a fraction of the track: the prompt's
    encoding and the pipeline before the first chunk are start-up, not pace. From the chunks
    (audio over time since the stream began) when the engine reports no progress.

    Some engines slow down as a track goes on (a MusicGen step attends to every position before
    it: on 2 cores its last step of a 30 s window costs 1.6-3x its first), so the pace measured
    early overstates the pace to come. Unit ``u`` of ``U`` is taken to cost ``c0 * (1 + k u / U)``,
    with ``slowdown`` k learned from the lane's finished tracks (:meth:`fitted_slowdown`), and
    :meth:`rate` is the pace predicted for the rest of the track.
    """

    def __init__(
        self,
        duration_s: float,
        slowdown: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.duration_s = duration_s
        self.slowdown = slowdown
        self._clock = clock
        self._started = clock()
        self._samples: list[tuple[float, int]] = []  # (time, units done) of each report
        self._last: Progress | None = None
        self._audio_s = 0.0

    def note(self, progress: Progress) -> None:
        if not self._samples or progress.done != self._samples[-1][1]:
            self._samples.append((self._clock(), progress.done))
        self._last = progress

    def chunk(self, seconds: float) -> None:
        self._audio_s += seconds

    def rate(self) -> float:
        now = self._clock()
        last = self._last
        if self._samples and last is not None and last.total and last.done > self._samples[0][1]:
            t0, a = self._samples[0]
            u, total, k = last.done, last.total, self.slowdown
            measured = (u - a) / max(now - t0, 1e-6) / total * self.duration_s
            if k <= 0 or u >= total:
                return measured
            c0 = (now - t0) / ((u - a) + k * (u * u - a * a) / (2 * total))
            rest_s = c0 * ((total - u) + k * (total * total - u * u) / (2 * total))
            rest_audio = (total - u) / total * self.duration_s
            return min(measured, rest_audio / max(rest_s, 1e-6))
        return self._audio_s / max(now - self._started, 1e-6)

    def fitted_slowdown(self) -> float | None:
        """k fitted (least squares) on this job's reports once it has run its course; None
        with too few reports to tell."""
        last = self._last
        if last is None or not last.total or len(self._samples) < 16:
            return None
        t0, a = self._samples[0]
        total = last.total
        times = np.array([t - t0 for t, _ in self._samples])
        units = np.array([u for _, u in self._samples], dtype=np.float64)
        # t = c0 (u - a) + c0 k (u^2 - a^2) / 2U: linear in (c0, c0 k)
        basis = np.stack([units - a, (units * units - a * a) / (2 * total)], axis=1)
        (c0, c0k), *_ = np.linalg.lstsq(basis, times, rcond=None)
        if not c0 > 0:
            return None
        return float(min(max(c0k / c0, 0.0), MAX_SLOWDOWN))


class _PlayerLike(Protocol):
    """What the scheduler needs of :class:`~lofitui.audio.player.Player` (and SilentPlayer)."""

    transport: Transport

    @property
    def running(self) -> bool: ...
    def start(self) -> None: ...
    def close(self) -> None: ...
    def enqueue(
        self,
        track_id: str,
        audio: Audio,
        *,
        complete: bool = True,
        crossfade_s: float | None = None,
    ) -> None: ...
    def append(self, track_id: str, audio: Audio) -> None: ...
    def finish(self, track_id: str, *, cut: bool = False) -> None: ...
    def skip(self, wait: bool = False) -> None: ...
    def clear(self, wait: bool = False) -> None: ...
    def stop(self, wait: bool = False) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    @property
    def crossfade_s(self) -> float: ...
    def subscribe(self, callback: Callable[[PlayerEvent], None]) -> Callable[[], None]: ...


class _Job:
    """A job's mutable state; only the loop thread changes it (the worker reads request/cancel)."""

    def __init__(self, station: Station, seed: int, *, replaces_current: bool = False) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.station = station
        self.request = station.request(seed)
        self.state = JobState.QUEUED
        self.progress: Progress | None = None
        self.error: str | None = None
        self.track: CachedTrack | None = None
        self.audio: Audio | None = None  # kept from generation until handed to the player
        self.cancel = CancelToken()
        self.created = time.time()
        self.handed = False  # given to the player, not started yet
        self.pinned = False
        self.replaces_current = replaces_current
        self.at_boundary = False  # a hand-over's first track: it follows the playing one
        # Streaming (loop thread): chunks so far, how much, how fast, and whether the player has it.
        self.chunks: list[Audio] = []
        self.generated_s = 0.0
        self.rate: float | None = None  # audio seconds per wall second (see _Pace)
        self.longest_chunk_s = 0.0  # VAE tiles are longer than CHUNK_S: can_start plans on them
        self.complete = False  # generated in full (and cached)
        self.streamed = False  # the player holds it while incomplete: chunks go on to it
        self.codes: np.ndarray | None = None  # the engine's codes once complete (flow)
        self.primed_by: _Job | None = None
        self.liked = False  # kept in step with the likes store by Scheduler._changed
        self.disliked = False
        self.replay = False  # a liked track played again: its request is given, never primed
        self.save_when_complete = False
        self.changed_at = 0.0
        self.in_order = False  # played back or sent forward: no ready track jumps ahead of it
        self.replayed = False  # played from the history: no other station's track takes over

    def info(self) -> JobInfo:
        return JobInfo(
            id=self.id,
            station=self.station,
            request=self.request,
            state=self.state,
            progress=self.progress,
            error=self.error,
            path=self.track.path if self.track else None,
            created=self.created,
            generated_s=self.duration_s if self.complete else self.generated_s,
            handed=self.handed,
            primed_by=self.primed_by.id if self.primed_by is not None else None,
            liked=self.liked,
        )

    @property
    def duration_s(self) -> float:
        return self.request.duration_s


class _Lane:
    """One loaded model and the single worker thread that generates with it."""

    def __init__(self, key: tuple[str, ...]) -> None:
        self.key = key
        self.engine: Engine | None = None
        self.job: _Job | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lofi-gen")
        self.slowdown = 0.0  # how this model slows within a track (_Pace): learned, remembered


class Scheduler:
    """Keeps a station's next tracks generated and plays them back to back."""

    def __init__(
        self,
        engine_factory: Callable[[Station], Engine],
        cache: TrackCache,
        player: Player | None,
        *,
        lookahead: int = 2,
        max_pending: int = 10,
        max_failures: int = MAX_FAILURES,
        seed_source: Callable[[], int] | None = None,
        crossfade_s: float | None = None,
        flow: bool = False,
        played: PlayHistory | None = None,
        likes: Likes | None = None,
        paces: Paces | None = None,
        loudness: Loudness | None = None,
    ) -> None:
        if lookahead < 1:
            raise ValueError(f"lookahead must be >= 1 (got {lookahead})")
        if max_pending < lookahead:
            raise ValueError(f"max_pending ({max_pending}) must be >= lookahead ({lookahead})")
        self.cache = cache
        self.lookahead = lookahead
        self.max_pending = max_pending
        self.max_failures = max(1, max_failures)
        self.flow = flow
        self.played = played if played is not None else PlayHistory()
        self._back = BackStack(self.played)
        self._replaying: _Job | None = None  # a track played back, until it starts
        self.likes = likes if likes is not None else Likes()  # in memory unless given a store
        self.paces = paces if paces is not None else Paces()  # learned slowdowns (_Pace)
        # the loudness path's libraries load now, beside start-up, not on the first track's way
        threading.Thread(target=warm_up, name="lofi-warm-up", daemon=True).start()
        for key in self.likes.liked_keys():  # liked tracks are never evicted
            cache.pin(key)
        self.loudness = loudness or Loudness()
        self._engine_factory = engine_factory
        self._seed_source = seed_source or (lambda: secrets.randbits(31))
        self._real_player: Player | None = player
        self._transport = player.transport if player is not None else Transport()
        if crossfade_s is None:
            crossfade_s = player.crossfade_s if player is not None else 0.0
        self._crossfade_s = crossfade_s
        self._player: _PlayerLike = player if player is not None else self._silent_player()
        self._unsubscribe_player: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ctl: ThreadPoolExecutor | None = None
        self._lanes: dict[tuple[str, ...], _Lane] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._subscribers: list[Callable[[SchedulerEvent], None]] = []
        self._station: Station | None = None
        self._successor: _Job | None = None  # a hand-over's first track, until it can play
        self._anchor: _Job | None = None  # a liked track the next generated one continues
        self._upcoming: list[_Job] = []
        self._current: _Job | None = None
        self._history: deque[_Job] = deque(maxlen=HISTORY)
        self._failures = 0
        self._halted = False
        self._cache_problems: set[str] = set()  # why tracks were not cached: each noticed once
        self._started = False
        self._closed = False
        self._position = (0.0, 0.0)

    # =========================================================================================
    # Lifecycle

    async def start(self) -> None:
        """Start the player (falling back to silent playback if it cannot) and begin generating."""
        if self._started:
            return
        if self._closed:
            raise RuntimeError("scheduler was closed")
        self._loop = asyncio.get_running_loop()
        self._ctl = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lofi-player-ctl")
        player = self._player
        if not player.running:
            try:
                await asyncio.to_thread(player.start)
            except Exception as exc:  # DeviceError, or anything else: never crash the app
                if not isinstance(exc, LofiError):
                    log.warning("audio output failed to start", exc_info=exc)
                self._notice(f"{exc}; playing silently", "warning")
                player = self._silent_player()
                await asyncio.to_thread(player.start)
        self._attach(player)
        self._started = True
        if self.likes.problem:
            self._notice(self.likes.problem, "warning")
        self._pump()

    async def aclose(self) -> None:
        """Cancel jobs, wait for the workers, close the player; nothing is left half-written."""
        if self._closed:
            return
        self._closed = True
        for job in (*self._upcoming, *([self._current] if self._current else [])):
            job.cancel.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for lane in self._lanes.values():
            await asyncio.to_thread(lane.executor.shutdown, wait=True)
        if self._ctl is not None:
            await asyncio.to_thread(self._ctl.shutdown, wait=True)
        if self._unsubscribe_player is not None:
            self._unsubscribe_player()
        await asyncio.to_thread(self._player.close)
        for job in (*self._upcoming, *([self._current] if self._current else [])):
            self._unpin(job)
        self._subscribers.clear()

    async def __aenter__(self) -> Scheduler:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # =========================================================================================
    # Events

    def subscribe(self, callback: Callable[[SchedulerEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` on the loop thread for every event; returns unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, event: SchedulerEvent) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("scheduler subscriber failed on %r", event)

    def _changed(self, job: _Job) -> None:
        job.liked = self.likes.is_liked(job.request.key)
        self._emit(JobChanged(job.info()))

    def _notice(self, message: str, severity: Severity = "info") -> None:
        self._emit(Notice(message, severity))

    # =========================================================================================
    # State

    @property
    def station(self) -> Station | None:
        return self._station

    @property
    def current(self) -> JobInfo | None:
        """The playing job (audible, or silently playing without audio output)."""
        return self._current.info() if self._current else None

    @property
    def upcoming(self) -> list[JobInfo]:
        """Queued, generating and ready jobs in play order."""
        return [job.info() for job in self._upcoming]

    @property
    def history(self) -> list[JobInfo]:
        """The last finished jobs (played, failed, cancelled), oldest first."""
        return [job.info() for job in self._history]

    @property
    def jobs(self) -> list[JobInfo]:
        """History, then the playing job, then the upcoming ones: oldest to newest."""
        current = [self._current.info()] if self._current else []
        return [*self.history, *current, *self.upcoming]

    @property
    def volume(self) -> float:
        return self._transport.volume

    @property
    def muted(self) -> bool:
        return self._transport.muted

    @property
    def paused(self) -> bool:
        return self._transport.paused

    @property
    def halted(self) -> bool:
        """Generation stopped after ``max_failures`` failures in a row."""
        return self._halted

    @property
    def has_audio_output(self) -> bool:
        """True while tracks are audible: a real player (not silent playback) with an output."""
        player = self._real_player
        return player is not None and self._player is player and player.has_output

    def job(self, job_id: str) -> JobInfo | None:
        found = self._find(job_id)
        return found.info() if found else None

    # =========================================================================================
    # Intents

    def set_station(self, station: Station) -> None:
        """Play ``station`` from now on (see the module docstring for what happens to the queue)."""
        station.validate()
        if station == self._station:
            if self._halted:  # the same station again: the listener asks to retry
                self._failures = 0
                self._halted = False
                self._pump()
            return
        self._station = station
        self._successor = None
        self._anchor = None
        self._failures = 0
        self._halted = False
        if self._current is not None:  # a track played back gives way to the new station too
            self._current.replayed = False
        for job in list(self._upcoming):
            self._cancel_job(job)
        if not self.flow:  # flow continues the playing track, so it needs its codes
            self._stop_generating_current()
        self._emit(StationChanged(station))
        self._pump()

    def hand_over(self, station: Station) -> None:
        """Move to ``station`` at a track boundary, once its first track can play; until then
        the current station plays on (see the module docstring). Without a current station this
        is :meth:`set_station`."""
        station.validate()
        if self._station is None or station == self._station:
            self.set_station(station)
            return
        if self._successor is not None:
            self._cancel_job(self._successor)
        job = self._new_job(station)
        job.at_boundary = True
        self._successor = job
        self._upcoming.append(job)
        self._changed(job)
        self._pump()

    @property
    def handing_over_to(self) -> Station | None:
        """The station a pending :meth:`hand_over` moves to, or None."""
        return self._successor.station if self._successor is not None else None

    def enqueue(self, station: Station | None = None, seed: int | None = None) -> JobInfo:
        """Add one more job at the end of the queue (beyond the lookahead)."""
        station = station or self._station
        if station is None:
            raise LofiError("no station: choose a prompt first")
        station.validate()
        self._check_pending()
        job = self._new_job(station, seed)
        self._upcoming.append(job)
        self._changed(job)
        self._pump()
        return job.info()

    def skip(self) -> None:
        """Move on to the next ready track (silence until one is ready)."""
        if self._current is not None:
            self._player_call(self._player.skip)

    def regenerate(self, which: Literal["current", "next"] = "next") -> None:
        """Replace the upcoming track, or the playing one, by a new seed."""
        if which not in ("current", "next"):
            raise ValueError(f"regenerate which must be 'current' or 'next' (got {which!r})")
        self._failures = 0
        self._halted = False
        current = self._current
        if which == "current" and current is not None:
            self._stop_generating_current()
            for job in list(self._upcoming):
                if job.replaces_current:
                    self._cancel_job(job)
            self._check_pending()
            job = self._new_job(current.station, replaces_current=True)
            self._upcoming.insert(0, job)
            self._changed(job)
            self._pump()
            return
        station = self._station
        if self._upcoming:
            target = self._upcoming[0]
            station = target.station
            self._cancel_job(target)
        if station is None:
            return
        self._check_pending()
        job = self._new_job(station)
        self._upcoming.insert(0, job)
        self._changed(job)
        self._pump()

    def cancel(self, job_id: str) -> None:
        """Cancel one job: a pending one stops within one step, a ready one leaves the queue
        (kept in the cache), the playing one is skipped. Unknown or finished ids are ignored."""
        if self._current is not None and self._current.id == job_id:
            self.skip()
            return
        job = next((j for j in self._upcoming if j.id == job_id), None)
        if job is not None:
            self._cancel_job(job)
            self._pump()

    def clear(self) -> None:
        """Cancel every upcoming job and forget the history; the lookahead refills."""
        self._failures = 0
        self._halted = False
        for job in list(self._upcoming):
            self._cancel_job(job)
        self._history.clear()
        self._pump()

    def save_current(self) -> Path | None:
        """Copy the playing track to the music directory; returns the saved WAV's path.

        A track still generating is saved once complete (None now; TrackSaved then).
        """
        job = self._current
        if job is not None and job.track is None and not job.cancel.cancelled:
            job.save_when_complete = True
            self._notice("the track will be saved when it is complete", "info")
            return None
        if job is None:
            raise LofiError("nothing is playing: there is no track to save")
        if job.track is None:
            raise LofiError("this track was cut short (its generation stopped): it is not kept")
        return self._save(job)

    def _save(self, job: _Job) -> Path:
        assert job.track is not None
        return self._save_track(job.track, job.id)

    def _save_track(self, track: CachedTrack, job_id: str) -> Path:
        try:
            path = self.cache.save(track)
        except OSError as exc:
            raise LofiError(f"cannot save the track: {exc.strerror or exc}") from exc
        if self.played.mark_saved(track.key):
            self._save_played_history()
        self._emit(TrackSaved(job_id, path))
        self._notice(f"saved {path}", "info")
        return path

    # -- history --------------------------------------------------------------------------------

    def back(self) -> JobInfo:
        """Play the track heard before the one playing now (see the module docstring); raises
        LofiError at the start of the history."""
        now = self._replaying or self._current
        request = self._back.previous(now.request if now is not None else None)
        if request is None:
            raise LofiError("this is the start of the history: there is no earlier track")
        return self._replay(request, forward=True)

    def play(self, key: str, *, save: bool = False) -> JobInfo:
        """Play the played track ``key`` now: from the cache, or generated again from its
        request if its audio is gone. ``save``: save it once it is complete."""
        entry = self.played.get(key)
        track = self.cache.track(key) if entry is None else None
        if entry is None and track is None:
            raise LofiError("this track is neither in the history nor in the cache")
        request = entry.request if entry is not None else track.request  # type: ignore[union-attr]
        return self._replay(request, forward=False, save=save)

    def cached(self, key: str) -> bool:
        """Whether track ``key``'s audio is in the cache (it plays without generation)."""
        return key in self.cache

    def save_played(self, key: str) -> Path:
        """Save the played track ``key`` from the cache to the music folder; its path."""
        track = self.cache.track(key)
        if track is None:
            raise LofiError("this track's audio is no longer in the cache")
        return self._save_track(track, key)

    def set_liked(self, key: str, liked: bool | None) -> bool:
        """Mark the played track ``key`` liked (True), disliked (False) or neither (None) in
        the history, kept across sessions; False if the history has no such track."""
        changed = self.played.set_liked(key, liked)
        if changed:
            self._save_played_history()
        return changed

    def _save_played_history(self) -> None:
        """Write the track history off the loop (now, before the scheduler starts)."""
        if self._loop is None or self._closed:
            self.played.save()
        else:
            self._background(self.played.save)

    def _replay(self, request: TrackRequest, *, forward: bool, save: bool = False) -> JobInfo:
        """Play ``request``'s track now. ``forward``: what was playing (or about to) goes back
        to the front of the queue; else it is finished, as a skip does."""
        job = self._replay_job(request)
        pending, current = self._replaying, self._current
        self._player_call(self._player.stop, True)
        for other in self._upcoming:  # the player forgets them: handed again in turn
            other.handed = False
            other.streamed = False
        if pending is not None and not forward:
            self._cancel_job(pending)
        if current is not None:
            self._current = None
            self._position = (0.0, 0.0)
            if forward:
                self._send_forward(current)
            else:
                self._finish(current, JobState.PLAYED)
        self._to_front(job)
        self._replaying = job
        if job.state is not JobState.READY:
            self._notice("its audio is no longer in the cache: generating it again", "info")
            self._emit_now(None, 0.0, 0.0)
            job.save_when_complete = save
        elif save:
            try:
                self._save(job)
            except LofiError as exc:
                self._notice(f"not saved: {exc}", "warning")
        self._pump()
        return job.info()

    def _to_front(self, job: _Job) -> None:
        """``job`` plays next (the queue panel orders upcoming tracks by creation)."""
        job.created = min((j.created for j in self._upcoming), default=job.created) - 1e-3
        self._upcoming.insert(0, job)
        self._changed(job)

    def _replay_job(self, request: TrackRequest) -> _Job:
        """A job for exactly ``request``: ready if the cache has it, else to be generated."""
        station = Station(
            request.prompt, request.engine, request.model, request.duration_s, request.params
        )
        job = _Job(station, request.seed)
        job.request = request
        job.in_order = job.replayed = True
        track = self.cache.track(request.key)
        if track is not None:
            job.track, job.complete, job.state = track, True, JobState.READY
            self._pin(job)
        return job

    def _send_forward(self, job: _Job) -> None:
        """The playing ``job`` waits at the front of the queue: whole if complete, still
        generating if it streams; a track cut short is generated again."""
        job.handed = job.streamed = False
        job.in_order = True
        if job.complete:
            job.state = JobState.READY
        elif not job.cancel.cancelled:
            job.state = JobState.GENERATING
        else:
            self._finish(job, JobState.CANCELLED)
            job = self._replay_job(job.request)
        self._to_front(job)

    def toggle_pause(self) -> bool:
        """Pause or resume (short fades); returns True when now paused."""
        if self._transport.paused:
            self._player.resume()
        else:
            self._player.pause()
        self._emit_now(self._current, *self._position)
        return self._transport.paused

    def set_volume(self, volume: float) -> None:
        self._transport.volume = volume

    def toggle_mute(self) -> bool:
        self._transport.muted = not self._transport.muted
        return self._transport.muted

    def retry_audio(self) -> None:
        """Try the audio output again now (without one, it is retried every few seconds)."""
        player = self._real_player
        if player is not None and self._player is player:
            player.retry_output()

    def heard(self, frames: int) -> Audio | None:
        """The last ``frames`` frames heard, as sent to the device (the visualiser's input; see
        :meth:`Player.heard <lofitui.audio.player.Player.heard>`); None while nothing is heard."""
        player = self._real_player
        if player is None or self._player is not player:
            return None
        return player.heard(frames)

    # =========================================================================================
    # Steering: likes and dislikes

    def like_current(self) -> bool:
        """Like the playing track, or take its like back; True when it is now liked.

        The like keeps its request and settings (saved at once), pins it in the cache and
        anchors the station on it: the next track generated for the station continues from it.
        """
        job = self._current
        if job is None:
            raise LofiError("nothing is playing: there is no track to like")
        key = job.request.key
        if self.likes.is_liked(key):
            self.unlike(key)
            return False
        self.cache.pin(key)
        if job.station == self._station and not any(j.primed_by is job for j in self._upcoming):
            self._anchor = job
        self._keep(self.likes.like, job.request, dict(job.station.params), job.codes)
        self.set_liked(key, True)
        self._changed(job)
        return True

    def unlike(self, key: str) -> None:
        """Take back the like of the track ``key`` (the playing one's, or any in the likes)."""
        if not self.likes.is_liked(key):
            return
        self.cache.unpin(key)
        if self._anchor is not None and self._anchor.request.key == key:
            self._anchor = None
        self._keep(self.likes.unlike, key)
        self.set_liked(key, None)
        for job in (*([self._current] if self._current else []), *self._upcoming):
            if job.request.key == key:
                self._changed(job)

    def dislike_current(self) -> None:
        """Skip the playing track now (faded, as :meth:`skip`) and avoid its variation: its
        seed and request are never generated again for the station, a like of it is taken
        back, and the tracks that continue it (flow) leave the queue."""
        job = self._current
        if job is None:
            raise LofiError("nothing is playing: there is no track to dislike")
        if job.disliked:  # pressed again before the skip took effect
            return
        if self.likes.is_liked(job.request.key):
            self.cache.unpin(job.request.key)
        job.disliked = True
        if self._anchor is job:
            self._anchor = None
        self._keep(self.likes.dislike, job.request)
        self.set_liked(job.request.key, False)
        self._stop_generating_current()
        for other in list(self._upcoming):
            if other is self._successor:
                continue
            if self._continues(other, job) or self.likes.is_disliked(other.request):
                self._cancel_job(other)
        self._changed(job)
        self.skip()
        self._pump()

    def play_liked(self, key: str) -> None:
        """Play the liked track ``key`` now, taking over as ``regenerate("current")`` does (a
        cache hit; if it was evicted, the same request is generated again): its settings
        become the station's and the tracks after it continue from it."""
        like = self.likes.get(key)
        if like is None:
            raise LofiError("that track is not liked any more")
        request = like.request
        station = Station.of(request, like.params)
        station.validate()
        changed = station != self._station
        self._station = station
        self._failures = 0
        self._halted = False
        for other in list(self._upcoming):
            if other is not self._successor:
                self._cancel_job(other)
        self._stop_generating_current()
        job = self._new_job(station, request.seed, replaces_current=True)
        job.request = request
        job.replay = True
        self._anchor = job
        self._upcoming.insert(0, job)
        if changed:
            self._emit(StationChanged(station))
        self._changed(job)
        self._pump()

    def _continues(self, job: _Job, source: _Job) -> bool:
        """Whether ``job`` was primed from ``source``, directly or through upcoming jobs."""
        prime = job.primed_by
        while prime is not None and prime is not source and prime in self._upcoming:
            prime = prime.primed_by
        return prime is source

    def _keep(self, change: Callable[..., Any], *args: Any) -> None:
        """A change to the likes store; one that cannot be saved holds for this run (said)."""
        try:
            change(*args)
        except LofiError as exc:
            self._notice(str(exc), "warning")

    # =========================================================================================
    # The queue

    def _new_job(
        self, station: Station, seed: int | None = None, *, replaces_current: bool = False
    ) -> _Job:
        seed = self._fresh_seed(station) if seed is None else seed
        return _Job(station, seed, replaces_current=replaces_current)

    def _fresh_seed(self, station: Station) -> int:
        """A seed from the seed source that was never disliked on ``station``."""
        avoid = self.likes.disliked_seeds(station.prompt)
        seed = self._seed_source()
        tries = 1
        while seed in avoid:  # a source that keeps repeating itself gives way to random ones
            seed = self._seed_source() if tries < 64 else secrets.randbits(31)
            tries += 1
        return seed

    def _pending_count(self) -> int:
        return sum(1 for job in self._upcoming if job.state.pending)

    def _check_pending(self) -> None:
        if self._pending_count() >= self.max_pending:
            raise LofiError(
                f"too many tracks waiting to be generated (at most {self.max_pending}): "
                "wait for some to finish or cancel them"
            )

    def _find(self, job_id: str) -> _Job | None:
        if self._current is not None and self._current.id == job_id:
            return self._current
        for job in (*self._upcoming, *self._history):
            if job.id == job_id:
                return job
        return None

    def _pump(self) -> None:
        """Bring everything up to date: refill the lookahead, start jobs, feed the player."""
        if not self._started or self._closed:
            return
        self._top_up()
        self._start_jobs()
        self._feed_player()

    def _top_up(self) -> None:
        station = self._station
        if station is None or self._halted:
            return
        kept = sum(
            1 for job in self._upcoming if not job.replaces_current and job is not self._successor
        )
        while kept < self.lookahead and self._pending_count() < self.max_pending:
            job = self._new_job(station)
            self._upcoming.append(job)
            self._changed(job)
            kept += 1

    def _finish(self, job: _Job, state: JobState, error: str | None = None) -> None:
        """Move ``job`` out of the queue (or off the player) into the history."""
        job.state = state
        job.error = error
        job.audio = None
        job.chunks = []
        job.streamed = False
        if not job.complete:
            job.cancel.cancel()  # skipped, cancelled or replaced while generating: stop it
        if job in self._upcoming:
            self._upcoming.remove(job)
        if self._current is job:
            self._current = None
        if self._successor is job:  # failed or cancelled: the old station carries on
            self._successor = None
        if self._replaying is job:
            self._replaying = None
        self._unpin(job)
        self._history.append(job)
        self._changed(job)

    def _cancel_job(self, job: _Job) -> None:
        job.cancel.cancel()  # a generating job stops at its next step; its lane stays busy
        was_handed = job.handed
        job.handed = False
        self._finish(job, JobState.CANCELLED)
        if was_handed:
            self._player_call(self._player.clear, True)

    def _stop_generating_current(self) -> None:
        """The playing track is being replaced: stop its generation (it plays what it has, then
        ends; nothing of it is cached) so the model is free for what replaces it."""
        if self._current is not None and not self._current.complete:
            self._current.cancel.cancel()

    def _pin(self, job: _Job) -> None:
        if job.track is not None and not job.pinned:
            self.cache.pin(job.track.key)
            job.pinned = True

    def _unpin(self, job: _Job) -> None:
        if job.track is not None and job.pinned:
            self.cache.unpin(job.track.key)
            job.pinned = False

    # =========================================================================================
    # Generation

    def _lane(self, station: Station) -> _Lane:
        lane = self._lanes.get(station.lane)
        if lane is None:
            lane = self._lanes[station.lane] = _Lane(station.lane)
            lane.slowdown = self.paces.slowdown(station.lane)
        return lane

    def _start_jobs(self) -> None:
        assert self._loop is not None
        for job in self._upcoming:
            if job.state is not JobState.QUEUED:
                continue
            lane = self._lane(job.station)
            if lane.job is not None:
                continue
            lane.job = job
            job.state = JobState.GENERATING
            prime = self._prime_source(job)
            job.primed_by = prime
            self._changed(job)
            task = self._loop.create_task(
                self._generate(job, lane, prime), name=f"lofi-job-{job.id}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _prime_source(self, job: _Job) -> _Job | None:
        """The job whose codes prime ``job``: none for a liked track played again (its request
        is given); the liked track the station is anchored on (once); in flow, the job that
        plays right before it, passing over disliked ones back to the last kept track."""
        if job.replay:
            return None
        anchor = self._anchor  # not for a new take of the playing track: for the next one
        if (
            anchor is not None
            and not job.replaces_current
            and anchor.station.lane == job.station.lane
        ):
            self._anchor = None
            if anchor.codes is not None and not anchor.disliked:
                return anchor
        if not self.flow:
            return None
        order = [*([self._current] if self._current else []), *self._upcoming]
        before = order[: order.index(job)]
        played = [j for j in self._history if j.state is JobState.PLAYED]
        if not before and not (played and played[-1].disliked):
            return None  # nothing plays before it: it starts afresh
        if before and not before[-1].disliked:
            prime: _Job | None = before[-1]
        else:  # pass over the disliked tracks (playing, or just ended) to the last kept one
            kept = [j for j in (*played, *before) if not j.disliked]
            prime = kept[-1] if kept else None
        if prime is None or prime.codes is None or prime.station.lane != job.station.lane:
            return None
        return prime

    async def _generate(self, job: _Job, lane: _Lane, prime: _Job | None) -> None:
        assert self._loop is not None
        try:
            track, audio, created, codes = await self._loop.run_in_executor(
                lane.executor, self._produce, job, lane, prime
            )
        except Cancelled:
            if job.state is JobState.GENERATING:
                self._finish(job, JobState.CANCELLED)
            elif job.state is JobState.PLAYING and job.streamed:  # it ends where its audio ends
                job.streamed = False
                self._player_call(functools.partial(self._player.finish, job.id, cut=True))
        except Exception as exc:
            if job.state is JobState.GENERATING:
                self._failed(job, exc)
            elif job.state is JobState.PLAYING:  # it plays what it has, then ends
                self._stream_failed(job, exc)
        else:
            if job.state in (JobState.GENERATING, JobState.PLAYING):
                self._failures = 0
                self._completed(job, track, audio, codes)
            elif created:  # cancelled or skipped after its last step: leave nothing cached
                await asyncio.to_thread(self.cache.remove, track.key)
        finally:
            lane.job = None
        self._pump()

    def _completed(
        self, job: _Job, track: CachedTrack, audio: Audio, codes: np.ndarray | None
    ) -> None:
        """Generation ended: the job is ready (or plays on, complete); the player hears of it."""
        key = job.request.key
        if codes is None:  # from the cache: a liked track's kept codes let the next continue
            codes = self.likes.codes(key)
        elif self.likes.is_liked(key) and not self.likes.has_codes(key):
            self.likes.keep_codes(key, codes)
        job.track, job.codes, job.complete = track, codes, True
        job.chunks = []
        problem = self.cache.write_problem
        if problem is not None and problem not in self._cache_problems:
            self._cache_problems.add(problem)
            note = "new tracks play from memory and s still saves them"
            self._notice(f"{problem}: {note}", "warning")
        self._pin(job)
        if job.streamed:
            job.streamed = False
            self._player_call(self._player.finish, job.id)
        if job.state is JobState.GENERATING:
            job.audio = audio
            job.state = JobState.READY
        self._changed(job)
        if job.save_when_complete:
            job.save_when_complete = False
            with contextlib.suppress(LofiError):
                self._save(job)

    def _produce(
        self, job: _Job, lane: _Lane, prime: _Job | None
    ) -> tuple[CachedTrack, Audio, bool, np.ndarray | None]:
        """Worker thread: the cached track, or a new one streamed to the loop chunk by chunk,
        then written to the cache whole."""
        job.cancel.check()
        if prime is not None:
            engine = self._engine(job, lane)
            continuation = getattr(engine, "continuation_params", None)
            if continuation is not None and prime.codes is not None:
                params = {**job.request.params, **continuation(prime.request, prime.codes)}
                job.request = replace(job.request, params=params)
        found = self.cache.fetch(job.request)
        if found is not None:
            return (*self._at_level(*found), False, None)
        engine = self._engine(job, lane)
        job.cancel.check()
        loop = self._loop
        assert loop is not None
        started = time.perf_counter()
        pace = _Pace(job.duration_s, lane.slowdown or engine.slowdown_for(job.duration_s))
        stream = engine.stream(job.request, self._progress_reporter(job, pace), job.cancel)
        level = self.loudness.stream(engine.sample_rate, engine.channels, _end_gain(prime))
        chunks: list[Audio] = []

        def hand(chunk: Audio) -> None:
            if chunk.frames:
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    loop.call_soon_threadsafe(self._on_chunk, job, chunk, pace.rate())

        try:
            for chunk in stream:
                job.cancel.check()
                chunks.append(chunk)
                pace.chunk(chunk.duration_s)
                hand(level.push(chunk))
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        job.cancel.check()
        learned = pace.fitted_slowdown()
        if learned is not None:  # the next tracks of this model start by what this one showed
            lane.slowdown = learned if not lane.slowdown else (lane.slowdown + learned) / 2
            self.paces.learned(lane.key, lane.slowdown)
        hand(level.flush())
        audio, loudness = self.loudness.normalise(Audio.join(chunks))
        codes = getattr(stream, "codes", None)
        metadata = track_metadata(job.request, engine, audio, time.perf_counter() - started)
        metadata["loudness"] = loudness
        return self.cache.put(job.request, audio, metadata), audio, True, codes

    def _at_level(self, track: CachedTrack, audio: Audio) -> tuple[CachedTrack, Audio]:
        """Worker thread: a cached track at this scheduler's loudness (one cached at another
        level is normalised and stored again, once)."""
        if self.loudness.applied_to(track.metadata):
            return track, audio
        audio, loudness = self.loudness.normalise(audio)
        metadata = {**track.metadata, "loudness": loudness}
        return self.cache.put(track.request, audio, metadata), audio

    def _engine(self, job: _Job, lane: _Lane) -> Engine:
        if lane.engine is None:
            lane.engine = self._engine_factory(job.station)
        return lane.engine

    def _on_chunk(self, job: _Job, chunk: Audio, rate: float) -> None:
        """Loop thread: one more chunk of a generating job; it may now start playing."""
        wanted = job.state in (JobState.GENERATING, JobState.PLAYING)
        if self._closed or job.complete or not wanted:
            return
        job.chunks.append(chunk)
        job.longest_chunk_s = max(job.longest_chunk_s, chunk.duration_s)
        job.generated_s = min(job.generated_s + chunk.duration_s, job.duration_s)
        job.rate = rate
        if job.streamed:
            self._player_call(self._player.append, job.id, chunk)
        now = time.monotonic()
        if now - job.changed_at >= PROGRESS_INTERVAL_S:
            job.changed_at = now
            self._changed(job)
        self._feed_player()

    def _progress_reporter(self, job: _Job, pace: _Pace) -> Callable[[Progress], None]:
        """Worker-thread progress callback that forwards at most one update per interval
        (every update is noted in ``pace``)."""
        loop = self._loop
        assert loop is not None
        last = [0.0]

        def report(progress: Progress) -> None:
            pace.note(progress)
            job.progress = progress
            now = time.monotonic()
            if now - last[0] < PROGRESS_INTERVAL_S and progress.done < progress.total:
                return
            last[0] = now
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._on_progress, job, progress)

        return report

    def _on_progress(self, job: _Job, progress: Progress) -> None:
        generating = job.state in (JobState.GENERATING, JobState.PLAYING) and not job.complete
        if generating and not self._closed:
            self._emit(JobProgress(job.id, progress))

    def _stream_failed(self, job: _Job, exc: BaseException) -> None:
        """A playing track's generation broke off: it ends where its audio ends."""
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, LofiError):
            log.warning("job %s failed while playing", job.id, exc_info=exc)
        if job.streamed:
            job.streamed = False
            self._player_call(functools.partial(self._player.finish, job.id, cut=True))
        self._failures += 1
        self._notice(f"track generation failed: {reason}", "warning")

    def _failed(self, job: _Job, exc: BaseException) -> None:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, LofiError):
            log.warning("job %s failed", job.id, exc_info=exc)
        handing_over = job is self._successor
        self._finish(job, JobState.FAILED, reason)
        if handing_over and self._station is not None:
            self._notice(
                f"cannot move to {job.station.engine}: {reason}; {self._station.engine} plays on",
                "warning",
            )
            return
        self._failures += 1
        if self._failures >= self.max_failures and not self._halted:
            self._halted = True
            for pending in [j for j in self._upcoming if j.state.pending]:
                self._cancel_job(pending)
            self._notice(
                f"generation stopped after {self._failures} failed tracks ({reason}): "
                "change the station or regenerate to try again",
                "error",
            )
        else:
            self._notice(f"track generation failed: {reason}", "warning")

    # =========================================================================================
    # Playback

    def _silent_player(self) -> SilentPlayer:
        """Playback without sound, on the same transport and crossfade as the real player."""
        return SilentPlayer(self._crossfade_s, self._transport)

    def _emit_now(self, job: _Job | None, position_s: float, duration_s: float) -> None:
        info = job.info() if job is not None else None
        track_id = job.id if job is not None else None
        self._emit(NowPlaying(track_id, position_s, duration_s, self.paused, info))

    def _attach(self, player: _PlayerLike) -> None:
        if self._unsubscribe_player is not None:
            self._unsubscribe_player()
        self._player = player
        loop = self._loop
        assert loop is not None

        def hop(event: PlayerEvent) -> None:  # player thread → loop thread
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_player_event, player, event)

        self._unsubscribe_player = player.subscribe(hop)

    def _player_call(self, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        """Run a player call on the ordered control thread (some calls wait for the feeder)."""
        if self._ctl is None or self._closed:
            return None
        return self._ctl.submit(fn, *args)

    def _feed_player(self) -> None:
        """Give the player the next track early (gapless), or let one take over: a ready one,
        or the first one still generating once it can stream without running dry."""
        if not self._started or self._closed:
            return
        self._complete_hand_over()
        head = self._upcoming[0] if self._upcoming else None
        if head is not None and head.in_order:  # played back or sent forward: it goes first
            ready = head if head.state in (JobState.READY, JobState.GENERATING) else None
        else:
            ready = next((j for j in self._upcoming if j.state is JobState.READY), None)
        if ready is None and head is not None and head.state is JobState.GENERATING:
            ready = head
        if ready is None or ready.handed:
            return
        current = self._current
        takeover = (
            current is not None
            and not ready.at_boundary
            and (
                ready.replaces_current
                or (ready.station != current.station and not current.replayed)
            )
            and ready.primed_by is not current
        )
        if not ready.complete and not self._can_stream(ready, takeover):
            return
        handed = next((j for j in self._upcoming if j.handed), None)
        if handed is not None:
            if not takeover:
                return
            handed.handed = False  # the stop below drops it from the player's queue
            handed.streamed = False
        self._upcoming.remove(ready)
        self._upcoming.insert(0, ready)
        ready.replaces_current = False
        ready.handed = True
        audio = None
        if not ready.complete:
            audio = Audio.join(ready.chunks)
            ready.streamed = True
            self._changed(ready)
        crossfade = (
            FLOW_JOIN_S if ready.primed_by is not None and ready.primed_by is current else None
        )
        self._player_call(self._hand, self._player, ready, takeover, audio, crossfade)

    def _complete_hand_over(self) -> None:
        """The successor can play: drop the old station's upcoming tracks so it comes next."""
        job = self._successor
        if job is None:
            return
        if job.state is JobState.GENERATING:
            if not self._can_stream(job, takeover=False):
                return
        elif job.state is not JobState.READY:
            return
        self._successor = None
        self._station = job.station
        for other in list(self._upcoming):
            if other is not job:
                self._cancel_job(other)
        self._emit(StationChanged(job.station))
        self._top_up()
        self._start_jobs()

    def _can_stream(self, job: _Job, takeover: bool) -> bool:
        """The start rule (module docstring): ``job`` can start now without running dry."""
        if not job.chunks or job.rate is None:
            return False
        if job.generated_s >= job.duration_s:
            return False  # all generated: it is handed whole once cached, moments from now
        ahead = 0.0
        current = self._current
        if current is not None and not takeover:
            position, duration = self._position
            total = current.duration_s if not current.complete else duration
            ahead = max(0.0, total - position - self._crossfade_s)
        bound = max(CHUNK_S, job.longest_chunk_s)
        return can_start(job.generated_s, job.duration_s, job.rate, ahead, bound)

    def _hand(
        self,
        player: _PlayerLike,
        job: _Job,
        takeover: bool,
        audio: Audio | None,
        crossfade_s: float | None,
    ) -> None:
        """Control thread: queue the track (all of it, or the part generated so far); a
        takeover first stops what plays."""
        complete = audio is None
        try:
            if audio is None:
                audio = job.audio
            if audio is None:
                assert job.track is not None
                audio = self.cache.load_audio(job.track)
        except CorruptAudioError as exc:
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._damaged, job, str(exc))
            return
        if takeover:
            player.stop(wait=True)
        player.enqueue(job.id, audio, complete=complete, crossfade_s=crossfade_s)

    def _damaged(self, job: _Job, reason: str) -> None:
        """A ready track's WAV turned out damaged: generate it again (the cache dropped it)."""
        self._notice(f"cached track damaged, generating it again: {reason}", "warning")
        if job in self._upcoming and job.state is JobState.READY:
            self._unpin(job)
            job.handed = False
            job.track = None
            job.audio = None
            job.state = JobState.QUEUED
            self._changed(job)
        self._pump()

    def _on_player_event(self, player: _PlayerLike, event: PlayerEvent) -> None:
        if player is not self._player or self._closed:
            return
        if isinstance(event, NowPlaying):
            current = self._current
            if current is not None and current.id == event.track_id:
                if not current.complete:  # still growing: its length is the one asked for
                    event = replace(event, duration_s=max(event.duration_s, current.duration_s))
                self._position = (event.position_s, event.duration_s)
                self._emit(replace(event, paused=self.paused, job=current.info()))
        elif isinstance(event, Level):
            self._emit(event)
        elif isinstance(event, TrackStarted):
            self._track_started(event.track_id, event.duration_s)
        elif isinstance(event, TrackFinished):
            self._track_finished(event.track_id)
        elif isinstance(event, OutputChanged):
            self._output_changed(event)
        elif isinstance(event, PlayerError):
            self._player_failed(event.message)

    def _track_started(self, job_id: str, duration_s: float) -> None:
        job = self._find(job_id)
        if job is None or job is self._current:
            return
        if self._current is not None:  # crossfading out: done as far as the queue is concerned
            self._finish(self._current, JobState.PLAYED)
        if job in self._upcoming:
            self._upcoming.remove(job)
        elif job in self._history:  # cancelled after it was handed over: what is heard wins
            self._history.remove(job)
            self._pin(job)
        job.handed = False
        job.audio = None
        job.state = JobState.PLAYING
        job.in_order = False
        if self._replaying is job:
            self._replaying = None
        self._current = job
        self._back.push(job.request)
        self.played.record(job.request, saved=self.cache.is_saved(job.request.key))
        self._save_played_history()
        if not job.complete:
            duration_s = max(duration_s, job.duration_s)
        self._position = (0.0, duration_s)
        self._changed(job)
        self._emit_now(job, 0.0, duration_s)
        if job.track is not None:
            key = job.track.key
            self._background(self.cache.touch_played, key)
        self._pump()

    def _track_finished(self, job_id: str) -> None:
        job = self._current
        if job is None or job.id != job_id:
            return
        self._finish(job, JobState.PLAYED)
        self._position = (0.0, 0.0)
        self._emit_now(None, 0.0, 0.0)
        self._pump()

    def _output_changed(self, event: OutputChanged) -> None:
        """The player lost its output or has it back: it plays on either way; tell the user."""
        if event.available:
            self._notice("audio output is back")
        else:
            self._notice(
                f"{event.reason or 'audio output lost'}; playing on unheard, retrying the "
                "audio output every few seconds",
                "warning",
            )
        self._emit(event)

    def _player_failed(self, message: str) -> None:
        self._notice(f"{message}; playing silently", "error")
        if self._current is not None:
            self._finish(self._current, JobState.PLAYED)
        for job in self._upcoming:
            job.handed = False
            job.streamed = False
        silent = self._silent_player()
        silent.start()
        self._attach(silent)
        self._emit_now(None, 0.0, 0.0)
        self._pump()

    def _background(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a small blocking call (index write) off the loop; aclose waits for it."""
        assert self._loop is not None
        future = self._loop.run_in_executor(None, fn, *args)
        self._tasks.add(future)
        future.add_done_callback(self._background_done)

    def _background_done(self, future: asyncio.Future[Any]) -> None:
        self._tasks.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("background cache update failed: %s", future.exception())
