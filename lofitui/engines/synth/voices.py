"""Pitched voices, one note at a time: FM electric piano (tine and bark), felt piano, warm pad,
nylon pluck, round bass. Each returns mono float32 samples including its release tail."""

from __future__ import annotations

import numpy as np

from lofitui.engines.synth.dsp import SR, midi_hz, sine

RELEASE_S = 0.25


def _time(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def _gate(t: np.ndarray, hold_s: float, attack_s: float, release_s: float) -> np.ndarray:
    """Attack ramp, then 1 while held, then an exponential release to silence."""
    env = np.minimum(t / attack_s, 1.0)
    after = t > hold_s
    env[after] *= np.exp(-(t[after] - hold_s) / (release_s / 4))
    return env.astype(np.float32)


def _decay(t: np.ndarray, seconds: float) -> np.ndarray:
    return np.exp(-t.astype(np.float32) / np.float32(seconds))


def rhodes(note: float, hold_s: float, velocity: float) -> np.ndarray:
    """A tine electric piano (two FM pairs): a warm 1:1 body whose brightness follows the
    velocity and decays, a short metallic tine at the attack, a little second-harmonic bark."""
    f = midi_hz(note)
    t = _time(hold_s + RELEASE_S)
    cycles = f * t
    index = (0.8 + 2.0 * velocity) * _decay(t, 0.6) + 0.45
    body = sine(cycles + index * sine(cycles) / (2 * np.pi))
    bark = int(1.5 * SR)  # the bark and the tine have died away by then
    body[:bark] += sine(2 * cycles[:bark]) * _decay(t[:bark], 0.25) * (0.25 * velocity)
    out = body * _decay(t, 2.6 * (261.6 / f) ** 0.5) * _gate(t, hold_s, 0.002, RELEASE_S)
    tine = int(0.15 * SR)
    ratio = 14.0 if 14.0 * f < 16_000 else 7.0
    out[:tine] += sine(cycles[:tine] * ratio) * _decay(t[:tine], 0.018) * (0.1 + 0.25 * velocity)
    return out


def piano(note: float, hold_s: float, velocity: float) -> np.ndarray:
    """A felt piano: slightly stretched partials, the upper ones softer and shorter, two
    strings a few cents apart for a slow beating."""
    f = midi_hz(note)
    t = _time(hold_s + RELEASE_S * 1.5)
    out = np.zeros(len(t), dtype=np.float32)
    base_decay = 3.0 * (261.6 / f) ** 0.6
    for k in range(1, 9):
        fk = k * f * np.sqrt(1 + 0.0003 * k * k)
        if fk > 12_000:
            break
        amp = (0.35 + 0.65 * velocity) ** (k * 0.6) / k**1.4
        detune = 1.0 + 0.0007 * (k <= 2)
        strings = sine(fk * t) + sine(fk * detune * t)
        out += strings * _decay(t, base_decay / (1 + 0.6 * (k - 1))) * np.float32(amp)
    return out * 0.5 * _gate(t, hold_s, 0.004, RELEASE_S * 1.5)


def _saw_table(f: float, cutoff_hz: float, size: int = 2048) -> np.ndarray:
    x = np.arange(size) / size
    table = np.zeros(size)
    for k in range(1, int(min(cutoff_hz, 18_000) / f) + 1):
        table += np.sin(2 * np.pi * k * x) / k**1.6
    return table.astype(np.float32)


def pad(note: float, hold_s: float, velocity: float, phase: float) -> np.ndarray:
    """A warm pad: three detuned soft saws from one wavetable, a slow swell and a long fade.
    ``phase`` (0..1) starts each note's voices at a different point of the cycle."""
    f = midi_hz(note)
    release = 1.2
    t = _time(hold_s + release)
    table = _saw_table(f, 2500.0)
    size = len(table)
    out = np.zeros(len(t), dtype=np.float32)
    for i, cents in enumerate((-7.0, 0.0, 7.0)):
        pos = ((f * 2 ** (cents / 1200) * t + phase + i / 3) % 1.0) * size
        j = pos.astype(np.int64)
        frac = (pos - j).astype(np.float32)
        out += table[j] * (1 - frac) + table[(j + 1) % size] * frac
    return out * (0.3 * (0.5 + 0.5 * velocity)) * _gate(t, hold_s, 0.5, release)


def guitar(note: float, hold_s: float, velocity: float) -> np.ndarray:
    """A nylon pluck: partials weighted by the plucking point, the high ones dying first."""
    f = midi_hz(note)
    t = _time(hold_s + RELEASE_S)
    out = np.zeros(len(t), dtype=np.float32)
    for k in range(1, 13):
        if k * f > 12_000:
            break
        amp = abs(np.sin(k * np.pi * 0.18)) / k ** (1.2 - 0.3 * velocity)
        out += sine(k * f * t) * _decay(t, 1.1 / k**0.8) * np.float32(amp)
    return out * 0.8 * _gate(t, hold_s, 0.001, RELEASE_S)


def bass(note: float, hold_s: float, velocity: float) -> np.ndarray:
    """A round electric bass: fundamental, soft harmonics that fade, gently saturated."""
    f = midi_hz(note)
    t = _time(hold_s + 0.12)
    cycles = f * t
    tone = sine(cycles) + (0.3 * sine(2 * cycles) + 0.1 * sine(3 * cycles)) * _decay(t, 0.3)
    env = _decay(t, 1.6) * _gate(t, hold_s, 0.006, 0.12)
    drive = 1.2 + 0.6 * velocity
    return np.tanh(drive * tone * env) / np.float32(np.tanh(drive) / velocity)


VOICES = {"rhodes": rhodes, "piano": piano, "guitar": guitar}
