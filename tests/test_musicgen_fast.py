"""lofi's fast MusicGen decoder, rebuilt from the public export, against the same references."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from musicgen_fixture import flat_copy, reference

from lofitui.convert.formats import DEFAULT_FAST_QUANT, FAST_QUANTS
from lofitui.convert.musicgen_fast import extract_weights, sinusoidal_table
from lofitui.engines.base import TrackRequest
from lofitui.engines.musicgen import MusicGenEngine, SamplingParams
from lofitui.engines.runtime import RuntimeOptions
from lofitui.errors import ModelError
from lofitui.models.derived import derived_files
from lofitui.models.optimize import optimize_musicgen

CPU = RuntimeOptions(device="cpu", threads=1)
# Stated error bounds of the quantized variants against fp32 on the tiny fixture's weights
# (measured: q4 0.042, int8 0.0047, q8 0.0037 on logits within ±0.42).
QUANT_ATOL = {"fp32": 1e-4, "q8": 0.02, "int8": 0.02, "q4": 0.1}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = flat_copy(tmp_path_factory.mktemp("fast") / "tiny")
    for quant in FAST_QUANTS:
        optimize_musicgen(root, quant)
    return root


def _step_logits(engine: MusicGenEngine) -> np.ndarray:
    ref = reference()
    ids = ref["step_input_ids"]
    decoder = engine._decoder
    out = [decoder.start(ids[:, :1], ref["encoder_hidden_states"], ref["encoder_attention_mask"])]
    out += [decoder.step(ids[:, s : s + 1]) for s in range(1, ids.shape[1])]
    return np.stack(out)


@pytest.mark.parametrize("quant", FAST_QUANTS)
def test_fast_logits_match_transformers(model_dir: Path, quant: str) -> None:
    engine = MusicGenEngine.load(model_dir, CPU, decoder="fast", fast_quant=quant)
    assert engine.describe()["decoder"] == f"fast-{quant}"
    want = reference()["step_logits"]
    got = _step_logits(engine)
    err = np.abs(got - want).max()
    agree = (got.argmax(-1) == want.argmax(-1)).mean()
    assert err < QUANT_ATOL[quant], f"{quant}: max logit error {err:.3g}"
    if quant == "fp32":
        assert agree == 1.0
    else:
        assert agree >= 0.5, f"{quant}: top-1 agreement {agree:.2f}"


def test_fast_fp32_greedy_tokens_identical_to_generate(model_dir: Path) -> None:
    ref = reference()
    engine = MusicGenEngine.load(model_dir, CPU, decoder="fast", fast_quant="fp32")
    want = ref["greedy_codes"][0]
    params = SamplingParams(top_k=1, temperature=1.0, guidance=float(ref["greedy_guidance_scale"]))
    codes = engine.generate_codes(str(ref["prompt"][0]), want.shape[1], params, seed=0)
    np.testing.assert_array_equal(codes, want)


def test_fast_prefill_equals_stepping(model_dir: Path) -> None:
    ref = reference()
    engine = MusicGenEngine.load(model_dir, CPU, decoder="fast", fast_quant="fp32")
    ids, hs, mask = (
        ref["step_input_ids"],
        ref["encoder_hidden_states"],
        ref["encoder_attention_mask"],
    )
    stepped = _step_logits(engine)[-1]
    at_once = engine._decoder.start(ids, hs, mask)
    np.testing.assert_allclose(at_once, stepped, atol=1e-5)


def test_fast_and_exact_sample_the_same_track(model_dir: Path) -> None:
    fast = MusicGenEngine.load(model_dir, CPU, decoder="fast", fast_quant="fp32")
    exact = MusicGenEngine.load(model_dir, CPU, decoder="split")
    request = TrackRequest("warm piano", duration_s=2.0, seed=11, params={"top_k": 50})
    np.testing.assert_allclose(
        fast.generate(request).samples, exact.generate(request).samples, atol=1e-4
    )


def test_fast_windows_continue_long_tracks(model_dir: Path) -> None:
    engine = MusicGenEngine.load(model_dir, CPU, decoder="fast", fast_quant="q4")
    params = SamplingParams(top_k=20, temperature=1.0, guidance=3.0)
    codes = engine.generate_codes("drums", 90, params, seed=2, window_frames=40, stride_frames=25)
    assert codes.shape == (4, 90)
    single = engine.generate_codes("drums", 40, params, seed=2)
    np.testing.assert_array_equal(codes[:, :40], single)


def test_auto_picks_the_fast_decoder_on_cpu(model_dir: Path, tmp_path: Path) -> None:
    engine = MusicGenEngine.load(model_dir, CPU)
    assert engine.decoder_kind == "fast" and engine.fast_quant == DEFAULT_FAST_QUANT
    plain = MusicGenEngine.load(flat_copy(tmp_path / "plain"), CPU)
    assert plain.decoder_kind == "split"
    with pytest.raises(ModelError, match="lofi models optimize"):
        MusicGenEngine.load(tmp_path / "plain", CPU, decoder="fast")


def test_sinusoidal_table_matches_the_export() -> None:
    """The positional table we rebuild equals the one baked into the public graph."""
    import onnx
    from musicgen_fixture import require_fixture
    from onnx import numpy_helper

    model = onnx.load(str(require_fixture() / "decoder_model.onnx"))
    tables = [numpy_helper.to_array(t) for t in model.graph.initializer if len(t.dims) == 2]
    tables += [
        numpy_helper.to_array(a.t)
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value" and len(a.t.dims) == 2
    ]
    mine = sinusoidal_table(2048, 24)
    # float32 cos/sin of angles up to 2047 rad differ by ~1e-4 between libraries: the builder
    # therefore reuses the export's own table and keeps this formula as the fallback.
    assert any(t.shape == mine.shape and np.allclose(t, mine, atol=2e-4) for t in tables)
    assert np.array_equal(
        extract_weights(require_fixture() / "decoder_model.onnx").positions,
        next(t for t in tables if t.shape == mine.shape),
    )


def test_optimize_command_caches_and_remove_cleans_up(tmp_path: Path) -> None:
    root = flat_copy(tmp_path / "m")
    env = {**os.environ, "LOFI_MODELS_DIR": str(tmp_path / "models")}
    cmd = [sys.executable, "-m", "lofitui", "models", "optimize", str(root)]
    cmd += ["--compute-type", "int4"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    path = Path(first.stdout.strip())
    # a directory lofi does not own: built into lofi's cache, the directory left alone
    assert path.name == "decoder_fast_q4.onnx"
    assert path.parent.parent == tmp_path / "models" / ".derived" and not derived_files(root)
    mtime = path.stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and path.stat().st_mtime_ns == mtime  # cached, not rebuilt
    assert {p.name for p in derived_files(path.parent)} == {
        "decoder_fast_q4.onnx",
        "decoder_cross_kv.onnx",
    }
    assert not list(path.parent.glob(".*part"))


def test_optimize_refuses_a_graph_that_is_not_a_musicgen_decoder(tmp_path: Path) -> None:
    root = flat_copy(tmp_path / "m")
    with pytest.raises(ModelError, match="does not look like an optimum MusicGen decoder"):
        extract_weights(root / "encodec_decode.onnx")
    result = subprocess.run(
        [sys.executable, "-m", "lofitui", "models", "optimize", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stderr.startswith("lofi: error:")
    assert len(result.stderr.strip().splitlines()) == 1
