"""Loudness normalisation, measured on what the real pipeline renders (issue #15, point 1).

Sources of very different levels go through the real renderer: the synth mixed at its own
level, 20 LU under it and 12 LU over it (its soft clipper squashing the loud one), the tiny
MusicGen fixture (32 kHz mono, random weights) and the tiny ACE-Step turbo fixture (the VAE's raw
level). Each is measured independently of lofi's code: pyloudnorm's meter on the written WAV
(mono as dual mono, as it is heard) and the true peak by scipy's 4x polyphase interpolation.
Files get the exact gain; the ``--out -`` stream the running one, which must land as close and
must not pump: its gain against the file's (the same samples at the exact gain), in 50 ms
windows, moves by little from one window to the next wherever the limiter is not at work (the
limiter's own 5 ms attack and 30 dB/s release on peaks are a limiter's job, not the running
gain's).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from lofitui.audio.loudness import FALL_DB_PER_S, Loudness, integrated_lufs
from lofitui.audio.types import Audio
from lofitui.audio.wav import read_wav
from lofitui.config import Config, build_settings, parse_config
from lofitui.engines.acestep import AceStepEngine
from lofitui.engines.base import BUILTIN_MODEL, Engine
from lofitui.engines.runtime import RuntimeOptions
from lofitui.engines.synth import MIX_LUFS, SynthEngine
from lofitui.errors import UsageError
from lofitui.events import Station
from lofitui.library import TrackCache
from lofitui.render import RenderJob, render, render_stream
from lofitui.scheduler import Scheduler

TARGET = -14.0
CEILING = -1.0
TOLERANCE_LU = 1.0  # the bar
TP_TOLERANCE_DB = 0.05  # scipy's interpolator is not soxr's; 16-bit rounding
ACESTEP = Path(__file__).parent / "fixtures" / "acestep-tiny" / "turbo"
WINDOW_S = 0.05
STEP_DB = 0.6  # the most the stream's gain may move between two 50 ms windows


def lufs(samples: np.ndarray, rate: int) -> float:
    """pyloudnorm's integrated loudness, mono as dual mono."""
    stereo = samples if samples.shape[1] == 2 else np.repeat(samples, 2, axis=1)
    return float(pyloudnorm.Meter(rate).integrated_loudness(stereo.astype(np.float64)))


def true_peak_dbtp(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.abs(resample_poly(samples, 4, 1, axis=0)).max()))


def _windows(x: np.ndarray, n: int, count: int) -> np.ndarray:
    return x[: count * n].astype(np.float64).reshape(count, -1)


def window_gains_db(out: np.ndarray, raw: np.ndarray, rate: int) -> np.ndarray:
    """The gain of ``out`` over ``raw`` per 50 ms window (audible ones only)."""
    n = int(WINDOW_S * rate)
    count = min(len(out), len(raw)) // n
    e_out = (_windows(out, n, count) ** 2).sum(axis=1)
    e_raw = (_windows(raw, n, count) ** 2).sum(axis=1)
    audible = e_raw > e_raw.max() * 1e-4
    gains = 10 * np.log10(np.maximum(e_out, 1e-30) / np.maximum(e_raw, 1e-30))
    return np.where(audible, gains, np.nan)


def gain_steps_db(out: np.ndarray, reference: np.ndarray, rate: int) -> np.ndarray:
    """How much ``out``'s gain over ``reference`` moves from one 50 ms window to the next,
    leaving out the windows where either may be limited: a peak within 1 dB of the ceiling
    there or in the 500 ms before (the limiter releases 15 dB in that time)."""
    gains = window_gains_db(out, reference, rate)
    n = int(WINDOW_S * rate)
    peaks = np.maximum(
        np.abs(_windows(out, n, len(gains))).max(axis=1),
        np.abs(_windows(reference, n, len(gains))).max(axis=1),
    )
    near = peaks > 10 ** ((CEILING - 1.0) / 20)
    release = int(0.5 / WINDOW_S)
    limited = np.convolve(near, np.ones(release + 1), "full")[: len(near)] > 0
    gains[limited] = np.nan
    steps = np.abs(np.diff(gains))
    assert np.isfinite(steps).sum() > len(steps) // 4, "too few windows left to judge"
    return steps


@pytest.fixture(scope="module")
def acestep() -> AceStepEngine:
    return AceStepEngine.load(ACESTEP, RuntimeOptions("cpu", 1))


