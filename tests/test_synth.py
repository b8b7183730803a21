"""The built-in synth engine, judged by analysing what it actually renders: tempo by onset
autocorrelation, loudness (BS.1770), peaks, mode by chroma, drums by their band; determinism,
streaming, the prompt's words, and `lofi --render` end to end with no model installed."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import one_error_line, run_lofi

from lofitui import session
from lofitui.audio.loudness import Loudness, integrated_lufs
from lofitui.engines.base import BUILTIN_MODEL, TrackRequest
from lofitui.engines.registry import engine_class
from lofitui.engines.synth import MIX_LUFS, SynthEngine
from lofitui.engines.synth.prompt import plan_for
from lofitui.errors import UsageError

SR = 48_000
LOUDNESS_TOLERANCE_LU = 1.0
ENGINE = SynthEngine()
_RENDERS: dict[tuple, np.ndarray] = {}


def request(prompt: str, seed: int = 1, duration: float = 12.0, **params) -> TrackRequest:
    return TrackRequest(prompt, duration, seed, "synth", BUILTIN_MODEL, params)


def render(prompt: str, seed: int = 1, duration: float = 12.0, **params) -> np.ndarray:
    """The samples of one request, rendered once per test session."""
    key = (prompt, seed, duration, tuple(sorted(params.items())))
    if key not in _RENDERS:
        _RENDERS[key] = ENGINE.generate(request(prompt, seed, duration, **params)).samples
    return _RENDERS[key]


def onset_tempo(x: np.ndarray, lo_bpm: float = 55.0, hi_bpm: float = 115.0) -> float:
    """The beat period with the strongest autocorrelation of the spectral-flux onset envelope,
    in BPM (interpolated between lags)."""
    mono = x.mean(axis=1)
    n, hop = 1024, 256
    frames = np.lib.stride_tricks.sliding_window_view(mono, n)[::hop] * np.hanning(n)
    spectrum = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.maximum(np.diff(spectrum, axis=0), 0).sum(axis=1)
    env = np.maximum(flux - np.convolve(flux, np.ones(16) / 16, "same"), 0)
    ac = np.correlate(env, env, "full")[len(env) - 1 :]
    rate = SR / hop
    lags = np.arange(len(ac)) / rate
    i = int(np.argmax(ac * ((lags > 60 / hi_bpm) & (lags < 60 / lo_bpm))))
    a, b, c = ac[i - 1], ac[i], ac[i + 1]
    return 60.0 / ((i + 0.5 * (a - c) / (a - 2 * b + c)) / rate)


def chroma(x: np.ndarray) -> np.ndarray:
    """Energy per pitch class (C = 0) between 100 Hz and 2 kHz."""
    mono = x.mean(axis=1)
    n = 8192
    frames = np.lib.stride_tricks.sliding_window_view(mono, n)[:: n // 2] * np.hanning(n)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    keep = (freqs > 100) & (freqs < 2000)
    classes = np.round(12 * np.log2(freqs[keep] / 440.0) + 69).astype(int) % 12
    return np.bincount(classes, weights=power[keep], minlength=12)


def band_db(x: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x.mean(axis=1))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float(10 * np.log10(spectrum[(freqs >= lo) & (freqs < hi)].sum() / spectrum.sum()))


# ---- what it sounds like --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "params", "bpm"),
    [("chill lofi beat 92 bpm", {}, 92.0), ("rainy rhodes", {"bpm": 68}, 68.0)],
)
def test_tempo_by_onset_autocorrelation(prompt, params, bpm):
    measured = onset_tempo(render(prompt, 3, 20.0, **params))
    assert abs(measured - bpm) / bpm < 0.02, measured


@pytest.mark.parametrize(
    "prompt", ["chill lofi beat 92 bpm", "sad piano, no drums", "rain, vinyl, tape, upbeat"]
)
def test_loudness_on_target_and_no_clipping(prompt):
    x = render(prompt, 3, 20.0)
    assert x.dtype == np.float32 and x.shape == (20 * SR, 2)
    assert abs(integrated_lufs(x, SR) - MIX_LUFS) < LOUDNESS_TOLERANCE_LU
    assert np.abs(x).max() < 1.0


def test_minor_and_major_words_change_the_mode():
    """Chroma relative to the planned tonic: the minor third sounds in "sad", the major third
    in "happy"."""
    for prompt, minor in (("sad melancholic lofi", True), ("happy sunny lofi", False)):
        tonic = plan_for(prompt, 5).tonic
        assert plan_for(prompt, 5).minor is minor
        c = chroma(render(prompt, 5))
        minor_third, major_third = c[(tonic + 3) % 12], c[(tonic + 4) % 12]
        assert (minor_third > 3 * major_third) if minor else (major_third > 3 * minor_third)


def test_no_drums_takes_the_kick_away():
    with_drums = band_db(render("lofi beat in A minor", 2), 30, 62)
    without = band_db(render("lofi beat in A minor, no drums", 2), 30, 62)
    assert with_drums - without > 10, (with_drums, without)


# ---- the Engine contract --------------------------------------------------------------------


def test_same_request_same_bytes_and_seeds_differ():
    a = ENGINE.generate(request("dreamy rhodes, vinyl", 11, 8.0)).samples
    b = ENGINE.generate(request("dreamy rhodes, vinyl", 11, 8.0)).samples
    c = ENGINE.generate(request("dreamy rhodes, vinyl", 12, 8.0)).samples
    assert a.tobytes() == b.tobytes()
    assert a.shape == c.shape and np.abs(a - c).mean() > 0.01


def test_stream_chunks_are_bars_that_join_into_generate():
    req = request("lofi 80 bpm", 4, 10.0)
    progress = []
    chunks = list(ENGINE.stream(req, on_progress=progress.append))
    assert len(chunks) >= 3 and all(c.sample_rate == SR and c.channels == 2 for c in chunks)
    bar = 4 * 60 / 80 * SR
    assert all(c.frames == pytest.approx(bar, abs=1) for c in chunks[:-1])
    joined = np.concatenate([c.samples for c in chunks])
    assert joined.tobytes() == ENGINE.generate(req).samples.tobytes()
    assert len(joined) == 10 * SR
    assert progress[-1].done == progress[-1].total == len(chunks)


def test_prompt_words_steer_the_plan():
    assert plan_for("slow sleepy piano", 1).bpm <= 70
    assert plan_for("upbeat groovy lofi", 1).bpm >= 88
    assert plan_for("lofi at 97 bpm", 1).bpm == 97
    assert plan_for("lofi at 97 bpm", 1, bpm=64).bpm == 64
    assert plan_for("felt piano", 1).keys == "piano"
    assert plan_for("electric rhodes", 1).keys == "rhodes"
    assert plan_for("ambient pad", 1).keys == "pad"
    assert plan_for("nylon guitar melody", 1).lead == "guitar"
    assert not plan_for("lofi without drums", 1).drums
    assert plan_for("lofi with drums", 1).drums
    assert plan_for("rain on the window", 1).rain > 0 == plan_for("lofi", 1).rain
    assert plan_for("clean", 1).vinyl == 0 < plan_for("lofi", 1).vinyl
    assert plan_for("in F# minor", 1).tonic == 6 and plan_for("in F# minor", 1).minor
    assert plan_for("qwzx florp", 1) == plan_for("qwzx florp", 1)  # unknown words are fine


def test_check_refuses_out_of_range_requests():
    cls = engine_class("synth")
    with pytest.raises(UsageError, match="bpm must be between 60 and 100"):
        cls.check(request("x", bpm=120))
    with pytest.raises(UsageError, match="duration must be between 5 and 600"):
        cls.check(request("x", duration=2.0))


def test_open_engine_needs_no_model_files(lofi_home):
    opened = session.open_engine("synth", BUILTIN_MODEL, device="cpu", threads=1, offline=True)
    assert opened.engine.sample_rate == SR and opened.engine.channels == 2
    assert opened.engine.describe()["model"] == BUILTIN_MODEL
    assert not (lofi_home / "models").exists()
    with pytest.raises(UsageError, match="built in and takes no model"):
        session.open_engine("synth", "musicgen-small", device="cpu", threads=1)


# ---- end to end -----------------------------------------------------------------------------


def test_render_end_to_end_with_no_models(tmp_path, cli_env):
    out = tmp_path / "out"
    out.mkdir()
    result = run_lofi(
        "--engine", "synth", "--render", "rainy jazz, rhodes", "--duration", "6",
        "--seed", "9", "--out", str(out), env=cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wav,) = out.glob("*.wav")
    audio, rate = sf.read(wav, dtype="float32")
    assert rate == SR and audio.shape == (6 * SR, 2)
    assert 0.05 < np.abs(audio).max() < 1.0
    expected, _ = Loudness().normalise(ENGINE.generate(request("rainy jazz, rhodes", 9, 6.0)))
    assert np.abs(audio - expected.samples).max() < 1 / 16384  # the same music, normalised
    assert "lofi: error" in one_error_line(
        run_lofi(
            "--engine", "synth", "--model", "x", "--render", "a", "--out", str(out), env=cli_env
        )
    )
