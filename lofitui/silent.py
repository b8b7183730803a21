"""A player without sound: tracks "play" on a wall clock, with the real player's API and events.

The scheduler uses it when there is no audio output (a headless machine, a lost device), so the
queue, skip, pause and save behave exactly as with sound: tracks start, advance and finish in
real time, and the same :mod:`lofitui.audio.player` events arrive on a thread of its own.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from lofitui.audio.player import (
    LevelTick,
    PlayerEvent,
    PositionTick,
    TrackFinished,
    TrackStarted,
)
from lofitui.audio.types import Audio

log = logging.getLogger(__name__)

TICK_S = 0.1


class SilentPlayer:
    """Plays nothing, in real time. Thread-safe; events go to subscribers on its own thread."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self._tick_s = tick_s
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, float]] = deque()
        self._current: tuple[str, float] | None = None
        self._base = 0.0  # position of the current track when the clock last (re)started
        self._since = 0.0  # monotonic time the clock last (re)started
        self._skip = False
        self._dirty = False
        self._paused = False
        self._running = False
        self._closed = False
        self._subscribers: list[Callable[[PlayerEvent], None]] = []
        self._thread: threading.Thread | None = None
        self.volume = 1.0
        self.muted = False
        self.error: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._running or self._closed:
                return
            self._running = True
        self._thread = threading.Thread(target=self._run, name="lofi-silent-player", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._running = False
            self._dirty = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    @property
    def running(self) -> bool:
        return self._running

    # -- queue and transport ---------------------------------------------------------------------

    def enqueue(self, track_id: str, audio: Audio) -> None:
        if audio.frames == 0:
            raise ValueError(f"track {track_id!r} has no audio")
        with self._cond:
            self._queue.append((track_id, audio.duration_s))
            self._dirty = True
            self._cond.notify_all()

    def skip(self, wait: bool = False) -> None:
        with self._cond:
            if self._current is not None:
                self._skip = True
                self._dirty = True
            self._cond.notify_all()

    def clear(self, wait: bool = False) -> None:
        with self._cond:
            self._queue.clear()

    def stop(self, wait: bool = False) -> None:
        with self._cond:
            self._queue.clear()
            if self._current is not None:
                self._skip = True
            self._dirty = True
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            if not self._paused:
                self._base = self._position(time.monotonic())
                self._paused = True
                self._dirty = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            if self._paused:
                self._since = time.monotonic()
                self._paused = False
                self._dirty = True
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    def toggle_mute(self) -> bool:
        self.muted = not self.muted
        return self.muted

    @property
    def queued_ids(self) -> tuple[str, ...]:
        with self._cond:
            return tuple(track_id for track_id, _ in self._queue)

    def subscribe(self, callback: Callable[[PlayerEvent], None]) -> Callable[[], None]:
        with self._cond:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._cond, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    # -- the clock -------------------------------------------------------------------------------

    def _position(self, now: float) -> float:
        return self._base if self._paused else self._base + (now - self._since)

    def _run(self) -> None:
        next_tick = 0.0
        while True:
            events: list[PlayerEvent] = []
            with self._cond:
                if not self._running:
                    return
                now = time.monotonic()
                overshoot = 0.0
                if self._current is not None:
                    track_id, duration = self._current
                    position = self._position(now)
                    if self._skip or position >= duration:
                        events.append(TrackFinished(track_id, skipped=self._skip))
                        overshoot = 0.0 if self._skip else position - duration
                        self._current = None
                        self._skip = False
                if self._current is None and self._queue:
                    self._current = self._queue.popleft()
                    self._base = min(overshoot, self._current[1])  # gapless: time runs on
                    self._since = now
                    events.append(TrackStarted(*self._current))
                if now >= next_tick:
                    next_tick = now + self._tick_s
                    if self._current is not None:
                        position = min(self._position(now), self._current[1])
                        events.append(
                            PositionTick(self._current[0], position, self._current[1], self._paused)
                        )
                    events.append(LevelTick(0.0, 0.0))
                timeout = next_tick - now
                if self._current is not None and not self._paused:
                    timeout = min(timeout, self._current[1] - self._position(now))
                subscribers = list(self._subscribers)
            for event in events:
                for callback in subscribers:
                    try:
                        callback(event)
                    except Exception:
                        log.exception("silent player subscriber failed on %r", event)
            with self._cond:
                if self._running and not events and not self._dirty:
                    self._cond.wait(max(0.0, timeout))
                self._dirty = False
