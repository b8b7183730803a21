"""Volume, mute and pause: the one place that holds them, and the gain ramps that apply them.

:class:`Transport` is the state. A player reads it (its audio callback included); the scheduler
changes it and the TUI asks the scheduler, which reads it back, so no other copy exists.
:class:`GainRamp` turns that state into per-frame gains block by block: pause and resume fade
over ``PAUSE_FADE_S``, volume and mute move at most full scale per ``VOLUME_RAMP_S``. It is
pure (no clock, no device) and allocation-free, because the audio callback runs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PAUSE_FADE_S = 0.02  # pause/resume: click-free, yet feels instant
VOLUME_RAMP_S = 0.05  # a full 0 -> 1 volume change is spread over 50 ms


class Transport:
    """Volume (0..1, linear), mute and pause. Plain attributes: atomic to read from any thread."""

    __slots__ = ("_volume", "muted", "paused")

    def __init__(self, volume: float = 1.0, *, muted: bool = False, paused: bool = False) -> None:
        self._volume = _clamp(float(volume))
        self.muted = muted
        self.paused = paused

    @property
    def volume(self) -> float:
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        self._volume = _clamp(float(value))

    @property
    def gain(self) -> float:
        """The volume gain asked for now (0 while muted)."""
        return 0.0 if self.muted else self._volume


class TransportControls:
    """Volume, mute and pause of a player, read from and written to its :class:`Transport`."""

    transport: Transport

    @property
    def paused(self) -> bool:
        return self.transport.paused

    @property
    def volume(self) -> float:
        """Output volume 0..1 (linear gain); changes are ramped over up to 50 ms."""
        return self.transport.volume

    @volume.setter
    def volume(self, value: float) -> None:
        self.transport.volume = value

    @property
    def muted(self) -> bool:
        return self.transport.muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self.transport.muted = bool(value)

    def toggle_mute(self) -> bool:
        """Flip mute and return the new state."""
        self.transport.muted = not self.transport.muted
        return self.transport.muted


class GainRamp:
    """Applies a :class:`Transport` to blocks of frames with click-free ramps.

    ``transport_gain`` goes 1 -> 0 on pause and back on resume; ``volume_gain`` follows
    :attr:`Transport.gain`. Both are where the last applied block ended.
    """

    def __init__(self, transport: Transport, samplerate: int, blocksize: int) -> None:
        self.transport = transport
        self.transport_gain = 0.0 if transport.paused else 1.0
        self.volume_gain = transport.gain
        self._step_t = np.float32(1.0 / (PAUSE_FADE_S * samplerate))
        self._step_v = np.float32(1.0 / (VOLUME_RAMP_S * samplerate))
        self._buffers(blocksize)

    def _buffers(self, frames: int) -> None:
        self._steps = np.arange(1, frames + 1, dtype=np.float32)
        self._ramp_t = np.empty(frames, np.float32)
        self._ramp_v = np.empty(frames, np.float32)

    @property
    def holding(self) -> bool:
        """Paused and faded out: output silence and hold the read position."""
        return self.transport_gain == 0.0 and self.transport.paused

    def apply(self, out: np.ndarray) -> None:
        """Multiply ``out`` (frames, channels) in place by this block's gains."""
        frames = out.shape[0]
        target_t = 0.0 if self.transport.paused else 1.0
        target_v = self.transport.gain
        gain_t, gain_v = self.transport_gain, self.volume_gain
        if gain_t == target_t and gain_v == target_v:
            if gain_v != 1.0 or gain_t != 1.0:
                out *= gain_t * gain_v
            return
        if frames > self._steps.shape[0]:  # PortAudio promised a fixed block; stay correct anyway
            self._buffers(frames)
        ramp_t = self._ramp_t[:frames]
        ramp_v = self._ramp_v[:frames]
        _ramp(ramp_t, self._steps[:frames], gain_t, target_t, self._step_t)
        _ramp(ramp_v, self._steps[:frames], gain_v, target_v, self._step_v)
        self.transport_gain = float(ramp_t[-1])
        self.volume_gain = float(ramp_v[-1])
        ramp_t *= ramp_v
        out *= ramp_t[:, None]


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


def _clamp(value: float) -> float:
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value
