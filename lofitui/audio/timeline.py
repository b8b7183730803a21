"""The playback timeline: which track sounds at which frame, with crossfades, skips and events.

Pure bookkeeping and mixing on absolute frame positions: no device, no thread, no clock. A
driver renders the program block by block (:meth:`Timeline.render`) and says which frame is
being heard (:meth:`Timeline.playback`), which yields the track events at exact frames. The
real player drives it from its feeder thread into a ring buffer ahead of PortAudio's callback;
the silent player drives it from a clock. Both therefore crossfade, skip and report positions
identically.

Frames from ``floor`` on may be rewritten (skip, clear, a track that arrives after the previous
one's tail was rendered): the driver passes the earliest frame it can still change. Crossfades
are rendered whole, so a rewrite never lands inside one.

A track may grow while it plays (:meth:`Timeline.append`, then :meth:`Timeline.finish`):
rendering stops ``buffer_fade_s`` before its frontier and resumes, sample-exact, when more
frames arrive. It crossfades into the next track only once complete (its end is known then);
a growing track may be crossfaded into. If the driver is about to run dry there anyway
(:meth:`Timeline.stall`), the held-back frames are rendered fading out to silence and the track
*buffers*: once ``resume_s`` more seconds have arrived (or the track is complete) it fades back
in from exactly the frontier. Nothing is repeated or dropped, and the program (so the position)
does not advance while it buffers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from lofitui.audio.events import NowPlaying, TrackFinished, TrackStarted
from lofitui.audio.mixing import equal_power_curves, fade, to_stereo
from lofitui.audio.resample import resample
from lofitui.audio.types import Audio

CHANNELS = 2
MAX_CROSSFADE_S = 10.0
SKIP_FADE_S = 0.03  # the skipped track fades out over 30 ms; the next fades in over 5 ms
SKIP_FADE_IN_S = 0.005
MAX_BLOCK = 8192  # frames of plain audio per rendered block
BUFFER_FADE_S = 0.015  # a growing track fades out over its last 15 ms before a stall, back in after
RESUME_S = 0.75  # audio a buffering track waits for beyond its frontier before it plays on


def prepare(audio: Audio, samplerate: int) -> np.ndarray:
    """``audio`` as C-contiguous float32 stereo at ``samplerate`` (what the timeline plays)."""
    return to_stereo(resample(audio, samplerate).samples)


class _Track:
    """A track at the timeline's rate, and where it sits in the program once rendered."""

    __slots__ = (
        "_buffer",
        "available",
        "complete",
        "end",
        "fade_in",
        "fade_out",
        "id",
        "pos",
        "ramp",
        "skipped",
        "stall_at",
        "stalled",
        "start",
        "started",
        "xfade",
        "xin",
    )

    def __init__(
        self, track_id: str, samples: np.ndarray, complete: bool, xfade: int | None = None
    ) -> None:
        self.id = track_id
        self._buffer = samples
        self.available = int(samples.shape[0])
        self.complete = complete
        self.xfade = xfade  # frames of crossfade into this track (None: the timeline's)
        self.started = False  # TrackStarted reported
        self.skipped = False
        self.reset()

    @property
    def samples(self) -> np.ndarray:
        return self._buffer[: self.available]

    def append(self, samples: np.ndarray) -> None:
        n = int(samples.shape[0])
        if self.available + n > self._buffer.shape[0]:  # grow geometrically: appends stay cheap
            size = max(2 * self._buffer.shape[0], self.available + n)
            grown = np.empty((size, CHANNELS), np.float32)
            grown[: self.available] = self._buffer[: self.available]
            self._buffer = grown
        self._buffer[self.available : self.available + n] = samples
        self.available += n

    def reset(self) -> None:
        self.start: int | None = None  # program frame of its first frame
        self.end: int | None = None  # program frame after its last frame, once rendered
        self.xin = 0  # frames of its head blended into the previous track's tail
        self.pos = 0  # next frame of the track to render
        self.fade_in = 0  # frames of short fade-in at its start (after a skip)
        self.fade_out: tuple[int, int] | None = None  # (first, end) frames of a skip fade-out
        self.stalled = False  # faded out at its frontier, waiting for more frames (buffering)
        self.stall_at = 0  # program frame where its stall fade began
        self.ramp: tuple[int, int] | None = None  # (first, end) frames of a fade-in after a stall


@dataclass(frozen=True)
class Playback:
    """What :meth:`Timeline.playback` found at a heard frame: new events, the audible track."""

    events: list[TrackStarted | TrackFinished]
    now: NowPlaying[None] | None


