"""Chords: lofi progressions in a key, extended voicings (7ths, 9ths, 11ths, 13ths) with smooth
voice leading, and the bass notes under them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Intervals above the root, in semitones.
QUALITIES: dict[str, tuple[int, ...]] = {
    "maj7": (0, 4, 7, 11),
    "maj9": (0, 4, 7, 11, 14),
    "6/9": (0, 4, 7, 9, 14),
    "m7": (0, 3, 7, 10),
    "m9": (0, 3, 7, 10, 14),
    "m11": (0, 3, 7, 10, 14, 17),
    "7": (0, 4, 7, 10),
    "9": (0, 4, 7, 10, 14),
    "13": (0, 4, 10, 14, 21),
    "7b9": (0, 4, 7, 10, 13),
    "m7b5": (0, 3, 6, 10),
}
# Richer colours used when the prompt asks for jazz.
JAZZ_COLOURS = {"maj7": "maj9", "m7": "m9", "m9": "m11", "9": "13", "7": "9"}

# (root above the tonic, quality), one chord per bar.
MAJOR_PROGRESSIONS: tuple[tuple[tuple[int, str], ...], ...] = (
    ((2, "m9"), (7, "13"), (0, "maj9"), (0, "6/9")),  # ii V I I
    ((0, "maj9"), (9, "m9"), (2, "m9"), (7, "9")),  # I vi ii V
    ((5, "maj9"), (4, "m7"), (2, "m9"), (0, "maj9")),  # IV iii ii I
    ((0, "maj9"), (5, "maj9"), (4, "m7"), (9, "m9")),  # I IV iii vi
    ((5, "maj7"), (7, "9"), (4, "m7"), (9, "m9")),  # IV V iii vi
)
MINOR_PROGRESSIONS: tuple[tuple[tuple[int, str], ...], ...] = (
    ((0, "m9"), (5, "m9"), (10, "9"), (3, "maj9")),  # i iv VII III
    ((0, "m9"), (8, "maj9"), (5, "m9"), (7, "7b9")),  # i VI iv V
    ((5, "m9"), (10, "9"), (3, "maj9"), (8, "maj9")),  # iv VII III VI
    ((0, "m11"), (3, "maj9"), (8, "maj7"), (7, "7b9")),  # i III VI V
    ((2, "m7b5"), (7, "7b9"), (0, "m9"), (0, "m9")),  # ii V i i
)

VOICING_LOW = 50  # D3: the lowest note of a keys voicing
VOICING_CENTRE = 62.0


@dataclass(frozen=True)
class Chord:
    """One chord: its root (MIDI, bass octave), quality and the keys' voicing (MIDI notes)."""

    root: int
    quality: str
    voicing: tuple[int, ...]

    @property
    def tones(self) -> tuple[int, ...]:
        """Pitch classes of the chord, root first."""
        return tuple((self.root + i) % 12 for i in QUALITIES[self.quality])


def progressions(minor: bool) -> tuple[tuple[tuple[int, str], ...], ...]:
    return MINOR_PROGRESSIONS if minor else MAJOR_PROGRESSIONS


def _candidates(root: int, intervals: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Rootless close and spread voicings of the chord's upper tones, every inversion, placed
    from VOICING_LOW up."""
    upper = [i for i in intervals if i != 0] if len(intervals) > 3 else list(intervals)
    out: list[tuple[int, ...]] = []
    for rot in range(len(upper)):
        order = upper[rot:] + upper[:rot]
        notes: list[int] = []
        for interval in order:
            pc = (root + interval) % 12
            note = (notes[-1] + 1) if notes else VOICING_LOW
            while note % 12 != pc:
                note += 1
            notes.append(note)
        for shift in (0, 12):
            voicing = tuple(n + shift for n in notes)
            out.append(voicing)
            if len(voicing) >= 4:  # drop-2: the second note from the top an octave down
                v = sorted(voicing)
                spread = tuple(sorted([*v[:-2], v[-2] - 12, v[-1]]))
                if spread[0] >= VOICING_LOW - 5:
                    out.append(spread)
    return out


def voice(root: int, quality: str, previous: tuple[int, ...] | None) -> tuple[int, ...]:
    """The voicing of ``root``/``quality`` that moves least from ``previous`` and stays in the
    keys' register (D3..A5)."""

    def cost(v: tuple[int, ...]) -> float:
        centre = abs(float(np.mean(v)) - VOICING_CENTRE) * 0.6
        top = max(0, v[-1] - 78) * 2.0
        if previous is None:
            return centre + top
        moves = sum(min(abs(n - p) for p in previous) for n in v)
        return moves + centre * 0.5 + top

    return min(_candidates(root, QUALITIES[quality]), key=cost)


def chords_for(
    degrees: tuple[tuple[int, str], ...], tonic: int, jazz: bool, previous: tuple[int, ...] | None
) -> list[Chord]:
    """One progression in the key of ``tonic``, voiced with voice leading from ``previous``."""
    out: list[Chord] = []
    for degree, quality in degrees:
        if jazz:
            quality = JAZZ_COLOURS.get(quality, quality)
        root = 38 + (tonic + degree - 2) % 12  # D2..C#3: round, and heard on small speakers
        voicing = voice(root, quality, previous)
        previous = voicing
        out.append(Chord(root, quality, voicing))
    return out


def scale(tonic: int, minor: bool) -> tuple[int, ...]:
    """Pitch classes of the key's pentatonic scale (the melody's notes)."""
    steps = (0, 3, 5, 7, 10) if minor else (0, 2, 4, 7, 9)
    return tuple((tonic + s) % 12 for s in steps)