SYNTH_JOB = RenderJob("rainy lofi, rhodes, drums", 12.0, seed=4)
SOURCES: list[tuple[str, float | None, str, RenderJob]] = [
    # id, the synth's mix level (None: not the synth), engine, job
    ("synth", MIX_LUFS, "synth", SYNTH_JOB),
    ("synth-quiet", MIX_LUFS - 20, "synth", SYNTH_JOB),
    ("synth-loud", MIX_LUFS + 12, "synth", SYNTH_JOB),
    ("musicgen-tiny", None, "musicgen", RenderJob("ambient piano", 10.0, seed=3, params={})),
    ("acestep-tiny", None, "ace-step", RenderJob("rain", 8.0, seed=7, params={"steps": 2})),
]


def _engine(kind: str, request: pytest.FixtureRequest) -> tuple[Engine, str]:
    if kind == "synth":
        return SynthEngine(), BUILTIN_MODEL
    if kind == "musicgen":
        return request.getfixturevalue("tiny_engine"), "tiny"
    return request.getfixturevalue("acestep"), "acestep-tiny"


@pytest.mark.parametrize(("id", "mix", "kind", "job"), SOURCES, ids=[s[0] for s in SOURCES])
def test_every_source_renders_at_the_target_to_files_and_to_stdout(
    id: str,
    mix: float | None,
    kind: str,
    job: RenderJob,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if mix is not None:  # the synth's own level, as another version of it could have it
        monkeypatch.setattr("lofitui.engines.synth.engine.MIX_LUFS", mix)
    engine, model = _engine(kind, request)
    names = {"engine_name": engine.name, "model_name": model}
    job = RenderJob(**{**job.__dict__, "out_dir": tmp_path})
    (path,) = render(job, engine, **names)
    stored = read_wav(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    source = meta["loudness"]["source_lufs"]
    if mix is not None:  # the synth really was that loud (its soft clipper takes a little)
        assert abs(source - mix) < 2.0
    assert meta["loudness"]["target_lufs"] == TARGET

    written = bytearray()
    render_stream(job, engine, written.extend, **names)
    streamed, rate = sf.read(io.BytesIO(bytes(written)), dtype="float32", always_2d=True)
    assert rate == engine.sample_rate and len(streamed) == stored.frames

    figures = {
        "source": source,
        "file": lufs(stored.samples, rate),
        "stream": lufs(streamed, rate),
        "file_tp": true_peak_dbtp(stored.samples),
        "stream_tp": true_peak_dbtp(streamed),
    }
    figures["stream_step"] = float(np.nanmax(gain_steps_db(streamed, stored.samples, rate)))
    print(f"\n{id}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    assert abs(figures["file"] - TARGET) < TOLERANCE_LU
    assert abs(figures["stream"] - TARGET) < TOLERANCE_LU
    assert figures["file_tp"] <= CEILING + TP_TOLERANCE_DB
    assert figures["stream_tp"] <= CEILING + TP_TOLERANCE_DB
    assert figures["stream_step"] < STEP_DB, "the running gain pumps"


def test_off_keeps_the_engines_level_and_still_limits_peaks(tmp_path: Path) -> None:
    job = RenderJob("lofi beat, loud drums", 8.0, seed=2, out_dir=tmp_path, loudness=Loudness(None))
    (path,) = render(job, SynthEngine(), engine_name="synth", model_name=BUILTIN_MODEL)
    samples = read_wav(path).samples
    assert abs(lufs(samples, 48_000) - MIX_LUFS) < TOLERANCE_LU
    assert true_peak_dbtp(samples) <= CEILING + TP_TOLERANCE_DB
    assert json.loads(path.with_suffix(".json").read_text())["loudness"]["target_lufs"] is None


def test_the_running_gain_glides_between_chunks() -> None:
    """Pushed chunk by chunk, a quiet intro and then a part 12 dB louder: the gain is set
    from the first chunk, then comes down as the estimate does, never faster than the
    fall/rise rates; the joined output keeps the input's length whatever the chunking."""
    rate = 48_000
    t = np.arange(6 * rate) / rate
    chord = sum(np.sin(2 * np.pi * f * t + f) for f in (220.0, 277.2, 329.6)) / 3
    level = np.where(t < 1.5, 0.02, 0.04)
    x = np.stack([chord * level, chord * level * 0.8], axis=1).astype(np.float32)

    stream = Loudness().stream(rate, 2)
    sizes = [9600, 9600, 19200, 48000, 48000, 48000, 48000, 48000]
    parts, start = [], 0
    for size in sizes:
        parts.append(stream.push(Audio(x[start : start + size], rate)).samples)
        start += size
    parts.append(stream.push(Audio(x[start:], rate)).samples)
    parts.append(stream.flush().samples)
    out = np.concatenate(parts)
    assert out.shape == x.shape
    seconds = [*sizes, len(x) - start]
    for before, after, size in zip(stream.gains_db, stream.gains_db[1:], seconds[1:], strict=False):
        assert abs(after - before) <= FALL_DB_PER_S * size / rate + 1e-9
    assert np.nanmax(gain_steps_db(out, x, rate)) < STEP_DB
    assert stream.gains_db[-1] < stream.gains_db[0] - 3  # it did come down


def test_the_shared_meter_reads_a_reference_sine() -> None:
    """BS.1770: a 997 Hz sine at amplitude A in both channels reads 20*log10(A) LUFS; mono is
    heard on both speakers, so it reads the same; a piece under one 400 ms block is measured
    as one block; silence is -inf."""
    rate = 48_000
    sine = 0.1 * np.sin(2 * np.pi * 997 * np.arange(5 * rate) / rate)
    assert integrated_lufs(np.stack([sine, sine], axis=1), rate) == pytest.approx(-20.0, abs=0.1)
    assert integrated_lufs(sine[:, None], rate) == pytest.approx(-20.0, abs=0.1)
    assert integrated_lufs(sine[: rate // 4, None], rate) == pytest.approx(-20.0, abs=0.1)
    assert integrated_lufs(np.zeros((rate, 2)), rate) == float("-inf")


async def test_the_cache_holds_tracks_at_the_target_and_a_new_target_renormalises_them(
    tmp_path: Path,
) -> None:
    """The scheduler caches each track at its exact gain (sidecar record); the same track
    wanted at another target is a cache hit, brought to the new target and stored again."""
    import asyncio

    station = Station("lofi piano, rain", "synth", BUILTIN_MODEL, 6.0)
    calls: list[Station] = []

    def factory(wanted: Station) -> Engine:
        calls.append(wanted)
        return SynthEngine()

    async def first_track(target: float) -> Path:
        cache = TrackCache(tmp_path / "cache")
        scheduler = Scheduler(
            factory, cache, None, lookahead=1, seed_source=lambda: 11, loudness=Loudness(target)
        )
        scheduler.toggle_pause()
        scheduler.set_station(station)
        await scheduler.start()
        try:
            for _ in range(1500):
                jobs = [j for j in scheduler.jobs if j.path is not None]
                if jobs:
                    return jobs[0].path
                await asyncio.sleep(0.01)
            raise AssertionError("no track was cached")
        finally:
            await scheduler.aclose()

    path = await first_track(-20.0)
    assert len(calls) == 1
    assert abs(lufs(read_wav(path).samples, 48_000) + 20.0) < TOLERANCE_LU
    record = json.loads(path.with_suffix(".json").read_text())["metadata"]["loudness"]
    assert record["target_lufs"] == -20.0

    again = await first_track(TARGET)
    assert again == path and len(calls) == 1, "a cache hit, not a new generation"
    assert abs(lufs(read_wav(path).samples, 48_000) - TARGET) < TOLERANCE_LU
    record = json.loads(path.with_suffix(".json").read_text())["metadata"]["loudness"]
    assert record["target_lufs"] == TARGET


def test_config_and_command_line_set_the_target_or_turn_it_off() -> None:
    """config.toml: a bad value is one warning and the default; the command line's is one
    UsageError line (lofi prints it and exits 2: tests/test_bad_input.py runs those)."""
    said = 'loudness must be a number of LUFS between -40 and -5, or "off"'
    config, warnings = parse_config({"loudness": -18})
    assert config.loudness == -18.0 and not warnings
    assert parse_config({"loudness": "off"})[0].loudness is None
    assert parse_config({"loudness": False})[0].loudness is None
    for bad in (-41, 0, True, "quiet", float("nan")):
        config, warnings = parse_config({"loudness": bad})
        assert config.loudness == TARGET and len(warnings) == 1 and said in warnings[0], bad
    assert build_settings(Config(), {"engine": "synth", "loudness": "-20"}).loudness == -20.0
    assert build_settings(Config(), {"engine": "synth", "loudness": "off"}).loudness is None
    assert build_settings(Config(loudness=-18.0), {"engine": "synth"}).loudness == -18.0
    with pytest.raises(UsageError, match=said):
        build_settings(Config(), {"engine": "synth", "loudness": "-3"})
