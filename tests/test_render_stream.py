"""`lofi --render ... --out -`: one WAV stream on stdout, as it is generated.

Real subprocesses on the tiny MusicGen fixture; the stream is parsed from the pipe itself.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_helpers import one_error_line, run_lofi
from musicgen_fixture import require_fixture

from lofitui.audio.types import Audio
from lofitui.audio.wav import WavStream, pcm16_bytes, write_wav

MODEL = str(require_fixture())
ACESTEP = Path(__file__).resolve().parent / "fixtures" / "acestep-tiny" / "turbo"
RATE = 32000  # the fixture's EnCodec rate, mono
HEADER = 44


def lofi_stream(*args: str, cwd: Path, env: dict) -> subprocess.Popen:
    """``lofi --render ARGS --out -`` with stdout and stderr as pipes."""
    model = () if "--model" in args else ("--model", MODEL)
    return subprocess.Popen(
        [sys.executable, "-m", "lofitui", "--render", *args, *model, "--out", "-"],
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_exactly(pipe: io.BufferedReader, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = pipe.read(size - len(data))
        assert more, f"stream ended after {len(data)} of {size} bytes"
        data += more
    return data


def test_stdout_stream_is_the_file_render_sample_for_sample(tmp_path: Path, cli_env: dict) -> None:
    # Off: the stream's running loudness gain differs from the files' exact one by design
    # (tests/test_loudness.py); the limiter alone gives both the same samples.
    args = ("ambient piano", "--duration", "1.5", "--count", "2", "--seed", "41", "--top-k", "50")
    args += ("--loudness", "off")
    files = run_lofi(
        "--render", *args, "--model", MODEL, "--out", "out",
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert files.returncode == 0, files.stderr
    expected = np.concatenate(
        [
            sf.read(path, dtype="int16", always_2d=True)[0]
            for path in sorted(tmp_path.glob("out/*.wav"))
        ]
    )

    proc = lofi_stream(*args, cwd=tmp_path, env=cli_env)
    assert proc.stdout is not None and proc.stderr is not None
    with wave.open(proc.stdout, "rb") as stream:  # parsed from the pipe, as a player reads it
        assert (stream.getnchannels(), stream.getsampwidth(), stream.getframerate()) == (1, 2, RATE)
        assert stream.getnframes() == 2 * 48000  # both tracks, announced in the header
        frames = stream.readframes(stream.getnframes())
    rest = proc.stdout.read()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert rest == b""  # nothing but the WAV on stdout
    assert "Traceback" not in stderr and "seed 41" in stderr  # the bars went to stderr
    np.testing.assert_array_equal(np.frombuffer(frames, "<i2")[:, None], expected)
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob("*.wav"))


def test_acestep_stereo_stream_has_the_exact_promised_length(tmp_path: Path, cli_env: dict) -> None:
    # 5.01 s is no whole number of VAE frames: the stream is cut or padded to round(5.01 * rate).
    args = ("rain", "--engine", "ace-step", "--model", str(ACESTEP), "--duration", "5.01")
    args += ("--seed", "7", "--steps", "2", "--loudness", "off")
    files = run_lofi("--render", *args, "--out", "out", cwd=tmp_path, env=cli_env)
    assert files.returncode == 0, files.stderr
    (path,) = tmp_path.glob("out/*.wav")
    expected = sf.read(path, dtype="int16", always_2d=True)[0]
    proc = lofi_stream(*args, cwd=tmp_path, env=cli_env)
    streamed, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()
    data, rate = sf.read(io.BytesIO(streamed), dtype="int16", always_2d=True)
    assert rate == 48000 and data.shape == (round(5.01 * 48000), 2)
    common = min(len(data), len(expected))
    np.testing.assert_array_equal(data[:common], expected[:common])
    assert not data[common:].any()  # padding, if the engine gave fewer frames, is silence


def test_audio_arrives_while_the_track_is_still_generating(tmp_path: Path, cli_env: dict) -> None:
    proc = lofi_stream("drone", "--duration", "60", "--seed", "1", cwd=tmp_path, env=cli_env)
    assert proc.stdout is not None and proc.stderr is not None
    header = read_exactly(proc.stdout, HEADER)
    first_second = read_exactly(proc.stdout, RATE * 2)
    first_at = time.monotonic()
    assert proc.poll() is None
    rest = proc.stdout.read()
    ended_at = time.monotonic()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    # Generating the other 59 s (seconds on this fixture) came after the first second arrived;
    # a render that wrote only when done would deliver all of it at once.
    assert ended_at - first_at > 1.0
    data, rate = sf.read(io.BytesIO(header + first_second + rest), dtype="int16")
    assert rate == RATE and data.shape == (60 * RATE,)
    assert np.abs(data[:RATE]).max() > 0


def test_a_reader_that_stops_early_ends_lofi_quietly(tmp_path: Path, cli_env: dict) -> None:
    proc = lofi_stream("drone", "--duration", "600", cwd=tmp_path, env=cli_env)  # ~30 s of work
    assert proc.stdout is not None and proc.stderr is not None
    read_exactly(proc.stdout, 1000)  # like `| head -c 1000`
    closed_at = time.monotonic()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert time.monotonic() - closed_at < 15  # generation was cancelled, not finished
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr


def test_ctrl_c_mid_stream_exits_130(tmp_path: Path, cli_env: dict) -> None:
    proc = lofi_stream("drone", "--duration", "600", cwd=tmp_path, env=cli_env)
    assert proc.stdout is not None and proc.stderr is not None
    read_exactly(proc.stdout, HEADER + RATE * 2)
    proc.send_signal(signal.SIGINT)
    proc.stdout.read()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr


def test_stdout_on_a_terminal_is_refused(tmp_path: Path, cli_env: dict) -> None:
    leader, follower = os.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "lofitui", "--render", "x", "--out", "-", "--model", MODEL],
            cwd=tmp_path,
            env={**os.environ, **cli_env},
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert "pipe it" in one_error_line(result)


def test_a_stream_past_4_gib_is_refused_before_any_byte(tmp_path: Path, cli_env: dict) -> None:
    result = run_lofi(
        "--render", "x", "--duration", "600", "--count", "200", "--out", "-",
        "--model", MODEL, cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    # before it, only the one-time build of the fast decoder speaks (stage lines end in "...")
    errors = [line for line in result.stderr.splitlines() if not line.endswith("...")]
    assert len(errors) == 1 and "at most 4 GiB" in errors[0]
    assert result.stdout == ""


def test_wav_stream_keeps_its_promise() -> None:
    sent: list[bytes] = []
    stream = WavStream(sent.append, 10, 8000, 2)
    stream.start()
    stream.write(Audio(np.full((4, 2), 0.5, np.float32), 8000))
    with pytest.raises(ValueError, match="promised"):
        stream.write(Audio(np.zeros((7, 2), np.float32), 8000))
    with pytest.raises(ValueError, match="WAV stream of 8000 Hz x2"):
        stream.write(Audio(np.zeros((1, 1), np.float32), 8000))
    stream.pad(6)
    data, rate = sf.read(io.BytesIO(b"".join(sent)), dtype="float32", always_2d=True)
    assert rate == 8000 and data.shape == (10, 2)
    assert (data[:4] == 0.5).all() and (data[4:] == 0).all()


def test_pcm16_bytes_match_the_16_bit_file(tmp_path: Path) -> None:
    samples = np.random.default_rng(0).uniform(-1.2, 1.2, (5000, 2)).astype(np.float32)
    path = write_wav(tmp_path / "a.wav", Audio(samples, 44100), subtype="PCM_16")
    expected = sf.read(path, dtype="int16")[0]
    assert pcm16_bytes(samples) == expected.astype("<i2").tobytes()
