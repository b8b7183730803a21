"""The real-time player: tracks in, gapless (or crossfaded) audio out through PortAudio.

Three threads, each with one job:

- the **audio callback** (PortAudio's thread) only copies prepared frames from a ring buffer
  to the device and multiplies them by a per-block gain ramp (volume, mute, pause fades) in
  preallocated buffers. It takes no locks and never waits on other work; on its first call
  it asks for real-time scheduling where the OS allows it;
- the **feeder** (``lofi-player``) owns everything else: it resamples each track to the device
  rate (soxr), makes it stereo, writes it into the ring ahead of the callback with equal-power
  crossfades between tracks, rewrites the not-yet-played part of the ring for skip/clear/late
  tracks, and turns the callback's progress into events;
- the **event dispatcher** (``lofi-player-events``) calls subscribers, so a slow subscriber can
  never starve the audio.

Subscribers are therefore called on the player's own thread, never on the asyncio loop or the
Textual app: hop threads there (``loop.call_soon_threadsafe(...)``, ``app.call_from_thread`` or
``widget.post_message``, which is thread-safe) and return quickly.

Ring positions are absolute frame counts: the feeder writes at ``_w``, the callback reads at
``_r`` (``_r <= _w``); the frame being heard is about ``_r - latency``. Everything before
``_r + margin`` is final; everything after it may be rewritten by the feeder (skip, clear, a
track that arrives after the previous one's tail was written).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lofitui.audio.mixing import equal_power_curves, fade, levels, to_stereo
from lofitui.audio.resample import resample
from lofitui.audio.types import Audio
from lofitui.errors import DeviceError

if TYPE_CHECKING:
    import sounddevice

log = logging.getLogger(__name__)

DEFAULT_SAMPLERATE = 48000
CHANNELS = 2
BLOCKSIZE = 1024  # frames per callback: fixed, so gain ramps and rewind margins are bounded
MAX_CROSSFADE_S = 10.0
PAUSE_FADE_S = 0.02  # pause/resume: click-free, yet feels instant
VOLUME_RAMP_S = 0.05  # a full 0 -> 1 volume change is spread over 50 ms
SKIP_FADE_S = 0.03  # the skipped track fades out over 30 ms; the next fades in over 5 ms
SKIP_FADE_IN_S = 0.005
FILL_AHEAD_S = 1.0  # prepared audio kept ahead of the callback (protects against GIL stalls)
REWIND_MARGIN_S = 0.25  # never rewrite closer than this to the callback's read position
IDLE_LEAD_S = 0.5  # silence written past the margin when nothing is queued (rewritable)
LEVEL_WINDOW_S = 0.05
TICK_S = 0.1  # position and level events: ~10 Hz
WATCHDOG_S = 2.0  # no callback for this long while running means the device is gone
# The callback needs the GIL. With Python's default 5 ms switch interval, three busy Python
# threads (a generation job's sampling loop, ...) delayed it by up to ~230 ms (measured); at 1 ms
# the worst delay was ~25 ms. The player lowers the interval while it runs.
GIL_SWITCH_INTERVAL_S = 0.001


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class TrackStarted:
    """A track became audible (at the start of its crossfade, if any)."""

    track_id: str
    duration_s: float


@dataclass(frozen=True)
class TrackFinished:
    """A track's last frame was played; ``skipped`` when it was cut short by skip/stop."""

    track_id: str
    skipped: bool = False


@dataclass(frozen=True)
class PositionTick:
    """Where the audible track is, about every ``TICK_S`` seconds while something plays."""

    track_id: str
    position_s: float
    duration_s: float
    paused: bool


@dataclass(frozen=True)
class LevelTick:
    """Peak and RMS (linear, full scale = 1.0) of what was just played, after volume."""

    peak: float
    rms: float


@dataclass(frozen=True)
class PlayerError:
    """Playback failed (device gone, ...); the player has stopped. ``message`` is one line."""

    message: str


