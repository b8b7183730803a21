"""Prompt words and seed → the :class:`Plan` of one track: tempo, key, mode, voices, textures.

Words steer, the seed decides the rest; unknown words are ignored. Negations ("no drums",
"without vinyl") switch a part off. The same (prompt, seed, bpm) always gives the same plan.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass

import numpy as np

MIN_BPM = 60
MAX_BPM = 100

_SLOW = {"slow", "sleepy", "sleep", "lazy", "calm", "chill", "chilled", "relaxing", "mellow"}
_SLOWER = {"slow", "sleepy", "sleep", "lazy"}
_FAST = {"upbeat", "bouncy", "energetic", "fast", "groovy", "lively", "driving", "dance"}
_MINOR = {
    "sad", "melancholic", "melancholy", "dark", "lonely", "moody", "nostalgic", "blue", "blues",
    "somber", "sombre", "minor", "night", "midnight", "rainy", "gloomy", "wistful", "bittersweet",
    "cold", "winter", "tired",
}  # fmt: skip
_MAJOR = {
    "happy", "bright", "sunny", "uplifting", "cheerful", "hopeful", "major", "dreamy", "summer",
    "morning", "warm", "cozy", "cosy", "sweet", "peaceful", "spring", "joyful", "soft",
}  # fmt: skip
_RHODES = {"rhodes", "electric", "epiano", "wurli", "wurlitzer", "keys", "ep"}
_PIANO = {"piano", "felt", "upright", "grand"}
_PAD = {"pad", "pads", "ambient", "synth", "strings", "drone", "atmospheric", "space", "spacey"}
_GUITAR = {"guitar", "nylon", "acoustic", "plucked", "pluck"}
_DRUMS = {"drums", "drum", "beat", "beats", "percussion", "hats", "hihat", "hihats"}
_DRUMLESS = {"drumless", "beatless"}
_MELODY = {"melody", "melodic", "lead", "tune", "flute"}
_RAIN = {"rain", "rainy", "storm", "stormy", "drizzle", "raining", "thunder"}
_VINYL = {"vinyl", "crackle", "crackly", "record", "dusty", "dust", "crackling"}
_TAPE = {"tape", "cassette", "wobbly", "warped", "wow", "flutter", "vhs", "worn"}
_CLEAN = {"clean", "crisp", "hifi"}
_JAZZ = {"jazz", "jazzy", "swing", "swingy", "bossa", "neo", "soul", "soulful"}
_WARM = {"warm", "muffled", "muted", "underwater", "dusty", "dark", "mellow"}
_NEGATORS = {"no", "without", "zero", "minus", "non"}

_BPM_RE = re.compile(r"(\d{2,3}(?:\.\d+)?)\s*bpm")
_KEY_RE = re.compile(r"\b(?:in\s+)?([a-g])\s*(#|b|sharp|flat)?\s*(major|minor|maj|min)\b")
_NOTES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_WORD_RE = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Plan:
    """What one track will be, before any note is chosen."""

    bpm: float
    tonic: int  # pitch class 0..11 (C = 0)
    minor: bool
    keys: str  # chord voice: "rhodes", "piano" or "pad"
    lead: str  # melody voice: "rhodes", "piano" or "guitar"
    pad_layer: bool  # a quiet pad under the keys
    drums: bool
    melody: bool
    swing: float  # where the off 16th falls within its 8th: 0.5 straight .. 0.66 triplet
    jazz: bool  # more colour tones (9ths, 11ths, 13ths)
    rain: float  # texture levels, 0 = off
    vinyl: float
    tape: float  # wow/flutter depth factor
    cutoff_hz: float  # the master low-pass
    entropy: tuple[int, ...]  # seed material for every random choice of this track

    def rng(self, part: str) -> np.random.Generator:
        """An independent generator for one part (drums, melody...): parts never shift each
        other's choices, so switching rain on leaves the drum pattern as it was."""
        tag = int.from_bytes(hashlib.sha256(part.encode()).digest()[:4], "little")
        return np.random.default_rng(np.random.SeedSequence([*self.entropy, tag]))


