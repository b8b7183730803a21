"""lofi's fast MusicGen decoder, rebuilt from the public export, against the same references."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from musicgen_fixture import flat_copy, reference

from lofitui.convert.formats import DEFAULT_FAST_QUANT, FAST_QUANTS, int8_cache
from lofitui.convert.kv_cache import KVScales, calibrate, encode_prompts, quantize_cache
from lofitui.convert.musicgen_fast import (
    build_step_graph,
    extract_weights,
    quantize_model,
    sinusoidal_table,
)
from lofitui.engines.base import TrackRequest
from lofitui.engines.musicgen import MusicGenEngine, SamplingParams
from lofitui.engines.musicgen_decoder import FastDecoder
from lofitui.engines.runtime import RuntimeOptions
from lofitui.errors import ModelError
from lofitui.models.derived import derived_files
from lofitui.models.optimize import optimize_musicgen

CPU = RuntimeOptions(device="cpu", threads=1)
# Stated error bounds of the quantized variants against fp32 on the tiny fixture's weights
# (measured: q4 0.042, int8 0.0047, q8 0.0037, q8kv 0.0038, q4kv 0.042 on logits within ±0.42).
QUANT_ATOL = {"fp32": 1e-4, "q8": 0.02, "q8kv": 0.02, "int8": 0.02, "q4": 0.1, "q4kv": 0.1}


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
    assert engine._decoder.layout.dtype == (np.int8 if int8_cache(quant) else np.float32)
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


@pytest.mark.parametrize("quant", ["q4", "q8kv"])
def test_fast_windows_continue_long_tracks(model_dir: Path, quant: str) -> None:
    engine = MusicGenEngine.load(model_dir, CPU, decoder="fast", fast_quant=quant)
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
    assert path.name == "decoder_fast_q4kv.onnx"  # 4-bit weights, int8 cache
    assert path.parent.parent == tmp_path / "models" / ".derived" and not derived_files(root)
    mtime = path.stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and path.stat().st_mtime_ns == mtime  # cached, not rebuilt
    assert {p.name for p in derived_files(path.parent)} == {
        "decoder_fast_q4kv.onnx",
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


def test_int8_cache_holds_int8_and_tracks_the_fp32_cache(model_dir: Path) -> None:
    """The q8kv graph keeps an int8 cache (a quarter of the bytes) and, prefilled or stepped,
    stays as close to transformers as the fp32-cache q8 graph (same weights: within 2e-3)."""
    ref = reference()
    kv = MusicGenEngine.load(model_dir, CPU, decoder="fast", fast_quant="q8kv")
    plain = MusicGenEngine.load(model_dir, CPU, decoder="fast", fast_quant="q8")
    stepped = _step_logits(kv)
    assert all(b.data_type() == "tensor(int8)" for b in kv._decoder._buffers)
    assert kv.describe()["dtype"] == "int8"
    np.testing.assert_allclose(stepped, _step_logits(plain), atol=2e-3)
    ids, hs, mask = (
        ref["step_input_ids"],
        ref["encoder_hidden_states"],
        ref["encoder_attention_mask"],
    )
    np.testing.assert_allclose(kv._decoder.start(ids, hs, mask), stepped[-1], atol=2e-3)


def test_calibration_gives_per_channel_scales_that_matter(tmp_path: Path) -> None:
    """Calibration: seeded, one scale per layer, head and channel; the built scales keep the
    logits near the fp32-cache graph, and scales 100x too small visibly do not (they matter)."""
    from musicgen_fixture import require_fixture

    from lofitui.convert.musicgen_fast import save_model

    src = require_fixture()
    weights = extract_weights(src / "decoder_model.onnx")
    heads = 3  # the tiny fixture's config
    root = flat_copy(tmp_path / "m")
    optimize_musicgen(root, "q8")
    step = quantize_model(build_step_graph(weights, heads, 64), "q8")
    hidden, mask = encode_prompts(src / "text_encoder.onnx", src / "tokenizer.json", ("piano",))
    assert hidden.shape[0] == 2 and not hidden[1].any() and not mask[1].any()  # the CFG pair
    run = {"codebooks": len(weights.embeds), "pad_token": weights.embeds[0].shape[0] - 1}
    cross = root / "decoder_cross_kv.onnx"
    scales = calibrate(step.SerializeToString(), cross, hidden, mask, steps=12, **run)
    again = calibrate(step.SerializeToString(), cross, hidden, mask, steps=12, **run)
    assert len(scales.key) == len(scales.value) == weights.layers
    for a, b in zip(scales.key + scales.value, again.key + again.value, strict=True):
        assert a.shape == (1, heads, 1, 8) and (a > 0).all()
        np.testing.assert_array_equal(a, b)  # the same weights build the same file
    plain = _step_logits(MusicGenEngine.load(root, CPU, decoder="fast", fast_quant="q8"))
    errors = []
    for factor in (1, 100):
        shrunk = KVScales([s / factor for s in scales.key], [s / factor for s in scales.value])
        graph = quantize_model(build_step_graph(weights, heads, 64), "q8")
        save_model(quantize_cache(graph, shrunk), root / "decoder_fast_q8kv.onnx")
        got = _step_logits(MusicGenEngine.load(root, CPU, decoder="fast", fast_quant="q8kv"))
        assert np.isfinite(got).all()
        errors.append(np.abs(got - plain).max())
    assert errors[0] < 2e-3 and errors[1] > 5 * errors[0], errors
    with pytest.raises(ValueError, match="scales"):
        quantize_cache(build_step_graph(weights, heads, 64), KVScales(scales.key[:1], []))


def test_quantized_builds_leave_no_fp32_graph_behind(tmp_path: Path, caplog) -> None:
    """An int8 or q8kv build writes its own file and the cross graph, nothing else (and says
    nothing of ONNX Runtime's pre-processing advice, which would reach the terminal)."""
    root = flat_copy(tmp_path / "m")
    before = {p.name for p in root.iterdir()}
    with caplog.at_level(logging.WARNING):
        for quant in ("int8", "q8kv"):
            optimize_musicgen(root, quant)
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    after = {p.name for p in root.iterdir()}
    assert after - before == {
        "decoder_fast_int8.onnx",
        "decoder_fast_q8kv.onnx",
        "decoder_cross_kv.onnx",
    }


def test_seek_steps_where_stepping_would_have_reached(model_dir: Path) -> None:
    """A step after ``seek(p)`` is the step at position p (what measure_pace times)."""
    engine = MusicGenEngine.load(model_dir, CPU, decoder="fast", fast_quant="fp32")
    ref = reference()
    ids = ref["step_input_ids"]
    decoder = engine._decoder
    assert isinstance(decoder, FastDecoder)
    decoder.start(ids[:, :1], ref["encoder_hidden_states"], ref["encoder_attention_mask"])
    last = ids.shape[1] - 1
    for s in range(1, last + 1):
        stepped = decoder.step(ids[:, s : s + 1])
    decoder.seek(last)
    again = decoder.step(ids[:, last : last + 1])
    np.testing.assert_allclose(again, stepped, atol=1e-5)
    decoder.seek(0)
    assert not np.allclose(decoder.step(ids[:, last : last + 1]), stepped, atol=1e-3)
    with pytest.raises(ValueError, match="outside the cache"):
        decoder.seek(10_000)
    decoder.release()


def test_measured_pace_predicts_each_tracks_slowdown(model_dir: Path) -> None:
    engine = MusicGenEngine.load(model_dir, CPU, decoder="fast", fast_quant="q8kv")
    assert engine.slowdown_for(30.0) == MusicGenEngine.slowdown  # the guess until measured
    a, b = engine.measure_pace()
    assert a > 0 and b >= 0
    k_count = engine.config.num_codebooks
    for duration in (1.0, 2.5):  # within one window: the last unit costs 1 + k times the first
        n = engine.frames_for(duration) + k_count - 1
        assert engine.slowdown_for(duration) == pytest.approx(b * (n - 1) / (a + b))
    engine._unit_cost = (1.0, 0.01)  # white box: a known cost model
    window = engine.window_plan(1).window
    short, full = (engine.slowdown_for(d / engine.config.frame_rate) for d in (100, window))
    assert short == pytest.approx(0.01 * (100 + k_count - 2) / 1.01)
    assert full > short
    # past one window each window starts from its prompt: the track slows less than one window
    assert engine.slowdown_for(window * 5 / engine.config.frame_rate) < 2 * full


def test_engines_without_a_fast_decoder_keep_their_guess(model_dir: Path) -> None:
    engine = MusicGenEngine.load(model_dir, CPU, decoder="split")
    assert engine.measure_pace() is None
    assert engine.slowdown_for(30.0) == MusicGenEngine.slowdown
