"""Sound from an :class:`Arrangement`, one bar at a time: notes and hits rendered onto buses,
the keys' tremolo, side-chain ducking under the kick, a shared room, tape wow and flutter,
vinyl and rain, a warm master low-pass, the loudness gain and a soft clipper.

Each note is rendered whole (release included) when its bar is reached and its tail waits in
the buses for the bars after; filters and the room carry their state. So the bars joined are
the track, and the first bar is ready after a few milliseconds.
"""

from __future__ import annotations

import numpy as np

from lofitui.engines.synth import voices
from lofitui.engines.synth.arrange import Arrangement, Note, Strike
from lofitui.engines.synth.drums import PAN, make_kit
from lofitui.engines.synth.dsp import (
    SR,
    Convolver,
    WowFlutter,
    lowpass_kernel,
    reverb_ir,
    soft_clip,
)
from lofitui.engines.synth.prompt import Plan
from lofitui.engines.synth.texture import Texture

BUSES = ("keys", "pad", "lead", "bass", "drums")
LEVELS = {"keys": 0.22, "pad": 0.16, "lead": 0.2, "bass": 0.19, "drums": 0.5}
SENDS = {"keys": 0.35, "pad": 0.5, "lead": 0.5, "bass": 0.0, "drums": 0.1}
DRUM_LEVELS = {"kick": 0.8, "snare": 0.8, "rim": 0.6, "hat": 0.6, "open": 0.5}
TREMOLO = {"rhodes": 0.28, "piano": 0.06, "pad": 0.0}
DUCK_DEPTH = 0.3
FADE_IN_S = 0.05
FADE_OUT_S = 2.0


def _pan(pan: float) -> tuple[float, float]:
    """Constant-power gains (left, right); the centre is (1, 1)."""
    theta = (pan + 1.0) * np.pi / 4
    return float(np.cos(theta) * np.sqrt(2.0)), float(np.sin(theta) * np.sqrt(2.0))


def frame_of(seconds: float) -> int:
    return round(seconds * SR)


class Mixer:
    """Renders the bars of ``arrangement`` in order, starting at bar ``first``."""

    def __init__(self, plan: Plan, arrangement: Arrangement, gain: float, first: int = 0) -> None:
        self.plan = plan
        self.arrangement = arrangement
        self.gain = gain
        self.total = frame_of(arrangement.duration_s)
        self.kit = make_kit(plan.rng("kit"))
        self.pending = np.zeros((len(BUSES), SR * 8, 2), dtype=np.float32)
        self.used = 0  # frames of ``pending`` that hold sound
        self.position = frame_of(arrangement.bars[first].start)
        self.next_bar = first
        self.kicks: list[int] = [-SR * 10]
        self.texture = Texture(plan.rng("texture"), plan.vinyl, plan.rain)
        warm = lowpass_kernel(plan.cutoff_hz, 255)
        room = reverb_ir(plan.rng("room"), 1.5, 5500.0) * 0.5
        wet = np.stack([np.convolve(room[:, ch], warm) for ch in range(2)], axis=1)
        # One convolution does the master low-pass, the room and the noise's colour at once.
        self.master = Convolver(warm, wet, np.convolve(self.texture.noise_kernel(), warm))
        self.wow = WowFlutter(plan.rng("tape"), plan.tape)
        self.tremolo_hz = plan.bpm / 60.0 * 2.0 if plan.bpm < 80 else plan.bpm / 60.0 * 1.5
        self.tremolo = TREMOLO.get(plan.keys, 0.0)

    def _add(self, bus: str, start: int, mono: np.ndarray, pan: float) -> None:
        offset = start - self.position
        end = offset + len(mono)
        if end > self.pending.shape[1]:
            grown = np.zeros((len(BUSES), end + SR, 2), dtype=np.float32)
            grown[:, : self.pending.shape[1]] = self.pending
            self.pending = grown
        left, right = _pan(pan)
        target = self.pending[BUSES.index(bus), offset:end]
        target[:, 0] += mono * np.float32(left)
        target[:, 1] += mono * np.float32(right)
        self.used = max(self.used, end)

    def _note(self, note: Note) -> None:
        if note.voice == "bass":
            mono = voices.bass(note.pitch, note.hold, note.velocity)
        elif note.voice == "pad":
            mono = voices.pad(note.pitch, note.hold, note.velocity, (note.pitch * 0.618) % 1.0)
        else:
            mono = voices.VOICES[note.voice](note.pitch, note.hold, note.velocity)
        self._add(note.bus, frame_of(note.start), mono * np.float32(note.velocity), note.pan)

    def _hit(self, hit: Strike) -> None:
        sample = self.kit[hit.sound] * (hit.velocity * DRUM_LEVELS[hit.sound])
        start = frame_of(hit.start)
        if hit.sound == "kick":
            self.kicks.append(start)
        self._add("drums", start, sample.astype(np.float32), PAN[hit.sound])

    def _duck(self, n: int) -> np.ndarray:
        """Gain under the kick: a dip that recovers in ~150 ms after each one."""
        frames = self.position + np.arange(n)
        kicks = np.asarray(self.kicks)
        last = kicks[np.searchsorted(kicks, frames, side="right") - 1]
        return (1.0 - DUCK_DEPTH * np.exp(-(frames - last) / (0.09 * SR)))[:, None]

    def render_bar(self) -> np.ndarray:
        """The next bar (the last one runs to the end of the track), mastered."""
        bars = self.arrangement.bars
        bar = bars[self.next_bar]
        for note in bar.notes:
            self._note(note)
        for hit in sorted(bar.hits, key=lambda h: h.start):
            self._hit(hit)
        self.next_bar += 1
        end = frame_of(bars[self.next_bar].start) if self.next_bar < len(bars) else self.total
        n = end - self.position
        buses = self.pending[:, :n].copy()
        used = max(self.used, n)
        self.pending[:, : used - n] = self.pending[:, n:used]
        self.pending[:, used - n : used] = 0.0
        self.used = used - n
        t = (self.position + np.arange(n)) / SR
        if self.tremolo:
            wobble = (self.tremolo * np.sin(2 * np.pi * self.tremolo_hz * t)).astype(np.float32)
            buses[0] *= np.stack([1.0 + wobble, 1.0 - wobble], axis=1)
        duck = self._duck(n).astype(np.float32)
        dry = buses[BUSES.index("drums")] * np.float32(LEVELS["drums"])
        send = dry * np.float32(SENDS["drums"])
        for i, name in enumerate(BUSES):
            if name != "drums":
                part = buses[i] * (duck * np.float32(LEVELS[name]))
                dry += part
                send += part * np.float32(SENDS[name])
        dry += self.texture.sparse(n)
        mixed = self.master.process(dry, send, self.texture.noise(n))
        out = self.wow.process(mixed) * self.gain
        self._fade(out)
        self.position = end
        return soft_clip(out).astype(np.float32)

    def _fade(self, out: np.ndarray) -> None:
        fade_from = self.total - FADE_OUT_S * SR
        if self.position >= FADE_IN_S * SR and self.position + len(out) <= fade_from:
            return
        frames = self.position + np.arange(len(out))
        fade_in = np.clip(frames / (FADE_IN_S * SR), 0.0, 1.0)
        left = (self.total - frames) / (FADE_OUT_S * SR)
        fade_out = np.sin(np.clip(left, 0.0, 1.0) * np.pi / 2) ** 2
        out *= (fade_in * fade_out)[:, None]
