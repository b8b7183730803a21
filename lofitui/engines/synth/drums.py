"""A synthesised lofi kit (kick, snare, rim, closed and open hats) and its swung patterns:
boom-bap grooves in 16ths with ghost notes, and fills at the ends of phrases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lofitui.engines.synth.dsp import SR, shaped_noise


@dataclass(frozen=True)
class Hit:
    """One drum hit: where in the bar (16th steps, before swing), which sound, how hard."""

    step: float
    sound: str
    velocity: float


def make_kit(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The track's drum sounds, tuned a little differently for every seed."""
    t = np.arange(int(0.7 * SR)) / SR
    low = float(rng.uniform(52.0, 60.0))
    freq = low + float(rng.uniform(70.0, 100.0)) * np.exp(-t / 0.025)
    body = np.sin(2 * np.pi * np.cumsum(freq) / SR) * np.exp(-t / float(rng.uniform(0.16, 0.24)))
    knock = np.sin(2 * np.pi * low * 2.1 * t) * np.exp(-t / 0.04) * 0.3
    click = shaped_noise(rng, len(t), 1000.0, 5000.0) * np.exp(-t / 0.004) * 0.3
    body = body + knock
    kick = np.tanh(1.6 * (body + click)) / np.tanh(1.6)

    t = np.arange(int(0.45 * SR)) / SR
    pitch = float(rng.uniform(170.0, 210.0))
    tone = np.sin(2 * np.pi * pitch * t) * 0.6 + np.sin(2 * np.pi * pitch * 1.8 * t) * 0.25
    snap = shaped_noise(rng, len(t), 1200.0, 8000.0, 2.0)
    snare = tone * np.exp(-t / 0.05) + snap * np.exp(-t / float(rng.uniform(0.1, 0.16))) * 0.45

    t = np.arange(int(0.12 * SR)) / SR
    rim = (
        np.sin(2 * np.pi * 1650.0 * t) * np.exp(-t / 0.01)
        + shaped_noise(rng, len(t), 2000.0, 6000.0) * np.exp(-t / 0.006) * 0.4
    )

    t = np.arange(int(0.5 * SR)) / SR
    metal = shaped_noise(rng, len(t), 6500.0, 15000.0, 3.0)
    hat = metal * np.exp(-t / float(rng.uniform(0.018, 0.03)))
    open_hat = metal * np.exp(-t / 0.16) * 0.8
    return {
        "kick": kick,
        "snare": snare / np.max(np.abs(snare)),
        "rim": rim / np.max(np.abs(rim)) * 0.6,
        "hat": hat / np.max(np.abs(hat)) * 0.45,
        "open": open_hat / np.max(np.abs(open_hat)) * 0.35,
    }


# Kick and snare placements (16th steps); the snare is always on 2 and 4.
GROOVES: tuple[tuple[int, ...], ...] = ((0, 10), (0, 7, 10), (0, 3, 10), (0, 9, 11), (0, 6, 10))
PAN = {"kick": 0.0, "snare": 0.05, "rim": -0.15, "hat": 0.25, "open": 0.25}


def bar_hits(groove: int, rng: np.random.Generator, *, fill: bool, sparse: bool) -> list[Hit]:
    """One bar of drums. ``sparse``: hats and rim only (an intro or breakdown); ``fill``: the
    bar ends a phrase (a snare run, a dropped beat or an open hat)."""
    hits: list[Hit] = []
    vary = rng.uniform(-0.08, 0.08, 16)
    for step in range(0, 16, 2):  # 8th-note hats, the beats a little louder
        accent = 0.85 if step % 4 == 0 else 0.65
        hits.append(Hit(step, "hat", accent + vary[step]))
    for step in (3, 7, 11, 15):  # swung 16th pick-ups, quietly, now and then
        if rng.random() < 0.3:
            hits.append(Hit(step, "hat", 0.35 + vary[step]))
    if sparse:
        hits += [Hit(4, "rim", 0.55), Hit(12, "rim", 0.6)]
        return hits
    hits += [Hit(s, "kick", 0.95 if s == 0 else 0.8 + vary[s]) for s in GROOVES[groove]]
    hits += [Hit(4, "snare", 0.9 + vary[4]), Hit(12, "snare", 0.95 + vary[12])]
    if rng.random() < 0.5:
        hits.append(Hit(float(rng.choice([7, 9, 14, 15])), "snare", 0.22))  # ghost note
    if not fill:
        return hits
    kind = int(rng.integers(0, 3))
    if kind == 0:  # a snare run over the last beat
        hits += [Hit(s, "snare", 0.35 + 0.15 * (s - 12)) for s in (13, 14, 15)]
    elif kind == 1:  # the last beat drops out but for an open hat
        hits = [h for h in hits if h.step < 12] + [Hit(12, "snare", 0.9), Hit(14, "open", 0.6)]
    else:
        hits += [Hit(14, "kick", 0.7), Hit(15, "snare", 0.5), Hit(14, "open", 0.5)]
    return hits