class Timeline:
    """Tracks back to back on one program of absolute frame positions (see the module docstring).

    ``crossfade_s`` is the equal-power crossfade between tracks (0 = gapless), applied to tracks
    not yet blended and limited to half of either track. Not thread-safe: one driver owns it.
    """

    def __init__(
        self,
        samplerate: int,
        crossfade_s: float = 0.0,
        *,
        buffer_fade_s: float = BUFFER_FADE_S,
        resume_s: float = RESUME_S,
    ) -> None:
        self.samplerate = samplerate
        self.crossfade_s = crossfade_s
        self._guard = max(0, round(buffer_fade_s * samplerate))
        self._resume = max(self._guard, round(resume_s * samplerate))
        self._w = 0  # program frames rendered
        self._writer: _Track | None = None  # the track being rendered
        self._placed: deque[_Track] = deque()  # rendered (in part), not yet finished playing
        self._upcoming: deque[_Track] = deque()  # queued, not yet rendered

    # -- state -----------------------------------------------------------------------------------

    @property
    def crossfade_s(self) -> float:
        return self._crossfade_s

    @crossfade_s.setter
    def crossfade_s(self, value: float) -> None:
        self._crossfade_s = min(max(float(value), 0.0), MAX_CROSSFADE_S)

    @property
    def written(self) -> int:
        """Program frames rendered so far (the next :meth:`render` starts here)."""
        return self._w

    @property
    def pending(self) -> bool:
        """Track audio remains to be rendered (running dry now would be a dropout)."""
        return self._writer is not None or bool(self._upcoming)

    @property
    def at_frontier(self) -> bool:
        """The track being rendered is still growing and waits for frames: a driver about to
        run dry should :meth:`stall` (fade out) rather than let the output cut off."""
        track = self._writer
        return (
            track is not None
            and not track.complete
            and not track.stalled
            and track.fade_out is None
            and track.pos >= track.available - self._guard
        )

    @property
    def stalled(self) -> bool:
        """The track being rendered buffers: faded out at its frontier, waiting for frames."""
        return self._writer is not None and self._writer.stalled

    def queued_ids(self, played: int) -> list[str]:
        """Ids of the tracks not yet audible at frame ``played``, in play order."""
        ids = [t.id for t in self._placed if t.start is None or t.start > played]
        return ids + [t.id for t in self._upcoming]

    def frames_ready(self, track_id: str) -> int:
        """Frames of a queued or playing track received so far (0 if unknown)."""
        track = self._find(track_id)
        return track.available if track is not None else 0

    def next_change(self, played: int) -> int | None:
        """The first rendered frame after ``played`` where a track starts or ends, if any."""
        marks = [
            mark
            for track in self._placed
            for mark in (track.start, track.end)
            if mark is not None and mark > played
        ]
        return min(marks) if marks else None

    # -- the queue -------------------------------------------------------------------------------

    def enqueue(
        self,
        track_id: str,
        samples: np.ndarray,
        floor: int,
        *,
        complete: bool = True,
        crossfade_s: float | None = None,
    ) -> None:
        """Queue ``samples`` (stereo float32 at the timeline's rate, see :func:`prepare`).

        If the previous track's tail (or silence) is already rendered, the program is rewritten
        from the best frame at or after ``floor`` so the new track crossfades or follows
        gaplessly. ``complete=False``: more frames follow through :meth:`append`.
        ``crossfade_s``: the crossfade into this track (None: the timeline's ``crossfade_s``).
        """
        if samples.ndim != 2 or samples.shape[1] != CHANNELS:
            raise ValueError(f"timeline tracks are (frames, 2), got shape {samples.shape}")
        xfade = None
        if crossfade_s is not None:
            xfade = round(min(max(crossfade_s, 0.0), MAX_CROSSFADE_S) * self.samplerate)
        self._upcoming.append(_Track(track_id, samples, complete, xfade))
        self._reopen_tail(floor)

    def append(self, track_id: str, samples: np.ndarray) -> None:
        """Add frames to the end of a track that is still growing."""
        track = self._find(track_id)
        if track is None or track.complete:
            raise ValueError(f"track {track_id!r} is not a growing track in the timeline")
        track.append(samples)

    def holds(self, track_id: str) -> bool:
        """``track_id`` is queued or has not finished playing."""
        return self._find(track_id) is not None

    def finish(self, track_id: str, *, cut: bool = False) -> None:
        """A growing track is complete: its end is known and it may crossfade into the next.

        ``cut``: its generation was stopped early, so it ends where its audio ends, with the
        frames held back before its frontier fading out (no click).
        """
        track = self._find(track_id)
        if track is None:
            return
        if cut and not track.complete:
            first = max(track.pos, track.available - self._guard)
            n = track.available - first
            if n > 0 and not track.stalled:
                track.samples[first:] *= fade(n, 1.0, 0.0)[:, None]
        track.complete = True

    def skip(self, played: int, floor: int) -> None:
        """Fade the track audible at ``played`` out (30 ms) from ``floor``; the next follows."""
        audible = self._audible(played)
        if audible is None:
            return
        floor = min(floor, self._w)
        if audible.end is not None and audible.end <= floor:
            return  # it ends within the part that can no longer change
        self._requeue_front(self._rewind(floor, floor))
        if self._writer is not audible:
            return
        n = min(round(SKIP_FADE_S * self.samplerate), audible.available - audible.pos)
        if audible.stalled:
            n = 0  # already silent: it ends where it stalled
        audible.fade_out = (audible.pos, audible.pos + n)
        audible.skipped = True
        audible.stalled = False
        if self._upcoming:
            self._upcoming[0].fade_in = round(SKIP_FADE_IN_S * self.samplerate)

    def clear(self, floor: int) -> None:
        """Forget every queued track that is not rendered before ``floor``."""
        self._upcoming.clear()
        self._rewind(min(floor, self._w), min(floor, self._w))

    def stop(self, played: int, floor: int) -> None:
        """Clear the queue and fade out the audible track."""
        self.clear(floor)
        self.skip(played, floor)

    # -- rendering -------------------------------------------------------------------------------

    def render(self, want: int, room: int | None = None) -> np.ndarray:
        """The next block of the program: at most ``want`` frames of track audio, or a whole
        crossfade (or skip fade) when it fits in ``room`` (default ``want``). Empty when nothing
        can be rendered now: nothing queued, no room, or a growing track at its frontier."""
        room = want if room is None else room
        while True:
            if self._writer is None and self._upcoming:
                self._begin(self._upcoming.popleft(), xin=0)
            track = self._writer
            if track is None or want <= 0 or room <= 0:
                return _EMPTY
            if track.fade_out is not None:
                if track.pos < track.fade_out[1]:
                    return self._render_fade_out(track, room)
                track.end = self._w  # skipped: it ends with its fade-out
                self._writer = None
                continue
            if track.stalled:
                if not track.complete and track.available - track.pos < self._resume:
                    return _EMPTY  # buffering
                track.stalled = False  # enough has arrived: fade back in from the frontier
                track.ramp = (track.pos, track.pos + self._guard)
            nxt = self._upcoming[0] if self._upcoming else None
            if track.complete:
                tail = self._crossfade_frames(track, nxt) if nxt is not None else 0
            else:
                tail = self._guard  # held back for a fade-out, should the frontier be reached
            plain_end = track.available - tail
            if track.pos < plain_end:
                return self._track_block(track, min(plain_end - track.pos, want, room, MAX_BLOCK))
            if not track.complete:
                return _EMPTY  # at the frontier of a growing track
            # At the tail: blend into the next track (in one piece) or end here.
            xf = 0 if nxt is None else min(track.available - track.pos, nxt.available // 2)
            if xf > room:
                return _EMPTY
            if xf > 0:
                assert nxt is not None
                fade_out, fade_in = equal_power_curves(xf)
                tail_block = self._track_block(track, xf)
                self._upcoming.popleft()
                start = self._w - xf
                block = tail_block * fade_out[:, None] + nxt.samples[:xf] * fade_in[:, None]
                track.end = self._w
                self._begin(nxt, xin=xf, start=start)
                return block
            if track.pos >= track.available:
                track.end = self._w
                self._writer = None
                continue
            # a shortened track after a rewind with nothing next
            return self._track_block(track, min(track.available - track.pos, room, MAX_BLOCK))

    def stall(self) -> np.ndarray:
        """At a growing track's frontier (:attr:`at_frontier`): its held-back last frames,
        fading out to silence; the track then buffers until enough frames have arrived."""
        if not self.at_frontier:
            return _EMPTY
        track = self._writer
        assert track is not None
        n = track.available - track.pos
        gains = fade(n, 1.0, 0.0)
        track.stall_at = self._w
        block = self._track_block(track, n) * gains[:, None]
        track.stalled = True
        return block

    def silence(self, frames: int) -> np.ndarray:
        """``frames`` of silence (nothing is queued): positions advance and events still fire."""
        frames = max(0, frames)
        self._w += frames
        return np.zeros((frames, CHANNELS), np.float32)

    # -- what is heard ---------------------------------------------------------------------------

    def playback(self, played: int, paused: bool = False) -> Playback:
        """Advance to the heard frame ``played``: the track events up to it, and what is audible.

        Events come once each, in program order; a finished track leaves the timeline.
        """
        events: list[TrackStarted | TrackFinished] = []
        for track in list(self._placed):
            if track.start is None or track.start > played:
                break
            if not track.started:
                track.started = True
                events.append(TrackStarted(track.id, track.available / self.samplerate))
            if track.end is not None and track.end <= played and track is not self._writer:
                self._placed.remove(track)
                events.append(TrackFinished(track.id, track.skipped))
        audible = self._audible(played)
        now = None
        if audible is not None and audible.start is not None:
            duration = audible.available / self.samplerate
            position = min(max((played - audible.start) / self.samplerate, 0.0), duration)
            buffering = audible.stalled and played >= audible.stall_at
            now = NowPlaying(audible.id, position, duration, paused, buffering=buffering)
        return Playback(events, now)

    # -- internals -------------------------------------------------------------------------------

    def _find(self, track_id: str) -> _Track | None:
        for track in (*self._placed, *self._upcoming):
            if track.id == track_id:
                return track
        return None

    def _audible(self, played: int) -> _Track | None:
        audible = None
        for track in self._placed:
            if track.start is not None and track.start <= played:
                audible = track
        if audible is not None and audible.end is not None and audible.end <= played:
            return None
        return audible

    def _begin(self, track: _Track, xin: int, start: int | None = None) -> None:
        track.start = self._w if start is None else start
        track.xin = xin
        track.pos = xin
        self._placed.append(track)
        self._writer = track

    def _track_block(self, track: _Track, n: int) -> np.ndarray:
        """The next ``n`` frames of ``track`` (advancing it), with its fade-in if it has one."""
        block = track.samples[track.pos : track.pos + n]
        if track.pos < track.fade_in:
            k = min(track.fade_in - track.pos, n)
            gains = fade(track.fade_in, 0.0, 1.0)[track.pos : track.pos + k]
            block = block.copy()
            block[:k] *= gains[:, None]
        if track.ramp is not None:
            first, end = track.ramp
            if track.pos < end:
                k = min(end - track.pos, n)
                gains = fade(end - first, 0.0, 1.0)[track.pos - first : track.pos - first + k]
                block = block.copy()
                block[:k] *= gains[:, None]
            else:
                track.ramp = None
        track.pos += n
        self._w += n
        return block

    def _render_fade_out(self, track: _Track, room: int) -> np.ndarray:
        first, end = track.fade_out  # type: ignore[misc]
        n = min(end - track.pos, room)
        gains = fade(end - first, 1.0, 0.0)[track.pos - first : track.pos - first + n]
        return self._track_block(track, n) * gains[:, None]

    def _crossfade_frames(self, track: _Track, nxt: _Track) -> int:
        wanted = nxt.xfade if nxt.xfade is not None else round(self._crossfade_s * self.samplerate)
        return max(0, min(wanted, track.available // 2, nxt.available // 2))

    def _rewind(self, at: int, floor: int) -> list[_Track]:
        """Forget everything rendered from ``at`` on (``at >= floor``); return the tracks removed.

        ``at`` moves out of a crossfade: back to its start if that is at or after ``floor``,
        else forward to its end.
        """
        for track in self._placed:
            assert track.start is not None
            if track.xin and track.start < at < track.start + track.xin:
                at = track.start if track.start >= floor else track.start + track.xin
        at = max(at, floor)
        removed: list[_Track] = []
        while self._placed:
            last = self._placed[-1]
            assert last.start is not None
            if last.start < at or (last.start == at and last.started):
                break
            self._placed.pop()
            last.reset()
            removed.insert(0, last)
        self._writer = None
        if self._placed:
            last = self._placed[-1]
            assert last.start is not None
            if last.end is None or last.end > at:
                last.end = None
                last.pos = at - last.start  # a skip fade-out in progress carries on from here
                if last.stalled and last.pos < last.available:
                    last.stalled = False  # its stall fade is rewritten: not buffering after all
                if last.ramp is not None and last.ramp[0] >= last.pos:
                    last.ramp = None
                self._writer = last
        self._w = at
        return removed

    def _reopen_tail(self, floor: int) -> None:
        """A track was just queued: if the previous one's tail (or silence) is already rendered,
        rewrite from the best frame still allowed so it crossfades or follows gaplessly."""
        if len(self._upcoming) != 1:
            return  # not the track right after the last rendered one
        floor = min(floor, self._w)
        nxt = self._upcoming[0]
        last = self._placed[-1] if self._placed else None
        if last is None or last.start is None:
            ideal = floor  # only silence rendered: start as soon as allowed
        elif last.skipped:
            ideal = last.end if last.end is not None else self._w
        elif not last.complete:
            return  # a growing track's tail is not rendered yet
        else:  # where its tail should start blending into the new track
            ideal = last.start + last.available - self._crossfade_frames(last, nxt)
        at = max(ideal, floor)
        if at < self._w:
            self._requeue_front(self._rewind(at, floor))

    def _requeue_front(self, tracks: list[_Track]) -> None:
        for track in reversed(tracks):
            self._upcoming.appendleft(track)


_EMPTY = np.zeros((0, CHANNELS), np.float32)
_EMPTY.flags.writeable = False
