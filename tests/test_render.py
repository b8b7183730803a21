"""`lofi --render` end to end: real subprocess, real engine on the tiny fixture, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_lofi
from musicgen_fixture import require_fixture

from lofitui.audio.wav import read_wav
from lofitui.library import slugify, unique_path


def test_renders_tracks_with_sidecars(tmp_path: Path, cli_env: dict) -> None:
    model = str(require_fixture())
    args = ("--render", "Lofi hip hop: warm piano / vinyl!", "--duration", "1.5", "--count", "2")
    result = run_lofi(
        *args,
        "--seed",
        "41",
        "--model",
        model,
        "--out",
        "out",
        "--top-k",
        "50",
        cwd=tmp_path,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    wavs = sorted(out.glob("*.wav"))
    assert [p.name for p in wavs] == [
        "lofi-hip-hop-warm-piano-vinyl-41.wav",
        "lofi-hip-hop-warm-piano-vinyl-42.wav",
    ]
    assert result.stdout.split() == [str(Path("out") / p.name) for p in wavs]
    for wav, seed in zip(wavs, (41, 42), strict=True):
        audio = read_wav(wav)
        assert audio.sample_rate == 32000 and audio.frames == 48000 and audio.channels == 1
        assert np.abs(audio.samples).max() > 0
        meta = json.loads(wav.with_suffix(".json").read_text())
        assert meta["prompt"] == "Lofi hip hop: warm piano / vinyl!" and meta["seed"] == seed
        assert meta["duration_s"] == 1.5 and meta["engine"] == "musicgen"
        assert meta["model"] == model and meta["lofi_version"]
        assert meta["params"] == {
            "guidance": 3.0,
            "temperature": 1.0,
            "top_k": 50,
            "compute_type": "int8",  # the fast decoder built in lofi's cache for the fixture dir
        }
    assert not list(out.glob(".*"))  # no temp files left

    # The same request again: same audio, new names (never overwrites).
    again = run_lofi(
        *args,
        "--seed",
        "41",
        "--model",
        model,
        "--out",
        "out",
        "--top-k",
        "50",
        cwd=tmp_path,
        env=cli_env,
    )
    assert again.returncode == 0, again.stderr
    second = out / "lofi-hip-hop-warm-piano-vinyl-41-2.wav"
    np.testing.assert_array_equal(read_wav(second).samples, read_wav(wavs[0]).samples)
    assert len(list(out.glob("*.wav"))) == 4


def test_greedy_render_is_deterministic(tmp_path: Path, cli_env: dict) -> None:
    model = str(require_fixture())
    for name in ("a", "b"):
        result = run_lofi(
            "--render",
            "jazz",
            "--duration",
            "1",
            "--top-k",
            "1",
            "--model",
            model,
            "--out",
            name,
            cwd=tmp_path,
            env=cli_env,
        )
        assert result.returncode == 0, result.stderr
    (a,), (b,) = (list((tmp_path / d).glob("*.wav")) for d in "ab")
    np.testing.assert_array_equal(read_wav(a).samples, read_wav(b).samples)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--render", ""], "prompt is empty"),
        (["--render", "   "], "prompt is empty"),
        (["--render", "x", "--duration", "0"], "duration must be > 0"),
        (["--render", "x", "--duration", "-3"], "duration must be > 0"),
        (["--render", "x", "--duration", "nan"], "duration"),
        (["--render", "x", "--duration", "601"], "between 1 and 600 seconds"),
        (["--render", "x", "--duration", "abc"], "invalid float value"),
        (["--render", "x", "--count", "0"], "count must be"),
        (["--render", "x", "--seed", "-1"], "seed must be"),
        (["--render", "x", "--device", "tpu"], "invalid choice"),
        (["--render", "x", "--device", "cuda"], "device 'cuda' is not available"),
        (["--render", "x", "--format", "mp3"], "invalid choice"),
        (["--render", "x", "--top-k", "0"], "top-k must be >= 1"),
        (["--render", "x", "--temperature", "0"], "temperature must be between 0.01 and 100"),
        (["--render", "x", "--engine", "nope"], "unknown engine"),
        (["--render", "x", "--model", "/nonexistent/model"], "not found"),
        (["--render", "x", "--out", "blocker/sub"], "cannot write to output directory"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, cli_env: dict, args: list[str], message: str
) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    if "--model" not in args:
        args = [*args, "--model", str(require_fixture())]
    result = run_lofi(*args, cwd=tmp_path, env=cli_env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lofi: error:"), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.wav"))


def test_missing_catalog_model_offline_is_a_clear_error(tmp_path: Path, cli_env: dict) -> None:
    result = run_lofi("--render", "x", "--duration", "1", cwd=tmp_path, env=cli_env)
    assert result.returncode == 2
    assert "musicgen-small" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ctrl_c_stops_cleanly_and_leaves_no_partial_file(tmp_path: Path, cli_env: dict) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lofitui",
            "--render",
            "ambient drone",
            "--duration",
            "120",
            "--count",
            "3",
            "--model",
            str(require_fixture()),
            "--out",
            "out",
        ],
        cwd=tmp_path,
        env={**os.environ, **cli_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    # Wait until generation is under way (the output directory exists once it is checked).
    while not (tmp_path / "out").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_slugify_and_unique_names(tmp_path: Path) -> None:
    assert slugify("Lo-Fi  Café / beats?") == "lo-fi-cafe-beats"
    assert slugify("////") == "track"
    assert slugify("日本の音楽") == "track"
    assert len(slugify("x" * 300)) <= 48
    first = unique_path(tmp_path, "a", ".wav")
    first.write_bytes(b"")
    assert unique_path(tmp_path, "a", ".wav").name == "a-2.wav"
