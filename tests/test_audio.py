"""WAV I/O, resampling and mixing: the pure parts of lofitui.audio (no sound device needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lofitui.audio import mixing
from lofitui.audio.resample import resample
from lofitui.audio.types import Audio
from lofitui.audio.wav import CorruptAudioError, read_wav, write_wav
from lofitui.errors import LofiError


def noise(frames: int, channels: int, rate: int = 32000, seed: int = 0) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio(rng.uniform(-0.9, 0.9, (frames, channels)).astype(np.float32), rate)


def sine(freq: float, seconds: float, rate: int) -> Audio:
    t = np.arange(round(seconds * rate)) / rate
    return Audio((0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[:, None], rate)


def dominant(x: np.ndarray, rate: int) -> float:
    n = x.shape[0]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(n), 16 * n))
    return float(np.argmax(spectrum) * rate / (16 * n))


# ---- WAV ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2])
def test_float_wav_round_trips_exactly(tmp_path: Path, channels: int) -> None:
    audio = noise(12345, channels)
    path = write_wav(tmp_path / "t.wav", audio)
    back = read_wav(path)
    assert back.sample_rate == 32000 and back.samples.dtype == np.float32
    np.testing.assert_array_equal(back.samples, audio.samples)
    assert sf.info(str(path)).subtype == "FLOAT"


@pytest.mark.parametrize("channels", [1, 2])
def test_pcm16_wav_round_trips_within_one_step_and_clips(tmp_path: Path, channels: int) -> None:
    audio = noise(5000, channels, rate=48000)
    loud = audio.samples.copy()
    loud[0] = 1.7  # out of range: clipped, not wrapped
    path = write_wav(tmp_path / "t.wav", Audio(loud, 48000), subtype="PCM_16")
    back = read_wav(path)
    assert sf.info(str(path)).subtype == "PCM_16"
    assert np.max(np.abs(back.samples[1:] - audio.samples[1:])) <= 1 / 32768
    assert np.all(back.samples[0] > 0.99)


def test_write_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "t.wav"
    write_wav(target, noise(100, 1))
    write_wav(target, noise(200, 2, seed=1))
    assert read_wav(target).frames == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.wav"]
    assert (target.stat().st_mode & 0o777) == 0o644


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_keeps_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    target = tmp_path / "t.wav"
    write_wav(target, noise(100, 1))

    real_write = Path.write_bytes

    def broken_write(path: Path, data: object) -> int:  # the encoded WAV reaches the disk here
        real_write(path, b"RIFF partial")
        raise error

    monkeypatch.setattr(Path, "write_bytes", broken_write)
    with pytest.raises(type(error)):
        write_wav(target, noise(300, 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.wav"]
    assert read_wav(target).frames == 100


def test_unknown_subtype_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="subtype"):
        write_wav(tmp_path / "t.wav", noise(10, 1), subtype="PCM_24")  # type: ignore[arg-type]


@pytest.mark.parametrize("keep", [0.99, 0.5, 0.1])
def test_truncated_wav_is_detected(tmp_path: Path, keep: float) -> None:
    path = write_wav(tmp_path / "t.wav", noise(48000, 2))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptAudioError, match="truncated"):
        read_wav(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"RIFF", b"RIFF\x10\x00\x00\x00WAVEfmt ", os.urandom(4096), b"ID3" + bytes(500)],
)
def test_unreadable_files_raise_corrupt_audio_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(CorruptAudioError) as info:
        read_wav(path)
    assert isinstance(info.value, LofiError) and "bad.wav" in str(info.value)


def test_damaged_header_with_valid_sizes_is_detected(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "t.wav", noise(1000, 1))
    data = bytearray(path.read_bytes())
    data[12:16] = b"junk"  # the fmt chunk's id: libsndfile cannot find the format
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptAudioError):
        read_wav(path)


def test_non_finite_samples_are_refused(tmp_path: Path) -> None:
    samples = noise(1000, 1).samples.copy()
    samples[500] = np.nan
    sf.write(str(tmp_path / "nan.wav"), samples, 32000, subtype="FLOAT")
    with pytest.raises(CorruptAudioError, match="non-finite"):
        read_wav(tmp_path / "nan.wav")


def test_missing_file_is_an_os_error_not_corruption(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "missing.wav")


# ---- resampling --------------------------------------------------------------------------------


@pytest.mark.parametrize("rate_in", [32000, 44100])
def test_resample_keeps_pitch_and_duration(rate_in: int) -> None:
    audio = sine(1000, 1.0, rate_in)
    out = resample(audio, 48000)
    assert out.sample_rate == 48000 and out.frames == 48000 and out.channels == 1
    assert out.samples.dtype == np.float32
    assert abs(dominant(out.samples[:, 0], 48000) - 1000) < 0.5
    body = out.samples[4800:-4800, 0]
    assert np.max(np.abs(body)) == pytest.approx(0.5, abs=0.005)


def test_resample_same_rate_is_identity_and_keeps_channels() -> None:
    audio = noise(1000, 2)
    assert resample(audio, 32000) is audio
    assert resample(audio, 48000).samples.shape == (1500, 2)
    with pytest.raises(ValueError):
        resample(audio, 0)


# ---- mixing ------------------------------------------------------------------------------------


def test_equal_power_curves_keep_power_constant() -> None:
    fade_out, fade_in = mixing.equal_power_curves(1000)
    np.testing.assert_allclose(fade_out**2 + fade_in**2, 1.0, atol=1e-6)
    assert fade_out[0] > 0.999 and fade_in[0] < 0.01 and fade_in[-1] > 0.999
    assert np.all(np.diff(fade_out) < 0) and np.all(np.diff(fade_in) > 0)
    middle = mixing.equal_power_curves(2)[0]
    assert middle.shape == (2,)
    assert mixing.equal_power_curves(0)[0].size == 0


def test_crossfade_of_uncorrelated_noise_keeps_rms() -> None:
    a, b = noise(48000, 2, seed=1).samples, noise(48000, 2, seed=2).samples
    mixed = mixing.crossfade(a, b)
    assert mixed.shape == a.shape and mixed.dtype == np.float32
    rms_in = np.sqrt(np.mean(a**2))
    for block in np.array_split(mixed, 8):
        assert np.sqrt(np.mean(block**2)) == pytest.approx(rms_in, rel=0.05)
    with pytest.raises(ValueError):
        mixing.crossfade(a, b[:10])


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_fade_goes_from_start_to_end(shape: str) -> None:
    gains = mixing.fade(960, 1.0, 0.0, shape)
    assert gains.shape == (960,) and gains[-1] == 0.0 and gains[0] > 0.99
    assert np.all(np.diff(gains) <= 0)
    with pytest.raises(ValueError):
        mixing.fade(10, 0, 1, "exponential")


def test_to_stereo_layouts() -> None:
    mono = noise(10, 1).samples
    stereo = mixing.to_stereo(mono)
    assert stereo.shape == (10, 2) and stereo.flags.c_contiguous
    np.testing.assert_array_equal(stereo[:, 0], stereo[:, 1])
    two = noise(10, 2).samples
    np.testing.assert_array_equal(mixing.to_stereo(two), two)
    four = np.ones((10, 4), np.float32)
    np.testing.assert_array_equal(mixing.to_stereo(four), np.ones((10, 2)))
    with pytest.raises(ValueError):
        mixing.to_stereo(np.zeros(10, np.float32))


def test_levels_and_db() -> None:
    t = np.arange(48000) / 48000
    x = (0.5 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)[:, None]
    peak, rms = mixing.levels(x)
    assert peak == pytest.approx(0.5, abs=1e-4) and rms == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    assert mixing.levels(np.zeros((0, 2), np.float32)) == (0.0, 0.0)
    assert mixing.db(1.0) == 0.0 and mixing.db(0.0) == -120.0
    assert mixing.db(0.5) == pytest.approx(-6.02, abs=0.01)
