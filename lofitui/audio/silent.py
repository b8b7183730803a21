"""A player without sound: the same timeline as the real player, driven by a clock.

The scheduler uses it when there is no real player (PortAudio missing, or the player failed for
good; a player whose device is missing or lost plays on, unheard, by itself), so the
queue, crossfades, skip, pause and save behave exactly as with sound: tracks start, advance and
finish in real time on the same :class:`~lofitui.audio.timeline.Timeline` (growing tracks and
their buffering included), and the same
:mod:`lofitui.audio.events` arrive on a thread of their own. Nothing is heard: levels are 0,
and a skip while paused moves on at once (there is no fade-out to hear).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lofitui.audio.dispatch import Dispatcher
from lofitui.audio.events import Level, NowPlaying, PlayerEvent, Subscriber
from lofitui.audio.mixing import to_stereo
from lofitui.audio.resample import StreamResampler
from lofitui.audio.timeline import MAX_CROSSFADE_S, Timeline, prepare
from lofitui.audio.transport import Transport, TransportControls
from lofitui.audio.types import Audio

SAMPLERATE = 48000
TICK_S = 0.1
STALL_AHEAD_S = 0.05  # the clock is this close to a growing track's frontier: fade out, buffer


class SilentPlayer(TransportControls):
    """Plays nothing, in real time, with the real player's API and events.

    Thread-safe. ``transport`` holds volume, mute and pause (shared with whoever passes it);
    ``crossfade_s`` as for :class:`~lofitui.audio.player.Player`.
    """

    def __init__(
        self,
        crossfade_s: float = 0.0,
        transport: Transport | None = None,
        samplerate: int = SAMPLERATE,
        tick_s: float = TICK_S,
    ) -> None:
        self.transport = transport if transport is not None else Transport()
        self.samplerate = samplerate
        self._tick_s = tick_s
        self._stall_ahead = round(STALL_AHEAD_S * samplerate)
        self._cond = threading.Condition()
        self._timeline = Timeline(samplerate, crossfade_s)
        self._resamplers: dict[str, StreamResampler] = {}  # growing tracks
        self._events = Dispatcher("lofi-silent-player-events")
        self._clock = 0.0  # frames heard so far (the clock stops while paused)
        self._since = time.monotonic()  # when the clock was last advanced
        self._now: NowPlaying[None] | None = None
        self._running = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._running or self._closed:
                return
            self._running = True
            self._since = time.monotonic()
        self._events.start()
        self._thread = threading.Thread(target=self._run, name="lofi-silent-player", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._running = False
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._events.close()

    @property
    def running(self) -> bool:
        return self._running

    # -- queue and transport ---------------------------------------------------------------------

    def enqueue(
        self,
        track_id: str,
        audio: Audio,
        *,
        complete: bool = True,
        crossfade_s: float | None = None,
    ) -> None:
        if audio.frames == 0:
            raise ValueError(f"track {track_id!r} has no audio")
        if complete:
            samples = prepare(audio, self.samplerate)
        else:
            resampler = StreamResampler(audio.sample_rate, self.samplerate, audio.channels)
            samples = to_stereo(resampler.push(audio).samples)
        with self._cond:
            if not complete:
                self._resamplers[track_id] = resampler
            self._timeline.enqueue(
                track_id, samples, self._advance(), complete=complete, crossfade_s=crossfade_s
            )
            self._cond.notify_all()

    def append(self, track_id: str, audio: Audio) -> None:
        with self._cond:
            resampler = self._resamplers.get(track_id)
            if resampler is None or not self._timeline.holds(track_id):
                return  # cleared or finished playing meanwhile
            self._timeline.append(track_id, to_stereo(resampler.push(audio).samples))
            self._cond.notify_all()

    def finish(self, track_id: str, *, cut: bool = False) -> None:
        with self._cond:
            resampler = self._resamplers.pop(track_id, None)
            if resampler is None or not self._timeline.holds(track_id):
                return
            tail = to_stereo(resampler.flush().samples)
            if tail.shape[0]:
                self._timeline.append(track_id, tail)
            self._timeline.finish(track_id, cut=cut)
            self._cond.notify_all()

    def skip(self, wait: bool = False) -> None:
        with self._cond:
            played = self._advance()
            self._timeline.skip(played, played)
            self._complete_fade(played)
            self._cond.notify_all()

    def clear(self, wait: bool = False) -> None:
        with self._cond:
            self._timeline.clear(self._advance())
            self._cond.notify_all()

    def stop(self, wait: bool = False) -> None:
        with self._cond:
            played = self._advance()
            self._timeline.stop(played, played)
            self._complete_fade(played)
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._advance()
            self.transport.paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._advance()
            self.transport.paused = False
            self._cond.notify_all()

    @property
    def crossfade_s(self) -> float:
        return self._timeline.crossfade_s

    @property
    def queued_ids(self) -> tuple[str, ...]:
        with self._cond:
            return tuple(self._timeline.queued_ids(int(self._clock)))

    @property
    def now_playing(self) -> NowPlaying[None] | None:
        return self._now

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        return self._events.subscribe(callback)

    # -- the clock -------------------------------------------------------------------------------

    def _advance(self) -> int:
        """Move the clock to now and render a tick ahead of it (under the lock); the frame heard.

        Rendered frames past the heard one may still be rewritten (skip, clear, a new track),
        just as the real player rewrites its ring past the margin.
        """
        now = time.monotonic()
        if self._running and not self.transport.paused:
            self._clock += (now - self._since) * self.samplerate
        self._since = now
        timeline = self._timeline
        target = int(self._clock) + round(self._tick_s * self.samplerate)
        while timeline.written < target:
            want = target - timeline.written
            block = timeline.render(want, max(want, round(MAX_CROSSFADE_S * self.samplerate)))
            if block.shape[0] == 0:
                if timeline.at_frontier and timeline.written - self._clock < self._stall_ahead:
                    block = timeline.stall()  # about to run dry: fade out and buffer
                    if block.shape[0]:
                        continue
                if timeline.pending:  # a growing track buffers: the clock waits for it
                    self._clock = min(self._clock, float(timeline.written))
                    break
                timeline.silence(want)
        return int(self._clock)

    def _complete_fade(self, played: int) -> None:
        """While paused nothing is heard, so a skip's fade-out takes no time: jump past it."""
        if self.transport.paused:
            self._advance()  # renders the fade
            end = self._timeline.next_change(played)
            if end is not None:
                self._clock = float(end)

    def _run(self) -> None:
        next_tick = 0.0
        while True:
            events: list[PlayerEvent] = []
            with self._cond:
                if not self._running:
                    return
                played = self._advance()
                playback = self._timeline.playback(played, self.transport.paused)
                self._now = playback.now
                events.extend(playback.events)
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + self._tick_s
                    if playback.now is not None:
                        events.append(playback.now)
                    events.append(Level(0.0, 0.0))
                timeout = next_tick - now
                change = self._timeline.next_change(played)
                if change is not None and not self.transport.paused:
                    timeout = min(timeout, (change - self._clock) / self.samplerate)
            for event in events:
                self._events.emit(event)
            with self._cond:
                if self._running:
                    self._cond.wait(max(0.001, timeout))
