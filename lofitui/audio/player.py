"""The real-time player: tracks in, gapless (or crossfaded) audio out through PortAudio.

It drives a :class:`~lofitui.audio.timeline.Timeline` (which track sounds at which frame) into
a ring buffer ahead of the audio device. Three threads, each with one job:

- the **audio callback** (PortAudio's thread) only copies prepared frames from the ring to the
  device, applies the :class:`~lofitui.audio.transport.GainRamp` (volume, mute, pause fades)
  in preallocated buffers and copies the result into an :class:`~lofitui.audio.tap.OutputTap`
  (what :meth:`Player.heard` returns to the visualiser). It takes no locks and never waits on
  other work; on its first call it asks for real-time scheduling where the OS allows it;
- the **feeder** (``lofi-player``) owns everything else: it resamples each track to the device
  rate (soxr), renders the timeline into the ring ahead of the callback, has the timeline
  rewrite the not-yet-played part for skip/clear/late tracks, and turns the callback's
  progress into events;
- the **event dispatcher** (``lofi-player-events``) calls subscribers, so a slow subscriber can
  never starve the audio (see :mod:`lofitui.audio.dispatch`).

**Without an output** (none at start, or the stream died: the sound server quit, the device was
unplugged) the player plays on unheard: the feeder takes the ring's frames on the wall clock as
the callback would, so tracks start, stream and finish as if heard, and a fourth thread
(``lofi-audio-retry``) rescans PortAudio's devices and tries the default output every
``RETRY_S`` (at once on :meth:`Player.retry_output`). A stream that opens starts reading the ring
at the frame the clock reached, faded in; :class:`OutputChanged` tells of both changes.

Ring positions are the timeline's frame positions: the feeder writes at ``_w``, the callback
reads at ``_r`` (``_r <= _w``); the frame being heard is about ``_r - latency``. Everything before
``_r + margin`` is final; everything after it may be rewritten.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lofitui.audio.dispatch import Dispatcher
from lofitui.audio.events import (
    Level,
    NowPlaying,
    OutputChanged,
    PlayerError,
    PlayerEvent,
    Subscriber,
)
from lofitui.audio.mixing import levels, to_stereo
from lofitui.audio.output import (
    import_sounddevice,
    one_line,
    output_device,
    rescan,
    try_realtime_priority,
)
from lofitui.audio.resample import StreamResampler
from lofitui.audio.tap import OutputTap
from lofitui.audio.timeline import CHANNELS, MAX_CROSSFADE_S, Timeline, prepare
from lofitui.audio.transport import GainRamp, Transport, TransportControls
from lofitui.audio.types import Audio
from lofitui.errors import DeviceError

if TYPE_CHECKING:
    import sounddevice

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_SAMPLERATE", "NowPlaying", "Player", "PlayerEvent"]

DEFAULT_SAMPLERATE = 48000
BLOCKSIZE = 1024  # frames per callback: fixed, so gain ramps and rewind margins are bounded
FILL_AHEAD_S = 1.0  # prepared audio kept ahead of the callback (protects against GIL stalls)
REWIND_MARGIN_S = 0.25  # never rewrite closer than this to the callback's read position
IDLE_LEAD_S = 0.5  # silence written past the margin when nothing is queued (rewritable)
STALL_AHEAD_S = 0.15  # at a growing track's frontier with less than this ahead: fade out, buffer
LEVEL_WINDOW_S = 0.05
HEARD_S = 0.25  # the longest window Player.heard returns (a visualiser's FFT needs ~43 ms)
TICK_S = 0.1  # position and level events: ~10 Hz
WATCHDOG_S = 2.0  # no callback for this long while running means the device is gone
RETRY_S = 2.0  # without an output, try the default device again this often
LOST_MESSAGE = "audio device stopped (it was disconnected or the sound server quit)"
# The callback needs the GIL. With Python's default 5 ms switch interval, three busy Python
# threads (a generation job's sampling loop, ...) delayed it by up to ~230 ms (measured); at 1 ms
# the worst delay was ~25 ms. The player lowers the interval while it runs.
GIL_SWITCH_INTERVAL_S = 0.001


@dataclass
class _Command:
    name: str  # "skip" | "clear" | "stop"
    done: threading.Event


@dataclass
class _Input:
    """Track audio on its way to the timeline: a new track, more of a growing one, or its end."""

    kind: str  # "enqueue" | "append" | "finish"
    track_id: str
    audio: Audio | None = None
    complete: bool = True
    crossfade_s: float | None = None
    cut: bool = False


class Player(TransportControls):
    """Plays tracks back to back on an audio output, with crossfades, pause and volume.

    ``device`` is a sounddevice device (index or name substring; None = the default output),
    ``samplerate`` the rate asked of the device (None = 48000, or the device's default rate if it
    refuses 48000), ``crossfade_s`` the equal-power crossfade between tracks (0 = gapless),
    ``latency`` the output latency asked of PortAudio (at least 0.1 s). The default 0.25 s is
    what stayed free of dropouts on a loaded 2-core machine (0.15 s dropped out in 2 of 6 runs);
    pause, volume and skip take effect after about that long. ``transport`` holds volume, mute
    and pause (a new one if None); whoever shares it sees and changes the same state.

    While running, the player lowers Python's GIL switch interval to 1 ms (see
    ``GIL_SWITCH_INTERVAL_S``) and restores it on :meth:`close`.

    Without a usable output it plays on unheard, on the wall clock, and retries the device
    (module docstring); :attr:`has_output` and :attr:`output_error` say how it stands. A
    stream is reopened at the rate the player already runs at.

    Thread-safe: every method may be called from any thread. Events go to subscribers on the
    player's own event thread.
    """

    def __init__(
        self,
        device: int | str | None = None,
        samplerate: int | None = None,
        crossfade_s: float = 2.0,
        latency: float = 0.25,
        transport: Transport | None = None,
    ) -> None:
        if latency < 0.1:
            raise ValueError("latency must be at least 0.1 s (shorter latencies drop out)")
        self.device = device
        self.transport = transport if transport is not None else Transport()
        self._requested_rate = samplerate
        self._latency_request = latency
        self.samplerate = samplerate or DEFAULT_SAMPLERATE
        self._timeline = Timeline(self.samplerate, crossfade_s)

        self._lock = threading.Lock()  # API <-> feeder; never taken by the callback
        self._wake = threading.Event()
        self._pending: deque[_Input] = deque()
        self._resamplers: dict[str, StreamResampler] = {}  # growing tracks (feeder only)
        self._commands: deque[_Command] = deque()
        self._events = Dispatcher("lofi-player-events")
        self._queued_snapshot: tuple[str, ...] = ()
        self._now_snapshot: NowPlaying[None] | None = None

        # Shared with the callback: plain attributes (atomic reads/writes under the GIL).
        self._r = 0
        self._w = 0
        self._gain = GainRamp(self.transport, self.samplerate, BLOCKSIZE)
        self._tap: OutputTap | None = None  # what the callback sent out (allocated at start)
        self._callbacks = 0
        # Silence the callback had to output (ring dry: a stall or a dropout) shifts what is
        # heard: the last run of it (device frame where it began, ring position, length) and
        # the total of the runs before, so the heard frame holds through a stall.
        self._out = 0  # device frames output while not paused
        self._gap_at = 0
        self._gap_r = 0
        self._gap_len = 0
        self._gaps_before = 0
        self._in_gap = False
        self._underflows = 0
        self._starved_blocks = 0
        self._audio_pending = False  # a track is being written or waits: running dry is a dropout
        # Never report a heard frame before this one (set when a reopened stream takes over).
        self._played_floor = -sys.maxsize

        # The output: whether a stream takes the frames, and the clock that does when none does.
        self._sd: Any = None
        self._online = False
        self._output_error: str | None = None
        self._lost: str | None = None  # set on PortAudio's thread: the stream ended by itself
        self._generation = 0  # the stream a finished callback belongs to
        self._incoming: sounddevice.OutputStream | None = None  # opened by the retry thread
        self._retry_now = threading.Event()
        self._retrier: threading.Thread | None = None
        self._seen_callbacks = 0
        self._seen_at = 0.0  # when the feeder last saw the callback run
        self._clock_at = 0.0  # without output: when the clock last took frames
        self._clock_frac = 0.0

        self._stream: sounddevice.OutputStream | None = None
        self._feeder: threading.Thread | None = None
        self._running = False
        self._closed = False
        self._error: str | None = None
        self._saved_switch_interval: float | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the output stream and start the threads.

        Without a usable output (no device, no sound server, a stream that will not start) the
        player starts all the same, unheard, and retries (:attr:`output_error` says why).
        :class:`DeviceError` only if PortAudio itself is missing.
        """
        if self._running:
            return
        if self._closed:
            raise RuntimeError("player was closed")
        sd = self._sd = import_sounddevice()
        stream: sounddevice.OutputStream | None = None
        reason = ""
        try:
            device_info = output_device(sd, self.device)
            stream = self._open_stream(sd, device_info, self._start_rates(device_info))
        except DeviceError as exc:
            reason = str(exc)
        self._allocate(float(stream.latency) if stream is not None else self._latency_request)
        self._running = True
        self._saved_switch_interval = sys.getswitchinterval()
        if self._saved_switch_interval > GIL_SWITCH_INTERVAL_S:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self._events.start()
        now = time.monotonic()
        if stream is None:
            self._go_offline(reason, now)
        else:
            self._begin(stream, now)
        self._feeder = threading.Thread(target=self._feed_loop, name="lofi-player", daemon=True)
        self._feeder.start()

    def close(self) -> None:
        """Fade out, stop the stream and the threads. Idempotent; the player cannot restart."""
        if self._closed:
            return
        with self._lock:  # the retry thread hands a stream over only while running
            self._closed = True
            was_running = self._running
            self._running = False
        self._wake.set()
        self._retry_now.set()
        if was_running and self._online and self._stream is not None:
            paused = self.transport.paused
            self.transport.paused = True  # fade out instead of cutting mid-waveform
            deadline = time.monotonic() + 0.2
            while not self._gain.holding and time.monotonic() < deadline and self._stream.active:
                time.sleep(0.005)
            self.transport.paused = paused  # the state outlives this player
        for thread in (self._feeder, self._retrier):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=2.0)
        self._online = False
        self._generation += 1
        self._close_stream()
        with self._lock:
            incoming, self._incoming = self._incoming, None
        if incoming is not None:
            _close_quietly(incoming)
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
        self._events.close()

    def __enter__(self) -> Player:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queue ---------------------------------------------------------------------------------

    def enqueue(
        self,
        track_id: str,
        audio: Audio,
        *,
        complete: bool = True,
        crossfade_s: float | None = None,
    ) -> None:
        """Queue a track to play after the ones already queued (any rate, mono or stereo).

        ``complete=False``: the track is still being generated; more of it follows through
        :meth:`append` and its end through :meth:`finish` (see :class:`Timeline` for what
        happens if playback reaches its frontier). ``crossfade_s``: the crossfade into this
        track (None: the player's).
        """
        if audio.frames == 0:
            raise ValueError(f"track {track_id!r} has no audio")
        if audio.sample_rate <= 0:
            raise ValueError(f"track {track_id!r} has an invalid sample rate")
        with self._lock:
            self._pending.append(_Input("enqueue", track_id, audio, complete, crossfade_s))
            self._queued_snapshot = (*self._queued_snapshot, track_id)
        self._wake.set()

    def append(self, track_id: str, audio: Audio) -> None:
        """More audio of a growing track (same rate and channels as its first part)."""
        with self._lock:
            self._pending.append(_Input("append", track_id, audio))
        self._wake.set()

    def finish(self, track_id: str, *, cut: bool = False) -> None:
        """A growing track is complete (``cut``: stopped early; it fades out at its end)."""
        with self._lock:
            self._pending.append(_Input("finish", track_id, cut=cut))
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
    def now_playing(self) -> NowPlaying[None] | None:
        """The audible track, its position and duration (seconds); None in silence."""
        return self._now_snapshot

    # -- transport -----------------------------------------------------------------------------

    def pause(self) -> None:
        """Fade out over 20 ms and hold the position (the stream keeps running, silent)."""
        self.transport.paused = True

    def resume(self) -> None:
        """Fade back in over 20 ms from exactly where :meth:`pause` stopped."""
        self.transport.paused = False

    @property
    def crossfade_s(self) -> float:
        """Crossfade for tracks not yet blended (0 = gapless), at most ``MAX_CROSSFADE_S``."""
        return self._timeline.crossfade_s

    @crossfade_s.setter
    def crossfade_s(self, value: float) -> None:
        self._timeline.crossfade_s = min(max(float(value), 0.0), MAX_CROSSFADE_S)

    # -- events and diagnostics -----------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for each event (on the player's thread); returns unsubscribe."""
        return self._events.subscribe(callback)

    @property
    def running(self) -> bool:
        """Started and not closed or failed (with or without an output)."""
        return self._running

    @property
    def has_output(self) -> bool:
        """True while a device plays the audio; False while the player runs unheard."""
        return self._online

    @property
    def output_error(self) -> str | None:
        """Why there is no output (one line, the last attempt's reason); None while there is."""
        return None if self._online else self._output_error

    def retry_output(self) -> None:
        """Try the output device again now rather than at the next automatic retry."""
        self._retry_now.set()

    def heard(self, frames: int) -> Audio | None:
        """The last ``frames`` frames (at most ``HEARD_S`` worth) as sent to the device, after
        volume, pause fades and crossfades, taken one output latency back so they match what
        sounds now; silence while paused. None while nothing is heard (no output, or not yet)."""
        tap = self._tap
        if tap is None or not self._online:
            return None
        frames = min(frames, int(HEARD_S * self.samplerate))
        samples = tap.read(frames, min(self._latency_frames, tap.capacity - frames))
        return None if samples is None else Audio(samples, self.samplerate)

    @property
    def error(self) -> str | None:
        """The one-line reason playback stopped for good, if it failed."""
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

    def _start_rates(self, device_info: dict[str, Any]) -> list[int]:
        """The rates to ask of the device at start: the requested one (or 48000, then the
        device's default)."""
        rates = [self._requested_rate or DEFAULT_SAMPLERATE]
        default_rate = int(device_info.get("default_samplerate") or 0)
        if self._requested_rate is None and default_rate and default_rate not in rates:
            rates.append(default_rate)
        return rates

    def _open_stream(
        self, sd: Any, device_info: dict[str, Any], rates: list[int]
    ) -> sounddevice.OutputStream:
        """An output stream (not started) at the first of ``rates`` the device accepts."""
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
                    finished_callback=functools.partial(self._stream_finished, self._generation),
                )
            except (sd.PortAudioError, ValueError) as exc:
                last = exc
                continue
            self.samplerate = rate
            return stream
        name = device_info.get("name", "default")
        raise DeviceError(f"cannot open audio output {name!r}: {one_line(last)}")

    def _allocate(self, latency_s: float) -> None:
        """The ring and the timeline at the device rate; ``latency_s``: the stream's latency."""
        rate = self.samplerate
        self._latency_frames = round(latency_s * rate)
        self._margin = int(REWIND_MARGIN_S * rate)
        self._fill = int(FILL_AHEAD_S * rate)
        self._lead = self._margin + int(IDLE_LEAD_S * rate)
        self._stall_ahead = int(STALL_AHEAD_S * rate)
        # Played frames kept behind the read position: a reopened stream starts up to one
        # latency back (room for a stream with up to twice the latency asked for).
        latency = max(self._latency_frames, round(2 * self._latency_request * rate))
        self._history = latency + int(LEVEL_WINDOW_S * rate) + BLOCKSIZE
        capacity = self._fill + int(MAX_CROSSFADE_S * rate) + self._history + self._margin
        self._capacity = capacity
        self._ring = np.zeros((capacity, CHANNELS), np.float32)
        self._tap = OutputTap(latency + int(HEARD_S * rate) + 4 * BLOCKSIZE, CHANNELS)
        self._timeline = Timeline(rate, self._timeline.crossfade_s)
        self._gain = GainRamp(self.transport, rate, BLOCKSIZE)
        # Start with a little silence in the ring so the first callbacks are never short.
        self._timeline.silence(self._lead)
        self._w = self._timeline.written

    def _callback(self, outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        """PortAudio's thread: copy prepared frames, apply the gain ramp. Nothing else."""
        if self._callbacks == 0:
            try_realtime_priority()
        self._callbacks += 1
        if status.output_underflow:
            self._underflows += 1
        gain = self._gain
        tap = self._tap
        if gain.holding:
            outdata.fill(0.0)  # paused: hold the read position
            if tap is not None:
                tap.write(outdata)
            return
        r = self._r
        n = max(0, min(frames, self._w - r))
        if n > 0:
            cap = self._capacity
            i = r % cap
            first = min(n, cap - i)
            outdata[:first] = self._ring[i : i + first]
            if n > first:
                outdata[first:n] = self._ring[: n - first]
        if n < frames:
            outdata[n:].fill(0.0)
            if self._audio_pending:
                self._starved_blocks += 1
        self._account(r, n, frames)
        gain.apply(outdata)
        if tap is not None:
            tap.write(outdata)

    def _account(self, r: int, n: int, frames: int) -> None:
        """``frames`` went out: ring frames ``[r, r + n)``, then silence (the ring ran dry).

        The callback's thread, or the feeder's while there is no output (one at a time)."""
        if n > 0:
            self._r = r + n
            self._in_gap = False
        if n < frames:
            if not self._in_gap:  # a new run of silence
                self._gaps_before += self._gap_len
                self._gap_len = 0
                self._gap_at = self._out + n
                self._gap_r = r + n
                self._in_gap = True
            self._gap_len += frames - n
        self._out += frames

    def _stream_finished(self, generation: int) -> None:
        """PortAudio's thread: a stream ended. Only a flag (the feeder acts on it), and only
        for the current stream ending by itself (not one the player closed)."""
        if self._running and generation == self._generation and self._lost is None:
            self._lost = LOST_MESSAGE
            self._wake.set()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            _close_quietly(stream)

    # =========================================================================================
    # The output: lost, run on the clock, retried, back

    def _begin(self, stream: sounddevice.OutputStream, now: float) -> None:
        """Start ``stream`` on the ring from ``_r``; without output again if it will not start."""
        self._stream = stream
        self._callbacks = 0
        self._seen_callbacks, self._seen_at = 0, now
        try:
            stream.start()
        except Exception as exc:
            self._go_offline(f"cannot start audio output: {one_line(exc)}", now)
            return
        self._online = True
        self._output_error = None

    def _go_offline(self, reason: str, since: float) -> None:
        """No output from now on: close the stream, let the clock take frames from ``since``
        (when the output last took some), and start retrying."""
        self._online = False
        self._generation += 1  # the closing stream's finished callback is no new loss
        self._close_stream()
        self._lost = None
        self._output_error = reason
        self._clock_at, self._clock_frac = since, 0.0
        self._retry_now.clear()
        self._events.emit(OutputChanged(False, reason))
        self._retrier = threading.Thread(
            target=self._retry_loop, name="lofi-audio-retry", daemon=True
        )
        self._retrier.start()

    def _go_online(self, stream: sounddevice.OutputStream, now: float) -> None:
        """A reopened stream takes over from the clock at the frame the clock reached.

        The clock took its frames a latency ahead of the heard one, as the callback does; the
        new stream rereads them (they are still in the ring) and fades in."""
        played = self._played()
        start = min(max(played, self._w - self._capacity, 0), self._w)
        self._r = self._out = start
        self._gaps_before = self._gap_len = self._gap_at = self._gap_r = 0
        self._in_gap = False
        self._latency_frames = round(float(stream.latency) * self.samplerate)
        self._played_floor = played  # the first callbacks fill the device buffer
        gain = GainRamp(self.transport, self.samplerate, BLOCKSIZE)
        gain.transport_gain = 0.0  # the sound comes back mid-waveform: fade in
        self._gain = gain
        self._begin(stream, now)
        if self._online:
            self._events.emit(OutputChanged(True))
        else:  # it would not start: the clock goes on from the same frame
            self._out = start + self._latency_frames

    def _follow_output(self, now: float) -> None:
        """Feeder: notice a lost output, take a reopened one, or run the clock."""
        if self._online:
            if self._callbacks != self._seen_callbacks:
                self._seen_callbacks, self._seen_at = self._callbacks, now
            lost = self._lost
            if lost is None and now - self._seen_at > WATCHDOG_S:
                lost = "audio device stopped responding"
            if lost is not None:
                self._go_offline(lost, self._seen_at)
            return
        with self._lock:
            stream, self._incoming = self._incoming, None
        if stream is not None:
            self._go_online(stream, now)
        else:
            self._run_clock(now)

    def _run_clock(self, now: float) -> None:
        """Feeder, without output: take the ring's frames in real time, as the callback would
        (none while paused), writing more as they go."""
        elapsed = now - self._clock_at
        self._clock_at = now
        if self.transport.paused or elapsed <= 0:
            return
        self._clock_frac += elapsed * self.samplerate
        frames = int(self._clock_frac)
        self._clock_frac -= frames
        while frames > 0:
            step = min(frames, BLOCKSIZE)
            if self._w - self._r < step:
                self._fill_ring()
            r = self._r
            self._account(r, max(0, min(step, self._w - r)), step)
            frames -= step

    def _retry_loop(self) -> None:
        """Retry thread: every ``RETRY_S`` (or when asked) rescan and open the default output,
        until one opens; hand it to the feeder. PortAudio is rescanned only here, with the
        player's stream closed."""
        while True:
            self._retry_now.wait(RETRY_S)
            self._retry_now.clear()
            if not self._running:
                return
            try:
                stream = self._reopen()
            except DeviceError as exc:
                self._output_error = str(exc)
                continue
            except Exception as exc:  # never let the retries die: log it, try again later
                log.warning("reopening the audio output failed", exc_info=exc)
                self._output_error = f"cannot reopen the audio output: {one_line(exc)}"
                continue
            with self._lock:
                if self._running:
                    self._incoming = stream
                    self._wake.set()
                    return
            _close_quietly(stream)
            return

    def _reopen(self) -> sounddevice.OutputStream:
        """A new stream on the output (not started), at the rate the ring is rendered at."""
        sd = self._sd
        rescan(sd)
        return self._open_stream(sd, output_device(sd, self.device), [self.samplerate])

    # =========================================================================================
    # Feeder thread

    def _feed_loop(self) -> None:
        next_tick = 0.0
        try:
            while self._running:
                self._wake.wait(0.01)
                self._wake.clear()
                now = time.monotonic()
                self._follow_output(now)
                self._run_commands()
                self._prepare_one()
                self._fill_ring()
                self._audio_pending = self._timeline.pending and not self._timeline.stalled
                self._update_playback(now >= next_tick)
                if now >= next_tick:
                    next_tick = now + TICK_S
        except Exception as exc:
            log.exception("player feeder failed")
            self._fail(f"playback failed: {one_line(exc)}")

    def _fail(self, message: str) -> None:
        """Report one error event and stop for good; the app goes on without sound."""
        self._error = message
        self._running = False
        self._online = False
        self._generation += 1
        self._events.emit(PlayerError(message))
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
                played, floor = self._played(), self._floor()
                if command.name == "skip":
                    self._timeline.skip(played, floor)
                elif command.name in ("clear", "stop"):
                    with self._lock:  # more of a playing growing track still comes through
                        kept = [i for i in self._pending if i.kind != "enqueue"]
                        self._pending = deque(kept)
                    if command.name == "clear":
                        self._timeline.clear(floor)
                    else:
                        self._timeline.stop(played, floor)
                self._w = self._timeline.written
                self._publish(self._now_snapshot)  # queued_ids is current when skip() returns
            finally:
                command.done.set()

    def _prepare_one(self) -> None:
        """Resample and upmix pending track audio: every append and finish waiting, and at
        most one whole track per loop, so the ring stays fed."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                item = self._pending[0]
            whole = item.kind == "enqueue" and item.complete
            samples = self._convert(item)
            with self._lock:
                if not self._pending or self._pending[0] is not item:
                    continue  # cleared meanwhile
                self._pending.popleft()
            self._apply(item, samples)
            self._w = self._timeline.written
            if whole:
                return

    def _convert(self, item: _Input) -> np.ndarray | None:
        """``item``'s audio at the device rate, in stereo (streamed for growing tracks)."""
        audio = item.audio
        if item.kind == "enqueue" and item.complete:
            assert audio is not None
            return prepare(audio, self.samplerate)
        if item.kind == "enqueue":
            assert audio is not None
            resampler = StreamResampler(audio.sample_rate, self.samplerate, audio.channels)
            self._resamplers[item.track_id] = resampler
        else:
            resampler = self._resamplers.get(item.track_id)
            if resampler is None:
                return None
        if item.kind == "finish":
            del self._resamplers[item.track_id]
            out = resampler.flush()
        else:
            assert audio is not None
            out = resampler.push(audio)
        return to_stereo(out.samples)

    def _apply(self, item: _Input, samples: np.ndarray | None) -> None:
        timeline = self._timeline
        if item.kind == "enqueue":
            assert samples is not None
            timeline.enqueue(
                item.track_id,
                samples,
                self._floor(),
                complete=item.complete,
                crossfade_s=item.crossfade_s,
            )
        elif not timeline.holds(item.track_id):
            self._resamplers.pop(item.track_id, None)  # cleared or finished playing meanwhile
        else:
            if samples is not None and samples.shape[0]:
                timeline.append(item.track_id, samples)
            if item.kind == "finish":
                timeline.finish(item.track_id, cut=item.cut)

    # -- writing the ring ------------------------------------------------------------------------

    def _floor(self) -> int:
        """The earliest ring position the feeder may still rewrite."""
        return min(self._w, self._r + self._margin)

    def _free(self) -> int:
        """Frames the feeder may write without touching unread or recently played frames."""
        return self._capacity - (self._w - self._r) - self._history

    def _fill_ring(self) -> None:
        timeline = self._timeline
        while True:
            ahead = self._w - self._r
            if timeline.pending:
                block = timeline.render(self._fill - ahead, self._free())
                if block.shape[0] == 0 and timeline.at_frontier and ahead < self._stall_ahead:
                    block = timeline.stall()  # about to run dry: fade out, buffer
            else:  # nothing to play: a little silence ahead so positions advance and events fire
                block = timeline.silence(min(self._lead - ahead, self._free(), BLOCKSIZE * 4))
            n = block.shape[0]
            if n == 0:
                return
            cap = self._capacity
            i = self._w % cap
            first = min(n, cap - i)
            self._ring[i : i + first] = block[:first]
            if n > first:
                self._ring[: n - first] = block[first:]
            self._w += n

    # -- playback position and events ------------------------------------------------------------

    def _played(self) -> int:
        """Ring position of the frame being heard now (it holds while the output is silent
        because the ring ran dry)."""
        heard = self._out - self._latency_frames
        gap_at, gap_len, before = self._gap_at, self._gap_len, self._gaps_before
        if heard >= gap_at + gap_len:
            played = heard - before - gap_len
        elif heard >= gap_at:
            played = self._gap_r
        else:
            played = heard - before
        return max(played, self._played_floor)

    def _update_playback(self, tick: bool) -> None:
        played = self._played()
        playback = self._timeline.playback(played, self.transport.paused)
        # Publish first: a subscriber reacting to an event sees queued_ids/now_playing after it.
        self._publish(playback.now, played)
        for event in playback.events:
            self._events.emit(event)
        if tick:
            if playback.now is not None:
                self._events.emit(playback.now)
            self._events.emit(self._level(played))

    def _level(self, played: int) -> Level:
        if not self._online or self.transport.paused or played <= 0:
            return Level(0.0, 0.0)
        n = min(int(LEVEL_WINDOW_S * self.samplerate), played)
        i = (played - n) % self._capacity
        if i + n <= self._capacity:
            block = self._ring[i : i + n]
        else:
            block = np.concatenate([self._ring[i:], self._ring[: i + n - self._capacity]])
        peak, rms = levels(block)
        gain = self._gain.volume_gain * self._gain.transport_gain
        return Level(rms * gain, peak * gain)

    def _publish(self, now: NowPlaying[None] | None, played: int | None = None) -> None:
        """Refresh what other threads read: the queue's ids and the audible track."""
        if played is None:
            played = self._played()
        with self._lock:
            ids: list[str] = []
            if self._running:
                ids = self._timeline.queued_ids(played)
            ids += [i.track_id for i in self._pending if i.kind == "enqueue"]
            self._queued_snapshot = tuple(ids)
            self._now_snapshot = now


def _close_quietly(stream: sounddevice.OutputStream) -> None:
    """Abort and close ``stream``; a vanished device may refuse, and nothing more can be done."""
    try:
        stream.abort()
        stream.close()
    except Exception as exc:
        log.debug("closing the audio stream failed: %s", exc)
