"""The built-in engine: lofi synthesised from the prompt with numpy, no model files.

``load`` takes milliseconds (there is nothing to read), so it can play while a neural model is
still downloading. Tracks are 48 kHz stereo mixed at about -16 LUFS integrated (BS.1770, the level
its soft clipper is voiced for; the player and the renderer then bring every track to the
listener's target), peaks below 1.0, streamed one bar at a time; the same request gives the same
samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lofitui.audio.loudness import integrated_lufs
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
from lofitui.engines.synth.mixer import Mixer, Studio
from lofitui.engines.synth.prompt import MAX_BPM, MIN_BPM, Plan, plan_for

if TYPE_CHECKING:
    from lofitui.engines.runtime import RuntimeOptions

MIX_LUFS = -16.0
# Versions of the sound: bumped whenever a change alters the samples of a request, so cached
# tracks and sidecars say which synthesiser made them.
SOUND_VERSION = 2  # 2: the mix level is measured with the shared meter (pyloudnorm)

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


def _loop_bars(plan: Plan, arrangement: Arrangement, studio: Studio) -> tuple[np.ndarray, int]:
    """The first two bars of the main loop (rendered after the bar before them, for the notes
    and the room still sounding) and the count of bars they stand for; nothing when the track
    opens on its loop."""
    bars = arrangement.bars
    loop = next((i for i, bar in enumerate(bars) if bar.section == "A"), None)
    if loop is None or bars[0].section == "A":
        return np.zeros((0, 2), np.float32), 0
    mixer = Mixer(plan, arrangement, studio, 1.0, loop - 1)
    mixer.render_raw()
    loop_bars = [mixer.render_raw()[1] for _ in range(min(2, len(bars) - loop))]
    opening = sum(1 for bar in bars if bar.section == bars[0].section)
    return np.concatenate(loop_bars), len(bars) - opening


def _calibration_gain(
    arrangement: Arrangement, first_bar: np.ndarray, loop: tuple[np.ndarray, int]
) -> float:
    """The gain that puts the whole track at MIX_LUFS, estimated before any of it is
    streamed: the first bar (before its gain) stands for its section, the main loop's first
    bars (:func:`_loop_bars`) for every other bar; their loudness is averaged as power, each
    weighted by the bars it stands for."""
    bars = arrangement.bars
    parts = [(first_bar, sum(1 for bar in bars if bar.section == bars[0].section))]
    if loop[1]:
        parts.append(loop)
    power = weight = 0.0
    for samples, count in parts:
        lufs = integrated_lufs(samples, SR)
        if np.isfinite(lufs):
            power += count * 10.0 ** (lufs / 10.0)
            weight += count
    if not power:
        return 1.0
    measured = 10.0 * np.log10(power / weight)
    return float(10.0 ** ((MIX_LUFS - measured) / 20.0))


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
        """The declared bounds, then the track's plan (tempo, key, voices...) from the
        prompt and seed."""
        self.check(request)
        bpm = request.param("bpm", None)
        return plan_for(request.prompt, request.seed, None if bpm is None else int(bpm))

    def stream(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        *,
        chunk_s: float | None = None,
    ) -> Iterator[Audio]:
        """The track one bar at a time (2.4 to 4 s each; the last runs to the end), whatever
        ``chunk_s`` asks."""
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
        studio = Studio.for_plan(plan)
        mixer = Mixer(plan, arrangement, studio, 1.0)
        # The loop's calibration bars render on a second thread while this one renders the
        # first bar (numpy lets go of the GIL): the first chunk arrives sooner on two cores.
        with ThreadPoolExecutor(1, thread_name_prefix="lofi-synth-calibration") as pool:
            loop = pool.submit(_loop_bars, plan, arrangement, studio)
            first = mixer.render_raw()
            mixer.gain = _calibration_gain(arrangement, first[1], loop.result())
        meter = ProgressMeter(len(arrangement.bars), "bar", on_progress)
        yield Audio(mixer.finish(*first), SR)
        meter.advance()
        for _ in arrangement.bars[1:]:
            if cancel is not None:
                cancel.check()
            yield Audio(mixer.render_bar(), SR)
            meter.advance()
