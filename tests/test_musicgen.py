"""The MusicGen ONNX engine against PyTorch transformers references on the tiny fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from musicgen_fixture import (
    flat_copy,
    gabotechs_layout,
    reference,
    require_fixture,
    xenova_layout,
)

from lofitui.engines.base import CancelToken, TrackRequest
from lofitui.engines.musicgen import (
    DelayPattern,
    MusicGenEngine,
    SamplingParams,
    WindowPlan,
    sample_tokens,
)
from lofitui.engines.runtime import RuntimeOptions
from lofitui.errors import Cancelled, ModelError, UsageError

# Stated tolerances: fp32 ONNX vs PyTorch on the same weights.
LOGIT_ATOL = 1e-4
HIDDEN_ATOL = 1e-5
AUDIO_ATOL = 1e-4
GREEDY = SamplingParams(top_k=1, temperature=1.0, guidance=3.0)
CPU = RuntimeOptions(device="cpu", threads=1)


@pytest.fixture(scope="module", params=["split", "merged"])
def engine(request: pytest.FixtureRequest) -> MusicGenEngine:
    return MusicGenEngine.load(require_fixture(), CPU, decoder=request.param)


@pytest.fixture(scope="module")
def fp16_engine() -> MusicGenEngine:
    return MusicGenEngine.load(require_fixture(), CPU, variant="fp16")


def test_reads_sizes_from_the_files(engine: MusicGenEngine) -> None:
    ref = reference()
    cfg = engine.config
    assert cfg.num_codebooks == 4 and cfg.vocab_size == 2048 and cfg.pad_token_id == 2048
    assert cfg.sampling_rate == 32000 and cfg.frame_rate == 50
    assert engine.describe()["layers"] >= 1
    assert engine.sample_rate == 32000
    assert ref["step_logits"].shape[-1] == cfg.vocab_size


def test_tokenizer_and_text_encoder_match_reference(engine: MusicGenEngine) -> None:
    ref = reference()
    prompt = str(ref["prompt"][0])
    hidden, mask = engine.encode_text(prompt)
    np.testing.assert_array_equal(mask, ref["attention_mask"])
    np.testing.assert_allclose(hidden, ref["text_hidden"], atol=HIDDEN_ATOL)


def test_decoder_logits_match_reference_step_by_step(engine: MusicGenEngine) -> None:
    ref = reference()
    ids, want = ref["step_input_ids"], ref["step_logits"]
    decoder = engine._decoder
    got = [decoder.start(ids[:, :1], ref["encoder_hidden_states"], ref["encoder_attention_mask"])]
    got += [decoder.step(ids[:, s : s + 1]) for s in range(1, ids.shape[1])]
    err = np.abs(np.stack(got) - want).max()
    assert err < LOGIT_ATOL, f"max logit error {err:.2e}"


def test_prefill_of_several_positions_equals_stepping(engine: MusicGenEngine) -> None:
    """The windowed continuation primes the cache with many tokens at once."""
    ref = reference()
    ids = ref["step_input_ids"]
    decoder = engine._decoder
    hs, mask = ref["encoder_hidden_states"], ref["encoder_attention_mask"]
    at_once = decoder.start(ids, hs, mask)
    decoder.start(ids[:, :1], hs, mask)
    stepped = [decoder.step(ids[:, s : s + 1]) for s in range(1, ids.shape[1])][-1]
    np.testing.assert_allclose(at_once, stepped, atol=LOGIT_ATOL)


def test_greedy_tokens_identical_to_transformers_generate(engine: MusicGenEngine) -> None:
    ref = reference()
    want = ref["greedy_codes"][0]
    params = SamplingParams(top_k=1, temperature=1.0, guidance=float(ref["greedy_guidance_scale"]))
    codes = engine.generate_codes(str(ref["prompt"][0]), want.shape[1], params, seed=0)
    np.testing.assert_array_equal(codes, want)


def test_encodec_waveform_matches_reference(engine: MusicGenEngine) -> None:
    ref = reference()
    audio = engine.decode_codes(ref["encodec_codes"][0, 0])
    want = ref["encodec_audio"].reshape(-1)
    assert audio.shape == want.shape
    np.testing.assert_allclose(audio, want, atol=AUDIO_ATOL)


def test_greedy_waveform_matches_generate(engine: MusicGenEngine) -> None:
    ref = reference()
    audio = engine.decode_codes(ref["greedy_codes"][0])
    np.testing.assert_allclose(audio, ref["greedy_audio"].reshape(-1), atol=AUDIO_ATOL)


def test_merged_and_split_agree_when_sampling() -> None:
    split = MusicGenEngine.load(require_fixture(), CPU, decoder="split")
    merged = MusicGenEngine.load(require_fixture(), CPU, decoder="merged")
    request = TrackRequest("warm piano", duration_s=1.0, seed=7, params={"top_k": 50})
    a, b = split.generate(request), merged.generate(request)
    np.testing.assert_allclose(a.samples, b.samples, atol=1e-5)


def test_generate_is_seeded_and_sized(engine: MusicGenEngine) -> None:
    request = TrackRequest("lofi beat", duration_s=1.3, seed=3)
    first, again = engine.generate(request), engine.generate(request)
    other = engine.generate(TrackRequest("lofi beat", duration_s=1.3, seed=4))
    assert first.sample_rate == 32000 and first.channels == 1
    assert first.frames == round(1.3 * 32000)
    assert np.isfinite(first.samples).all()
    np.testing.assert_array_equal(first.samples, again.samples)
    assert not np.array_equal(first.samples, other.samples)


def test_progress_reports_every_token_with_eta(engine: MusicGenEngine) -> None:
    seen = []
    engine.generate(TrackRequest("jazz", duration_s=1.0, seed=1), on_progress=seen.append)
    total = 50 + 4 - 1
    assert [p.done for p in seen] == list(range(1, total + 1))
    assert {p.total for p in seen} == {total} and {p.unit for p in seen} == {"token"}
    assert seen[-1].eta_s == 0 and all(p.rate and p.rate > 0 for p in seen)


def test_cancellation_stops_within_one_step(engine: MusicGenEngine) -> None:
    cancel = CancelToken()
    seen = []

    def on_progress(p) -> None:
        seen.append(p.done)
        if p.done == 5:
            cancel.cancel()

    with pytest.raises(Cancelled):
        engine.generate(TrackRequest("ambient", duration_s=2.0, seed=1), on_progress, cancel)
    assert seen[-1] == 5


def test_fp16_export_runs_and_stays_close(fp16_engine: MusicGenEngine) -> None:
    ref = reference()
    assert fp16_engine.dtype == "float16"
    decoder = fp16_engine._decoder
    ids = ref["step_input_ids"]
    first = decoder.start(ids[:, :1], ref["encoder_hidden_states"], ref["encoder_attention_mask"])
    assert first.dtype == np.float16
    assert np.abs(first.astype(np.float32) - ref["step_logits"][0]).max() < 2e-2
    audio = fp16_engine.generate(TrackRequest("piano", duration_s=1.0, seed=2))
    assert audio.samples.dtype == np.float32 and np.isfinite(audio.samples).all()


def test_windowed_continuation_makes_long_tracks() -> None:
    engine = MusicGenEngine.load(require_fixture(), CPU)
    params = SamplingParams(top_k=20, temperature=1.0, guidance=3.0)
    seen = []
    codes = engine.generate_codes(
        "drums", 100, params, seed=5, window_frames=40, stride_frames=24, on_progress=seen.append
    )
    assert codes.shape == (4, 100)
    assert seen[-1].done == seen[-1].total == WindowPlan(100, 40, 24).total_steps(4)
    # The first window is exactly what a single-window generation with the same seed gives.
    single = engine.generate_codes("drums", 40, params, seed=5)
    np.testing.assert_array_equal(codes[:, :40], single)
    assert (codes >= 0).all() and (codes < 2048).all()


def test_window_plan_covers_the_track_once() -> None:
    plan = WindowPlan(frames=3000, window=1500, stride=900)
    windows = plan.windows()
    assert windows[0] == (0, 1500)
    assert all(p == 600 for p, _ in windows[1:])
    assert sum(n for _, n in windows) == 3000


def test_delay_pattern_matches_transformers_semantics() -> None:
    grid = DelayPattern(frames=3, num_codebooks=4, pad=2048)
    # transformers' build_delay_pattern_mask for 4 codebooks, max_length 7 (-1 = generated).
    want = np.array(
        [
            [2048, -1, -1, -1, 2048, 2048, 2048],
            [2048, 2048, -1, -1, -1, 2048, 2048],
            [2048, 2048, 2048, -1, -1, -1, 2048],
            [2048, 2048, 2048, 2048, -1, -1, -1],
        ]
    )
    np.testing.assert_array_equal(grid.forced, want)
    assert grid.prefill == 1 and grid.steps == 6
    for pos in range(1, 7):
        grid.put(pos, np.full(4, pos * 10))
    np.testing.assert_array_equal(
        grid.codes(), [[10, 20, 30], [20, 30, 40], [30, 40, 50], [40, 50, 60]]
    )


def test_delay_pattern_forces_prompt_codes() -> None:
    prompt = np.arange(8).reshape(4, 2)
    grid = DelayPattern(frames=5, num_codebooks=4, pad=2048, prompt=prompt)
    assert grid.prefill == 3
    for pos in range(grid.prefill, grid.length):
        grid.put(pos, np.full(4, 999))
    np.testing.assert_array_equal(grid.codes()[:, :2], prompt)
    assert (grid.codes()[:, 2:] == 999).all()


def test_sampling_is_top_k_and_seeded() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 2048)).astype(np.float32)
    params = SamplingParams(top_k=5, temperature=1.0, guidance=3.0)
    guided = logits[4:] + 3.0 * (logits[:4] - logits[4:])
    allowed = np.argsort(guided, axis=1)[:, -5:]
    draws = np.stack([sample_tokens(logits, params, np.random.default_rng(s)) for s in range(200)])
    for row in range(4):
        assert set(draws[:, row]) <= set(allowed[row])
        assert len(set(draws[:, row])) > 1
    again = sample_tokens(logits, params, np.random.default_rng(3))
    np.testing.assert_array_equal(again, draws[3])
    greedy = sample_tokens(logits, GREEDY, np.random.default_rng(0))
    np.testing.assert_array_equal(greedy, guided.argmax(axis=1))


def test_sampling_follows_the_softmax() -> None:
    logits = np.log(np.array([[0.5, 0.3, 0.2, 1e-9]], dtype=np.float32))
    params = SamplingParams(top_k=3, temperature=1.0, guidance=1.0)
    rng = np.random.default_rng(1)
    draws = np.array([sample_tokens(logits, params, rng)[0] for _ in range(4000)])
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq[:3], [0.5, 0.3, 0.2], atol=0.03)
    assert freq[3] == 0


@pytest.mark.parametrize(
    ("duration", "params"),
    [
        (0.0, {}),
        (-1.0, {}),
        (601.0, {}),
        (float("nan"), {}),
        (1.0, {"top_k": 0}),
        (1.0, {"top_k": 5000}),
        (1.0, {"temperature": 0}),
        (1.0, {"guidance": 0.5}),
    ],
)
def test_bad_requests_are_refused(engine: MusicGenEngine, duration: float, params: dict) -> None:
    with pytest.raises(UsageError):
        engine.generate(TrackRequest("x", duration_s=duration, seed=0, params=params))


def test_empty_prompt_is_refused(engine: MusicGenEngine) -> None:
    with pytest.raises(UsageError, match="prompt"):
        engine.generate(TrackRequest("   ", duration_s=1.0, seed=0))


# -- layouts and broken model directories ----------------------------------------------------


def test_gabotechs_layout(tmp_path: Path) -> None:
    root = gabotechs_layout(tmp_path / "music_gen")
    want = reference()["greedy_codes"][0]
    for engine in (
        MusicGenEngine.load(root / "tiny_fp32", CPU),
        MusicGenEngine.load(root, CPU, variant="tiny_fp32"),
    ):
        assert engine.decoder_kind == "split"
        codes = engine.generate_codes(str(reference()["prompt"][0]), want.shape[1], GREEDY, seed=0)
        np.testing.assert_array_equal(codes, want)
    assert MusicGenEngine.load(root / "tiny_fp16", CPU).dtype == "float16"
    assert MusicGenEngine.load(root, CPU, variant="tiny_fp16").dtype == "float16"


def test_xenova_layout(tmp_path: Path) -> None:
    root = xenova_layout(tmp_path / "musicgen-small")
    engine = MusicGenEngine.load(root, CPU)
    assert engine.decoder_kind == "merged" and engine.dtype == "float32"
    want = reference()["greedy_codes"][0]
    codes = engine.generate_codes(str(reference()["prompt"][0]), want.shape[1], GREEDY, seed=0)
    np.testing.assert_array_equal(codes, want)
    assert MusicGenEngine.load(root, CPU, variant="fp16").dtype == "float16"


@pytest.mark.parametrize("name", ["text_encoder.onnx", "encodec_decode.onnx", "tokenizer.json"])
def test_missing_file_is_named(tmp_path: Path, name: str) -> None:
    root = flat_copy(tmp_path / "m")
    (root / name).unlink()
    with pytest.raises(ModelError, match=name.replace(".", r"\.")):
        MusicGenEngine.load(root, CPU)


def test_missing_decoder_is_named(tmp_path: Path) -> None:
    root = flat_copy(tmp_path / "m")
    for name in ("decoder_model_merged.onnx", "decoder_with_past_model.onnx"):
        (root / name).unlink()
    with pytest.raises(ModelError, match="decoder_with_past_model"):
        MusicGenEngine.load(root, CPU)


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    root = flat_copy(tmp_path / "m")
    path = root / "decoder_with_past_model.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(ModelError, match=r"decoder_with_past_model\.onnx"):
        MusicGenEngine.load(root, CPU, decoder="split")


def test_wrong_io_names_are_named(tmp_path: Path) -> None:
    root = flat_copy(tmp_path / "m")
    (root / "text_encoder.onnx").write_bytes((root / "encodec_decode.onnx").read_bytes())
    with pytest.raises(ModelError, match=r"text_encoder\.onnx.*input_ids"):
        MusicGenEngine.load(root, CPU)


def test_bad_config_is_named(tmp_path: Path) -> None:
    root = flat_copy(tmp_path / "m")
    (root / "config.json").write_text('{"decoder": {}}')
    with pytest.raises(ModelError, match=r"config\.json"):
        MusicGenEngine.load(root, CPU)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        MusicGenEngine.load(tmp_path / "nope", CPU)


def test_long_tracks_decode_in_overlapping_chunks_like_one_piece(engine: MusicGenEngine) -> None:
    """The incremental EnCodec decoder in 10 s chunks ≈ one 24 s decode."""
    codes = np.random.default_rng(0).integers(0, 2048, size=(4, 1200))
    whole = engine.decode_codes(codes, chunk_frames=1500)
    chunked = engine.decode_codes(codes, chunk_frames=500)
    assert chunked.shape == whole.shape == (1200 * 640,)
    np.testing.assert_allclose(chunked, whole, atol=1e-3)
