"""The form of a track, bar by bar: an intro, phrases of loops and their variations (a second
progression, a melody, another groove, a breakdown), fills at phrase ends, and an ending on
the tonic that rings out. Every note and hit is placed here, in seconds; nothing sounds yet."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lofitui.engines.synth.drums import bar_hits
from lofitui.engines.synth.harmony import Chord, chords_for, progressions, scale, voice
from lofitui.engines.synth.prompt import Plan

ENDING_S = 2.5  # the last chord rings at least this long
MAX_KEY_VELOCITY = 0.8

# Keys comping, as (16th step, length in steps, velocity).
COMPS: tuple[tuple[tuple[int, int, float], ...], ...] = (
    ((0, 16, 0.72),),
    ((0, 6, 0.72), (6, 10, 0.5)),
    ((0, 3, 0.7), (3, 7, 0.45), (10, 6, 0.55)),
    ((0, 10, 0.7), (10, 6, 0.5)),
)
# Bass lines as (step, length, what): what is "root", "fifth", "octave" or "approach".
BASSLINES: tuple[tuple[tuple[int, int, str], ...], ...] = (
    ((0, 10, "root"), (10, 6, "root")),
    ((0, 7, "root"), (7, 3, "fifth"), (10, 6, "root")),
    ((0, 14, "root"), (14, 2, "approach")),
    ((0, 6, "root"), (6, 4, "octave"), (10, 4, "root"), (14, 2, "approach")),
)
# Melody rhythms over two bars: (step from the first bar's start, length).
MOTIFS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 3), (3, 3), (6, 6), (16, 3), (19, 3), (22, 8)),
    ((2, 2), (4, 4), (10, 6), (18, 2), (20, 4), (26, 6)),
    ((0, 6), (6, 2), (8, 8), (20, 4), (24, 8)),
    ((4, 2), (6, 2), (8, 4), (12, 4), (20, 2), (22, 2), (24, 8)),
)


@dataclass(frozen=True)
class Note:
    """A pitched note: when (s), how long it is held (s), which MIDI pitch, voice and bus."""

    start: float
    hold: float
    pitch: float
    velocity: float
    voice: str
    bus: str
    pan: float = 0.0


@dataclass(frozen=True)
class Strike:
    """A drum hit at ``start`` seconds."""

    start: float
    sound: str
    velocity: float


@dataclass
class Bar:
    """Everything that starts within one bar."""

    index: int
    start: float
    section: str
    notes: list[Note] = field(default_factory=list)
    hits: list[Strike] = field(default_factory=list)


@dataclass(frozen=True)
class Arrangement:
    bar_s: float
    bars: tuple[Bar, ...]
    duration_s: float


class _Clock:
    def __init__(self, bpm: float, swing: float) -> None:
        self.beat = 60.0 / bpm
        self.bar = 4 * self.beat
        self.swing = swing

    def at(self, bar_start: float, step: float) -> float:
        """Seconds of a 16th ``step`` within the bar starting at ``bar_start``, swung."""
        beat, sub = divmod(step, 4)
        eighth, odd = divmod(sub, 2)
        offset = (eighth + (self.swing * 2 * odd if odd else 0.0)) * self.beat / 2
        return bar_start + beat * self.beat + offset

    def span(self, steps: float) -> float:
        return steps * self.beat / 4


def _sections(bars: int, rng: np.random.Generator) -> list[tuple[str, bool]]:
    """(section, ends a phrase) for each bar before the ending."""
    intro = 4 if bars >= 16 else (2 if bars >= 6 else 0)
    phrase = 8 if bars >= 24 else 4
    out = [("intro", False)] * intro
    order = ["A", "B", "A", "B", "break"] if bars >= 32 else ["A", "B"]
    shift = int(rng.integers(0, 2)) if bars >= 32 else 0
    k = 0
    while len(out) < bars:
        name = order[(k + shift) % len(order)] if k else "A"
        length = 4 if name == "break" else phrase
        for i in range(length):
            out.append((name, i == length - 1))
        k += 1
    return out[:bars]


def _chord_notes(
    clock: _Clock, bar: Bar, chord: Chord, step: int, steps: int, vel: float, plan: Plan, rng
) -> list[Note]:
    start = clock.at(bar.start, step)
    hold = clock.span(steps) * 0.96
    roll = float(rng.uniform(0.006, 0.02))
    voice_name = plan.keys
    out = []
    for i, pitch in enumerate(chord.voicing):
        v = min(MAX_KEY_VELOCITY, vel + float(rng.uniform(-0.06, 0.04)))
        pan = -0.3 + 0.6 * i / max(len(chord.voicing) - 1, 1)
        out.append(Note(start + i * roll, hold, pitch, v, voice_name, "keys", pan))
    return out


def _bass_pitch(what: str, chord: Chord, following: Chord) -> int:
    if what == "fifth":
        return chord.root + 7
    if what == "octave":
        return chord.root + 12
    if what == "approach":
        target = following.root
        return target - 1 if following.root <= chord.root else target + 1
    return chord.root


def _melody(
    clock: _Clock, bars: list[Bar], chords: list[Chord], plan: Plan, rng: np.random.Generator
) -> None:
    """A simple pentatonic line over each pair of B bars: one motif, its answer varied."""
    notes = sorted(p for p in range(62, 88) if p % 12 in scale(plan.tonic, plan.minor))
    motif = MOTIFS[int(rng.integers(0, len(MOTIFS)))]
    first: list[int] | None = None
    for pair in range(0, len(bars) - 1, 2):
        if first is None or pair % 4 == 0:
            idx = int(rng.integers(3, len(notes) - 4))
            line = []
            for _ in motif:
                line.append(idx)
                idx = int(np.clip(idx + rng.choice([-2, -1, -1, 1, 1, 2]), 0, len(notes) - 1))
            first = line
        line = list(first)
        if pair % 4 == 2:  # the answer: same rhythm, its end moved
            line[-1] = int(np.clip(line[-1] + rng.choice([-2, -1, 1]), 0, len(notes) - 1))
        for (step, length), idx in zip(motif, line, strict=True):
            bar = bars[pair + step // 16]
            chord = chords[pair + step // 16]
            pitch = notes[idx]
            if step % 8 == 0 and (pitch % 12) not in chord.tones:  # strong beats: chord tones
                pitch = min(
                    (n for n in notes if n % 12 in chord.tones), key=lambda n: abs(n - pitch)
                )
            start = clock.at(bar.start, step % 16)
            vel = float(rng.uniform(0.45, 0.65))
            bar.notes.append(
                Note(start, clock.span(length) * 0.9, pitch, vel, plan.lead, "lead", -0.2)
            )


def arrange(plan: Plan, duration_s: float) -> Arrangement:
    """Every bar of a ``duration_s`` track for ``plan``."""
    rng = plan.rng("arrangement")
    clock = _Clock(plan.bpm, plan.swing)
    body = max(0, math.floor((duration_s - ENDING_S) / clock.bar))
    sections = _sections(body, rng)
    pool = progressions(plan.minor)
    first = int(rng.integers(0, len(pool)))
    second = first if rng.random() < 0.35 else int((first + rng.integers(1, len(pool))) % len(pool))
    prog_a = chords_for(pool[first], plan.tonic, plan.jazz, None)
    prog_b = chords_for(pool[second], plan.tonic, plan.jazz, prog_a[-1].voicing)
    comp_a, comp_b = (int(c) for c in rng.choice(len(COMPS), 2, replace=False))
    line_a, line_b = (int(c) for c in rng.choice(len(BASSLINES), 2, replace=False))
    groove_a, groove_b = (int(g) for g in rng.choice(5, 2, replace=False))
    drums_rng = plan.rng("drums")
    keys_rng = plan.rng("keys")

    bars = [Bar(i, i * clock.bar, name) for i, (name, _) in enumerate(sections)]
    chords = [(prog_b if name == "B" else prog_a)[i % 4] for i, (name, _) in enumerate(sections)]
    tonic_quality = "m9" if plan.minor else "maj9"
    tonic_root = chords_for(((0, tonic_quality),), plan.tonic, False, None)[0].root
    last_voicing = chords[-1].voicing if chords else None
    ending = Chord(tonic_root, tonic_quality, voice(tonic_root, tonic_quality, last_voicing))
    end_bar = Bar(body, body * clock.bar, "end")

    for i, bar in enumerate(bars):
        name, ends_phrase = sections[i]
        chord = chords[i]
        following = chords[i + 1] if i + 1 < len(chords) else ending
        comp = (
            COMPS[0]
            if name in ("intro", "break") or plan.keys == "pad"
            else (COMPS[comp_b] if name == "B" else COMPS[comp_a])
        )
        for step, steps, vel in comp:
            bar.notes += _chord_notes(clock, bar, chord, step, steps, vel, plan, keys_rng)
        if plan.pad_layer:
            bar.notes += [
                Note(bar.start, clock.bar, p, 0.35, "pad", "pad", 0.0) for p in chord.voicing[:3]
            ]
        if name != "intro" or i >= len(bars) - 1:
            line = BASSLINES[line_b if name == "B" else line_a]
            if name == "break":
                line = ((0, 16, "root"),)
            for step, steps, what in line:
                pitch = _bass_pitch(what, chord, following)
                start = clock.at(bar.start, step)
                bar.notes.append(Note(start, clock.span(steps) * 0.92, pitch, 0.85, "bass", "bass"))
        intro_drums = name == "intro" and i >= sum(1 for s, _ in sections if s == "intro") - 2
        if plan.drums and (name != "intro" or intro_drums):
            sparse = name in ("intro", "break")
            groove = groove_b if name == "B" else groove_a
            hits = bar_hits(groove, drums_rng, fill=ends_phrase and not sparse, sparse=sparse)
            bar.hits += [Strike(clock.at(bar.start, h.step), h.sound, h.velocity) for h in hits]

    if plan.melody:
        b_bars = [i for i, (name, _) in enumerate(sections) if name == "B"]
        for start in range(0, len(b_bars), 4):
            run = b_bars[start : start + 4]
            _melody(
                clock,
                [bars[i] for i in run],
                [chords[i] for i in run],
                plan,
                plan.rng(f"melody{start}"),
            )

    hold = duration_s - end_bar.start
    end_bar.notes += _chord_notes(clock, end_bar, ending, 0, 0, 0.65, plan, keys_rng)
    end_bar.notes[:] = [
        Note(n.start, hold, n.pitch, n.velocity, n.voice, n.bus, n.pan) for n in end_bar.notes
    ]
    end_bar.notes.append(Note(end_bar.start, hold, ending.root, 0.8, "bass", "bass"))
    if plan.drums and body:
        end_bar.hits += [Strike(end_bar.start, "kick", 0.9), Strike(end_bar.start, "open", 0.4)]
    return Arrangement(clock.bar, (*bars, end_bar), duration_s)