PlayerEvent = TrackStarted | TrackFinished | PositionTick | LevelTick | PlayerError
Subscriber = Callable[[PlayerEvent], None]


@dataclass(frozen=True)
class NowPlaying:
    """The audible track: its id, how far into it we are, and how long it is (seconds)."""

    track_id: str
    position_s: float
    duration_s: float


# ---------------------------------------------------------------------------------------------
# Internals


class _Track:
    """A track prepared at the device rate, and where it sits in the ring once written."""

    __slots__ = (
        "duration_s",
        "end",
        "fade_in",
        "id",
        "pos",
        "samples",
        "skipped",
        "start",
        "started",
        "xin",
    )

    def __init__(self, track_id: str, samples: np.ndarray, rate: int) -> None:
        self.id = track_id
        self.samples = samples  # (frames, 2) float32 at the device rate
        self.duration_s = samples.shape[0] / rate
        self.reset()
        self.started = False  # TrackStarted sent
        self.skipped = False

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    def reset(self) -> None:
        self.start: int | None = None  # ring position of its first frame
        self.end: int | None = None  # ring position after its last frame, once fully written
        self.xin = 0  # frames of its head blended into the previous track's tail
        self.pos = 0  # next frame of the track to write
        self.fade_in = 0  # frames of short fade-in at its start (after a skip)


@dataclass
class _Command:
    name: str  # "skip" | "clear" | "stop"
    done: threading.Event


