"""The built-in engine: lofi synthesised from the prompt with numpy, no model files.

``load`` takes milliseconds (there is nothing to read), so it can play while a neural model is
still downloading. Tracks are 48 kHz stereo at about -16 LUFS integrated (BS.1770), peaks below
1.0, streamed one bar at a time; the same request gives the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lofitui.audio.types import Audio
from lofitui.engines.base import (
    BUILTIN_MODEL,
    CancelToken,
    EngineBase,
    Param,
    ProgressCallback,
    ProgressMeter,
    TrackRequest,
)
from lofitui.engines.synth.arrange import Arrangement, arrange
from lofitui.engines.synth.dsp import SR
from lofitui.engines.synth.loudness import integrated_lufs
from lofitui.engines.synth.mixer import Mixer
from lofitui.engines.synth.prompt import MAX_BPM, MIN_BPM, Plan, plan_for

if TYPE_CHECKING:
    from lofitui.engines.runtime import RuntimeOptions

TARGET_LUFS = -16.0
# Versions of the sound: bumped whenever a change alters the samples of a request, so cached
# tracks and sidecars say which synthesiser made them.
SOUND_VERSION = 1

PARAMS = (
    Param(
        "bpm",
        int,
        f"tempo in beats per minute ({MIN_BPM}-{MAX_BPM}; default: from the prompt)",
        "--bpm",
        "N",
        minimum=MIN_BPM,
        maximum=MAX_BPM,
    ),
)


def _calibration_gain(plan: Plan, arrangement: Arrangement) -> float:
    """The gain that puts the track's main groove at TARGET_LUFS: two bars of the first full
    section rendered after one bar of warm-up (the room and filters filled)."""
    bars = arrangement.bars
    body = [i for i, bar in enumerate(bars) if bar.section in ("A", "B")]
    first = max(body[0] - 1, 0) if body else 0
    count = min(3, len(bars) - first)
    mixer = Mixer(plan, arrangement, 1.0, first)
    parts = [mixer.render_bar() for _ in range(count)]
    measured = integrated_lufs(np.concatenate(parts[1:] if count > 1 else parts))
    if not np.isfinite(measured):
        return 1.0
    return float(10.0 ** ((TARGET_LUFS - measured) / 20.0))


class SynthEngine(EngineBase):
    """Lofi from numpy: chords on an electric piano, piano or pad, bass, swung drums, a melody,
    vinyl, tape and rain. Thread-safe: it holds no state between requests."""

    name = "synth"
    title = "built-in synthesiser (synth)"
    params = PARAMS
    min_duration_s = 5.0
    max_duration_s = 600.0
    model_free: ClassVar[bool] = True
    sample_rate = SR
    channels = 2

    def __init__(self, model_name: str = BUILTIN_MODEL) -> None:
        self.model_name = model_name

    @classmethod
    def load(cls, model_dir: Path, options: RuntimeOptions) -> SynthEngine:
        """Nothing to open: the engine is its code."""
        return cls()

    def defaults(self) -> dict[str, Any]:
        """None: the tempo comes from the prompt unless --bpm is given."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "model": self.model_name,
            "device": "cpu",
            "sound_version": SOUND_VERSION,
        }

    def validate(self, request: TrackRequest) -> Plan:
        """The declared bounds, then the track's plan (tempo, key, voices) from its prompt and seed."""
        self.check(request)
        bpm = request.param("bpm", None)
        return plan_for(request.prompt, request.seed, None if bpm is None else int(bpm))

    def stream(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[Audio]:
        """The track one bar at a time (2.4 to 4 s each; the last runs to the end)."""
        plan = self.validate(request)
        return self._bars(plan, request.duration_s, on_progress, cancel)

    def _bars(
        self,
        plan: Plan,
        duration_s: float,
        on_progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> Iterator[Audio]:
        arrangement = arrange(plan, duration_s)
        mixer = Mixer(plan, arrangement, _calibration_gain(plan, arrangement))
        meter = ProgressMeter(len(arrangement.bars), "bar", on_progress)
        for _ in arrangement.bars:
            if cancel is not None:
                cancel.check()
            yield Audio(mixer.render_bar(), SR)
            meter.advance()