def _words(prompt: str) -> tuple[set[str], set[str]]:
    """(words, negated words): a word right after "no"/"without" counts as negated."""
    tokens = _WORD_RE.findall(prompt.lower())
    negated = {b for a, b in itertools.pairwise(tokens) if a in _NEGATORS}
    return set(tokens) - negated, negated


def _entropy(prompt: str, seed: int) -> tuple[int, ...]:
    text = " ".join(prompt.lower().split())
    digest = hashlib.sha256(text.encode()).digest()
    seed_bits = seed % (1 << 64)
    return (
        seed_bits & 0xFFFFFFFF,
        seed_bits >> 32,
        *(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)),
    )


def _bpm(prompt: str, words: set[str], rng: np.random.Generator, given: int | None) -> float:
    if given is not None:
        return float(given)
    match = _BPM_RE.search(prompt.lower())
    if match:
        return float(min(max(float(match.group(1)), MIN_BPM), MAX_BPM))
    if words & _SLOWER:
        lo, hi = 60, 70
    elif words & _SLOW:
        lo, hi = 66, 80
    elif words & _FAST:
        lo, hi = 88, 100
    else:
        lo, hi = 70, 90
    return float(rng.integers(lo, hi + 1))


def _key(prompt: str) -> tuple[int, bool] | None:
    match = _KEY_RE.search(prompt.lower())
    if match is None:
        return None
    note, accidental, scale = match.groups()
    shift = {"#": 1, "sharp": 1, "b": -1, "flat": -1}.get(accidental or "", 0)
    return (_NOTES[note] + shift) % 12, scale.startswith("min")


def plan_for(prompt: str, seed: int, bpm: int | None = None) -> Plan:
    """The plan for ``prompt`` with ``seed`` (``bpm``: a tempo given outside the prompt)."""
    words, negated = _words(prompt)
    entropy = _entropy(prompt, seed)
    rng = np.random.default_rng(np.random.SeedSequence(list(entropy)))
    tempo = _bpm(prompt, words, rng, bpm)
    key = _key(prompt)
    if key is not None:
        tonic, minor = key
    else:
        tonic = int(rng.integers(0, 12))
        sad, happy = len(words & _MINOR), len(words & _MAJOR)
        minor = bool(sad > happy or (sad == happy and rng.random() < 0.55))
    if words & _PIANO:
        keys = "piano"
    elif words & _RHODES:
        keys = "rhodes"
    elif words & _PAD and not words & _DRUMS:
        keys = "pad"
    else:
        keys = "rhodes" if rng.random() < 0.7 else "piano"
    lead = "guitar" if words & _GUITAR else ("piano" if keys == "piano" else "rhodes")
    no_drums = bool(negated & _DRUMS) or bool(words & _DRUMLESS and not words & _DRUMS)
    asked = bool(words & (_MELODY | _GUITAR))
    melody = not negated & _MELODY and bool(asked or rng.random() < 0.75)
    jazz = bool(words & _JAZZ)
    swing = 0.5 if "straight" in words else float(rng.uniform(0.57, 0.63) + (0.03 if jazz else 0.0))
    clean = bool(words & _CLEAN)
    rain = 0.0 if negated & _RAIN or not words & _RAIN else 1.0
    vinyl = 0.0 if negated & _VINYL or clean else (1.6 if words & _VINYL else 1.0)
    tape = 0.0 if negated & _TAPE or clean else (2.0 if words & _TAPE else 1.0)
    cutoff = 5500.0 if words & _WARM else (11000.0 if words & ({"bright"} | _CLEAN) else 7500.0)
    return Plan(
        bpm=tempo,
        tonic=tonic,
        minor=minor,
        keys=keys,
        lead=lead,
        pad_layer=keys != "pad" and bool(words & _PAD and not negated & _PAD),
        drums=not no_drums,
        melody=melody,
        swing=swing,
        jazz=jazz,
        rain=rain,
        vinyl=vinyl,
        tape=tape,
        cutoff_hz=cutoff,
        entropy=entropy,
    )