class Player:
    """Plays tracks back to back on an audio output, with crossfades, pause and volume.

    ``device`` is a sounddevice device (index or name substring; None = the default output),
    ``samplerate`` the rate asked of the device (None = 48000, or the device's default rate if it
    refuses 48000), ``crossfade_s`` the equal-power crossfade between tracks (0 = gapless),
    ``latency`` the output latency asked of PortAudio (at least 0.1 s). The default 0.25 s is
    what stayed free of dropouts on a loaded 2-core machine (0.15 s dropped out in 2 of 6 runs);
    pause, volume and skip take effect after about that long.

    While running, the player lowers Python's GIL switch interval to 1 ms (see
    ``GIL_SWITCH_INTERVAL_S``) and restores it on :meth:`close`.

    Thread-safe: every method may be called from any thread. Events go to subscribers on the
    player's own event thread (see the module docstring).
    """

    def __init__(
        self,
        device: int | str | None = None,
        samplerate: int | None = None,
        crossfade_s: float = 2.0,
        latency: float = 0.25,
    ) -> None:
        if latency < 0.1:
            raise ValueError("latency must be at least 0.1 s (shorter latencies drop out)")
        self.device = device
        self._requested_rate = samplerate
        self._latency_request = latency
        self._crossfade_s = _clamp(crossfade_s, 0.0, MAX_CROSSFADE_S)
        self.samplerate = samplerate or DEFAULT_SAMPLERATE

        self._lock = threading.Lock()  # API <-> feeder; never taken by the callback
        self._wake = threading.Event()
        self._pending: deque[tuple[str, Audio]] = deque()
        self._commands: deque[_Command] = deque()
        self._subscribers: list[Subscriber] = []
        self._events: queue.SimpleQueue[PlayerEvent | None] = queue.SimpleQueue()
        self._queued_snapshot: tuple[str, ...] = ()
        self._now_snapshot: NowPlaying | None = None

        # Shared with the callback: plain attributes (atomic reads/writes under the GIL).
        self._paused = False
        self._muted = False
        self._volume = 1.0
        self._r = 0
        self._w = 0
        self._gain_t = 1.0  # transport gain (pause fades), owned by the callback
        self._gain_v = 1.0  # volume gain, owned by the callback
        self._callbacks = 0
        self._underflows = 0
        self._starved_blocks = 0
        self._device_lost = False
        self._audio_pending = False  # a track is being written or waits: running dry is a dropout

        self._stream: sounddevice.OutputStream | None = None
        self._feeder: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._running = False
        self._closed = False
        self._error: str | None = None
        self._saved_switch_interval: float | None = None

        # Owned by the feeder thread.
        self._writer: _Track | None = None  # the track being written into the ring
        self._timeline: deque[_Track] = deque()  # written (in part), not yet finished playing
        self._upcoming: deque[_Track] = deque()  # prepared, not yet written

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the output stream and start the threads; :class:`DeviceError` if impossible."""
        if self._running:
            return
        if self._closed:
            raise RuntimeError("player was closed")
        sd = _sounddevice()
        device_info = _output_device(sd, self.device)
        stream = self._open_stream(sd, device_info)
        self._allocate(stream)
        self._stream = stream
        self._running = True
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="lofi-player-events", daemon=True
        )
        self._feeder = threading.Thread(target=self._feed_loop, name="lofi-player", daemon=True)
        self._dispatcher.start()
        self._feeder.start()
        self._saved_switch_interval = sys.getswitchinterval()
        if self._saved_switch_interval > GIL_SWITCH_INTERVAL_S:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        try:
            stream.start()
        except Exception as exc:
            self.close()
            raise DeviceError(f"cannot start audio output: {_one_line(exc)}") from exc

    def close(self) -> None:
        """Fade out, stop the stream and the threads. Idempotent; the player cannot restart."""
        if self._closed:
            return
        self._closed = True
        was_running = self._running
        self._running = False
        self._wake.set()
        if was_running and self._stream is not None and not self._device_lost:
            self._paused = True  # fade out instead of cutting mid-waveform
            deadline = time.monotonic() + 0.2
            while self._gain_t > 0.0 and time.monotonic() < deadline and self._stream.active:
                time.sleep(0.005)
        for thread in (self._feeder,):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=2.0)
        self._close_stream()
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
        self._events.put(None)
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            self._dispatcher.join(timeout=2.0)

    def __enter__(self) -> Player:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queue ---------------------------------------------------------------------------------

    def enqueue(self, track_id: str, audio: Audio) -> None:
        """Queue a track to play after the ones already queued (any rate, mono or stereo)."""
        if audio.frames == 0:
            raise ValueError(f"track {track_id!r} has no audio")
        if audio.sample_rate <= 0:
            raise ValueError(f"track {track_id!r} has an invalid sample rate")
        with self._lock:
            self._pending.append((track_id, audio))
            self._queued_snapshot = (*self._queued_snapshot, track_id)
        self._wake.set()

    def skip(self, wait: bool = False) -> None:
        """Fade the audible track out (30 ms) and go on with the next one."""
        self._command("skip", wait)

    def clear(self, wait: bool = False) -> None:
        """Forget every queued track that has not started; the audible one plays on."""
        self._command("clear", wait)

    def stop(self, wait: bool = False) -> None:
        """Clear the queue and fade out the audible track: silence until the next enqueue."""
        self._command("stop", wait)

    @property
    def queued_ids(self) -> tuple[str, ...]:
        """Ids of the tracks waiting to play, in order (not the audible one)."""
        return self._queued_snapshot

    @property
    def now_playing(self) -> NowPlaying | None:
        """The audible track, its position and duration (seconds); None in silence."""
        return self._now_snapshot

    # -- transport -----------------------------------------------------------------------------

    def pause(self) -> None:
        """Fade out over 20 ms and hold the position (the stream keeps running, silent)."""
        self._paused = True

    def resume(self) -> None:
        """Fade back in over 20 ms from exactly where :meth:`pause` stopped."""
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def volume(self) -> float:
        """Output volume 0..1 (linear gain); changes are ramped over up to 50 ms."""
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        self._volume = _clamp(float(value), 0.0, 1.0)

    @property
    def muted(self) -> bool:
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self._muted = bool(value)

    def toggle_mute(self) -> bool:
        """Flip mute and return the new state."""
        self._muted = not self._muted
        return self._muted

    @property
    def crossfade_s(self) -> float:
        return self._crossfade_s

    @crossfade_s.setter
    def crossfade_s(self, value: float) -> None:
        """Crossfade for tracks not yet blended (0 = gapless), at most ``MAX_CROSSFADE_S``."""
        self._crossfade_s = _clamp(float(value), 0.0, MAX_CROSSFADE_S)

    # -- events and diagnostics -----------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for each event (on the player's thread); returns unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    @property
    def running(self) -> bool:
        return self._running

    @property
    def error(self) -> str | None:
        """The one-line reason playback stopped, if it failed."""
        return self._error

    @property
    def underflows(self) -> int:
        """Callbacks that PortAudio flagged as output underflow (a hint; it under-reports)."""
        return self._underflows

    @property
    def starved_blocks(self) -> int:
        """Callbacks that found the ring short of track audio (the feeder fell behind)."""
        return self._starved_blocks

    # =========================================================================================
    # Stream and callback

    def _open_stream(self, sd: Any, device_info: dict[str, Any]) -> sounddevice.OutputStream:
        rates = [self._requested_rate or DEFAULT_SAMPLERATE]
        default_rate = int(device_info.get("default_samplerate") or 0)
        if self._requested_rate is None and default_rate and default_rate not in rates:
            rates.append(default_rate)
        last: Exception | None = None
        for rate in rates:
            try:
                stream = sd.OutputStream(
                    samplerate=rate,
                    blocksize=BLOCKSIZE,
                    device=self.device,
                    channels=CHANNELS,
                    dtype="float32",
                    latency=self._latency_request,
                    callback=self._callback,
                    finished_callback=self._stream_finished,
                )
            except (sd.PortAudioError, ValueError) as exc:
                last = exc
                continue
            self.samplerate = rate
            return stream
        name = device_info.get("name", "default")
        raise DeviceError(f"cannot open audio output {name!r}: {_one_line(last)}")

    def _allocate(self, stream: sounddevice.OutputStream) -> None:
        rate = self.samplerate
        self._latency_frames = round(float(stream.latency) * rate)
        self._margin = int(REWIND_MARGIN_S * rate)
        self._fill = int(FILL_AHEAD_S * rate)
        self._history = self._latency_frames + int(LEVEL_WINDOW_S * rate) + BLOCKSIZE
        capacity = self._fill + int(MAX_CROSSFADE_S * rate) + self._history + self._margin
        self._capacity = capacity
        self._ring = np.zeros((capacity, CHANNELS), np.float32)
        self._steps = np.arange(1, BLOCKSIZE + 1, dtype=np.float32)
        self._ramp_t = np.empty(BLOCKSIZE, np.float32)
        self._ramp_v = np.empty(BLOCKSIZE, np.float32)
        self._step_t = np.float32(1.0 / (PAUSE_FADE_S * rate))
        self._step_v = np.float32(1.0 / (VOLUME_RAMP_S * rate))
        self._gain_t = 0.0 if self._paused else 1.0
        self._gain_v = 0.0 if self._muted else self._volume
        # Start with a little silence in the ring so the first callbacks are never short.
        self._w = self._margin + int(IDLE_LEAD_S * rate)

    def _callback(self, outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        """PortAudio's thread: copy prepared frames, apply the gain ramp. Nothing else."""
        if self._callbacks == 0:
            _try_realtime_priority()
        self._callbacks += 1
        if status.output_underflow:
            self._underflows += 1
        target_t = 0.0 if self._paused else 1.0
        gain_t = self._gain_t
        if gain_t == 0.0 and target_t == 0.0:
            outdata.fill(0.0)  # paused: hold the read position
            return
        r = self._r
        n = min(frames, self._w - r)
        if n > 0:
            cap = self._capacity
            i = r % cap
            first = min(n, cap - i)
            outdata[:first] = self._ring[i : i + first]
            if n > first:
                outdata[first:n] = self._ring[: n - first]
            self._r = r + n
        if n < frames:
            outdata[max(n, 0) :].fill(0.0)
            if self._audio_pending:
                self._starved_blocks += 1
        target_v = 0.0 if self._muted else self._volume
        gain_v = self._gain_v
        if gain_t == target_t and gain_v == target_v:
            if gain_v != 1.0 or gain_t != 1.0:
                outdata *= gain_t * gain_v
            return
        if frames > BLOCKSIZE:  # PortAudio promised BLOCKSIZE; stay correct if it breaks that
            self._steps = np.arange(1, frames + 1, dtype=np.float32)
            self._ramp_t = np.empty(frames, np.float32)
            self._ramp_v = np.empty(frames, np.float32)
        ramp_t = self._ramp_t[:frames]
        ramp_v = self._ramp_v[:frames]
        _ramp(ramp_t, self._steps[:frames], gain_t, target_t, self._step_t)
        _ramp(ramp_v, self._steps[:frames], gain_v, target_v, self._step_v)
        new_t = float(ramp_t[-1])
        new_v = float(ramp_v[-1])
        ramp_t *= ramp_v
        outdata *= ramp_t[:, None]
        self._gain_t = new_t
        self._gain_v = new_v

    def _stream_finished(self) -> None:
        """PortAudio's thread: the stream ended. Only a flag; the feeder reports it."""
        if self._running:
            self._device_lost = True
            self._wake.set()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.abort()
            stream.close()
        except Exception as exc:  # a vanished device may refuse; nothing more to do
            log.debug("closing the audio stream failed: %s", exc)

    # =========================================================================================
    # Feeder thread

    def _feed_loop(self) -> None:
        next_tick = 0.0
        last_callbacks = -1
        last_progress = time.monotonic()
        try:
            while self._running:
                self._wake.wait(0.01)
                self._wake.clear()
                if self._device_lost:
                    self._fail(
                        "audio device stopped (it was disconnected or the sound server quit)"
                    )
                    return
                self._run_commands()
                self._prepare_one()
                self._fill_ring()
                self._audio_pending = self._writer is not None or bool(self._upcoming)
                now = time.monotonic()
                self._update_playback(now >= next_tick)
                if now >= next_tick:
                    next_tick = now + TICK_S
                if self._callbacks != last_callbacks:
                    last_callbacks = self._callbacks
                    last_progress = now
                elif now - last_progress > WATCHDOG_S:
                    self._fail("audio device stopped responding")
                    return
        except Exception as exc:
            log.exception("player feeder failed")
            self._fail(f"playback failed: {_one_line(exc)}")

    def _fail(self, message: str) -> None:
        """Report one error event and stop cleanly; the app goes on without sound."""
        self._error = message
        self._running = False
        self._device_lost = True
        self._emit(PlayerError(message))
        self._close_stream()
        self._publish(now=None)

    # -- commands and preparation ---------------------------------------------------------------

    def _command(self, name: str, wait: bool) -> None:
        command = _Command(name, threading.Event())
        with self._lock:
            self._commands.append(command)
        self._wake.set()
        if wait and self._running:
            command.done.wait(timeout=2.0)

    def _run_commands(self) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                command = self._commands.popleft()
            try:
                if command.name == "skip":
                    self._do_skip()
                elif command.name == "clear":
                    self._do_clear()
                elif command.name == "stop":
                    self._do_clear()
                    self._do_skip()
                self._publish(self._now_snapshot)  # queued_ids is current when skip() returns
            finally:
                command.done.set()

    def _prepare_one(self) -> None:
        """Resample and upmix the next pending track (one per loop, so the ring stays fed)."""
        with self._lock:
            if not self._pending:
                return
            item = self._pending[0]
        track_id, audio = item
        stereo = to_stereo(resample(audio, self.samplerate).samples)
        track = _Track(track_id, stereo, self.samplerate)
        with self._lock:
            if not self._pending or self._pending[0] is not item:
                return  # cleared meanwhile
            self._pending.popleft()
            self._upcoming.append(track)
        self._reopen_tail()

    # -- writing the ring ------------------------------------------------------------------------

    def _free(self) -> int:
        """Frames the feeder may write without touching unread or recently played frames."""
        return self._capacity - (self._w - self._r) - self._history

    def _write(self, block: np.ndarray) -> None:
        n = block.shape[0]
        cap = self._capacity
        i = self._w % cap
        first = min(n, cap - i)
        self._ring[i : i + first] = block[:first]
        if n > first:
            self._ring[: n - first] = block[first:]
        self._w += n

    def _fill_ring(self) -> None:
        while True:
            ahead = self._w - self._r
            if self._writer is None and self._upcoming:
                self._begin(self._upcoming.popleft(), xin=0)
            track = self._writer
            if track is None:
                # Nothing to play: keep a little silence ahead so positions advance and events fire.
                lead = self._margin + int(IDLE_LEAD_S * self.samplerate)
                n = min(lead - ahead, self._free(), BLOCKSIZE * 4)
                if n <= 0:
                    return
                self._write(np.zeros((n, CHANNELS), np.float32))
                continue
            if ahead >= self._fill:
                return
            nxt = self._upcoming[0] if self._upcoming else None
            tail = self._crossfade_frames(track, nxt) if nxt is not None else 0
            plain_end = track.frames - tail
            if track.pos < plain_end:
                n = min(plain_end - track.pos, self._fill - ahead, self._free(), BLOCKSIZE * 8)
                if n <= 0:
                    return
                self._write(self._track_block(track, n))
                continue
            # At the tail: blend into the next track (in one piece) or end here.
            xf = 0 if nxt is None else min(track.frames - track.pos, nxt.frames // 2)
            if xf > self._free():
                return
            if xf > 0:
                assert nxt is not None
                fade_out, fade_in = equal_power_curves(xf)
                tail_block = self._track_block(track, xf)
                self._upcoming.popleft()
                start = self._w
                head = nxt.samples[:xf]
                self._write(tail_block * fade_out[:, None] + head * fade_in[:, None])
                track.end = self._w
                self._begin(nxt, xin=xf, start=start)
            elif track.pos >= track.frames:
                track.end = self._w
                self._writer = None
            else:  # shortened track after a rewind with nothing next
                n = min(track.frames - track.pos, self._free())
                if n <= 0:
                    return
                self._write(self._track_block(track, n))

    def _begin(self, track: _Track, xin: int, start: int | None = None) -> None:
        track.start = self._w if start is None else start
        track.xin = xin
        track.pos = xin
        self._timeline.append(track)
        self._writer = track

    def _track_block(self, track: _Track, n: int) -> np.ndarray:
        """The next ``n`` frames of ``track`` (advancing it), with its fade-in if it has one."""
        block = track.samples[track.pos : track.pos + n]
        if track.pos < track.fade_in:
            k = min(track.fade_in - track.pos, n)
            gains = fade(track.fade_in, 0.0, 1.0)[track.pos : track.pos + k]
            block = block.copy()
            block[:k] *= gains[:, None]
        track.pos += n
        return block

    def _crossfade_frames(self, track: _Track, nxt: _Track) -> int:
        wanted = round(self._crossfade_s * self.samplerate)
        return max(0, min(wanted, track.frames // 2, nxt.frames // 2))

    # -- rewriting what has not been played yet ---------------------------------------------------

    def _earliest_rewrite(self) -> int:
        return min(self._w, self._r + self._margin)

    def _rewind(self, at: int) -> list[_Track]:
        """Forget everything written from ring position ``at`` on; return the tracks removed.

        ``at`` must be >= :meth:`_earliest_rewrite`; it moves forward out of a crossfade
        (crossfades are written whole, so their end is never past ``_w``).
        """
        lo = self._earliest_rewrite()
        for track in self._timeline:
            assert track.start is not None
            if track.xin and track.start < at < track.start + track.xin:
                at = track.start if track.start >= lo else track.start + track.xin
        at = max(at, lo)
        removed: list[_Track] = []
        while self._timeline and self._timeline[-1].start is not None:
            last = self._timeline[-1]
            assert last.start is not None
            if last.start < at or (last.start == at and last.started):
                break
            self._timeline.pop()
            last.reset()
            removed.insert(0, last)
        self._writer = None
        if self._timeline:
            last = self._timeline[-1]
            assert last.start is not None
            if last.end is None or last.end > at:
                last.end = None
                last.pos = at - last.start
                self._writer = last
        self._w = at
        return removed

    def _reopen_tail(self) -> None:
        """A track was just prepared: if the previous one's tail (or silence) is already in the
        ring, rewrite from the best point still allowed so it crossfades or follows gaplessly."""
        if len(self._upcoming) != 1:
            return  # not the track right after the last written one
        lo = self._earliest_rewrite()
        nxt = self._upcoming[0]
        last = self._timeline[-1] if self._timeline else None
        if last is None or last.start is None:
            ideal = lo  # only silence written: start as soon as allowed
        elif last.skipped:
            ideal = last.end if last.end is not None else self._w
        else:  # where its tail should start blending into the new track
            ideal = last.start + last.frames - self._crossfade_frames(last, nxt)
        at = max(ideal, lo)
        if at < self._w:
            self._requeue_front(self._rewind(at))

    def _requeue_front(self, tracks: list[_Track]) -> None:
        for track in reversed(tracks):
            self._upcoming.appendleft(track)

    def _do_skip(self) -> None:
        audible = self._audible()
        if audible is None:
            return
        lo = self._earliest_rewrite()
        if audible.end is not None and audible.end <= lo:
            return  # it ends within the margin anyway
        if self._w < lo:
            lo = self._w
        removed = self._rewind(lo)
        self._requeue_front(removed)
        if self._writer is not audible:
            return
        n = min(int(SKIP_FADE_S * self.samplerate), audible.frames - audible.pos)
        if n > self._free():
            n = max(0, self._free())
        block = self._track_block(audible, n)
        self._write(block * fade(n, 1.0, 0.0)[:, None])
        audible.end = self._w
        audible.skipped = True
        self._writer = None
        if self._upcoming:
            self._upcoming[0].fade_in = int(SKIP_FADE_IN_S * self.samplerate)

    def _do_clear(self) -> None:
        with self._lock:
            self._pending.clear()
        self._upcoming.clear()
        self._rewind(self._earliest_rewrite())  # what it removes is dropped with the queue

    # -- playback position and events ------------------------------------------------------------

    def _played(self) -> int:
        """Ring position of the frame being heard now."""
        return self._r - self._latency_frames

    def _audible(self, played: int | None = None) -> _Track | None:
        if played is None:
            played = self._played()
        audible = None
        for track in self._timeline:
            if track.start is not None and track.start <= played:
                audible = track
        if audible is not None and audible.end is not None and audible.end <= played:
            return None
        return audible

    def _update_playback(self, tick: bool) -> None:
        played = self._played()
        events: list[PlayerEvent] = []
        for track in list(self._timeline):
            if track.start is None or track.start > played:
                break
            if not track.started:
                track.started = True
                events.append(TrackStarted(track.id, track.duration_s))
            if track.end is not None and track.end <= played and track is not self._writer:
                self._timeline.remove(track)
                events.append(TrackFinished(track.id, track.skipped))
        audible = self._audible(played)
        now = None
        if audible is not None and audible.start is not None:
            position = _clamp((played - audible.start) / self.samplerate, 0.0, audible.duration_s)
            now = NowPlaying(audible.id, position, audible.duration_s)
        # Publish first: a subscriber reacting to an event sees queued_ids/now_playing after it.
        self._publish(now, played)
        for event in events:
            self._emit(event)
        if tick:
            if now is not None:
                self._emit(PositionTick(now.track_id, now.position_s, now.duration_s, self._paused))
            self._emit(self._level(played))

    def _level(self, played: int) -> LevelTick:
        if self._paused or played <= 0:
            return LevelTick(0.0, 0.0)
        n = min(int(LEVEL_WINDOW_S * self.samplerate), played)
        i = (played - n) % self._capacity
        if i + n <= self._capacity:
            block = self._ring[i : i + n]
        else:
            block = np.concatenate([self._ring[i:], self._ring[: i + n - self._capacity]])
        peak, rms = levels(block)
        gain = self._gain_v * self._gain_t
        return LevelTick(peak * gain, rms * gain)

    def _publish(self, now: NowPlaying | None, played: int | None = None) -> None:
        """Refresh what other threads read: the queue's ids and the audible track."""
        if played is None:
            played = self._played()
        with self._lock:
            ids: list[str] = []
            if self._running:
                ids = [t.id for t in self._timeline if t.start is None or t.start > played]
                ids += [t.id for t in self._upcoming]
            ids += [track_id for track_id, _ in self._pending]
            self._queued_snapshot = tuple(ids)
            self._now_snapshot = now

    # -- event dispatch ----------------------------------------------------------------------------

    def _emit(self, event: PlayerEvent) -> None:
        self._events.put(event)

    def _dispatch_loop(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            with self._lock:
                subscribers = list(self._subscribers)
            for subscriber in subscribers:
                try:
                    subscriber(event)
                except Exception:
                    log.exception("player event subscriber failed on %r", event)


# ---------------------------------------------------------------------------------------------
# Helpers


def _ramp(out: np.ndarray, steps: np.ndarray, current: float, target: float, step: Any) -> None:
    """Fill ``out`` with gains moving from ``current`` toward ``target`` by ``step`` per frame,
    in place (no allocation: this runs in the audio callback)."""
    if current == target:
        out.fill(target)
        return
    np.multiply(steps, step, out=out)
    if target > current:
        out += np.float32(current)
        np.minimum(out, np.float32(target), out=out)
    else:
        np.subtract(np.float32(current), out, out=out)
        np.maximum(out, np.float32(target), out=out)


def _try_realtime_priority() -> None:
    """Ask for round-robin real-time scheduling for the calling (audio) thread, where allowed.

    Audio apps and PortAudio's own ALSA option do the same. Allowed for root or with an
    RLIMIT_RTPRIO (e.g. the audio group's limits); otherwise it quietly stays as it was. On a
    2-core machine with 3 busy processes besides a generation job, this took the playback tests
    from 2 runs in 6 with dropouts to none in 5.
    """
    setscheduler = getattr(os, "sched_setscheduler", None)
    if setscheduler is None:
        return
    with contextlib.suppress(OSError, ValueError):
        setscheduler(
            0, os.SCHED_RR, os.sched_param(min(10, os.sched_get_priority_max(os.SCHED_RR)))
        )


def _sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio into a clear :class:`DeviceError`."""
    try:
        import sounddevice as sd
    except OSError as exc:  # "PortAudio library not found"
        raise DeviceError(
            "audio output unavailable: the PortAudio library is missing "
            "(install libportaudio2 / portaudio)"
        ) from exc
    return sd


def _output_devices(sd: Any) -> list[dict[str, Any]]:
    try:
        return [d for d in sd.query_devices() if d["max_output_channels"] > 0]
    except sd.PortAudioError:
        return []


def _output_device(sd: Any, device: int | str | None) -> dict[str, Any]:
    """The device to open, or :class:`DeviceError`. Rescans once if none is known: PortAudio
    lists devices when it is initialised, which may be before the sound server came up."""
    if not _output_devices(sd):
        with contextlib.suppress(Exception):
            sd._terminate()
            sd._initialize()
    if not _output_devices(sd):
        raise DeviceError(
            "no audio output device found (no sound card, or no sound server such as "
            "PulseAudio/PipeWire running)"
        )
    try:
        info = sd.query_devices(device, "output")
    except (ValueError, sd.PortAudioError) as exc:
        what = "default output" if device is None else f"output device {device!r}"
        raise DeviceError(f"{what} not available: {_one_line(exc)}") from exc
    return dict(info)


def _clamp(value: float, lo: float, hi: float) -> float:
    return lo if value < lo else hi if value > hi else value


def _one_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
