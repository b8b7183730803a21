"""Streaming generation: engines yield audio chunks that join into the one-piece result.

Stated tolerance for MusicGen's incremental EnCodec decode: the joined stream is within
``SEAM_ATOL`` = 1e-5 of a one-piece decode of the same codes (measured on the tiny fixture,
whose EnCodec codebooks are random, see tests/fixtures/make_musicgen.py: 2.4e-7 max abs on a
signal of RMS 0.84, i.e. float rounding). ACE-Step's tiles are held to the tiled-decode bound
of test_acestep (1e-5).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from musicgen_fixture import flat_copy, require_fixture

from lofitui.audio.types import Audio
from lofitui.engines.acestep import TILE_FRAMES, AceStepEngine
from lofitui.engines.base import CancelToken, TrackRequest
from lofitui.engines.encodec_stream import (
    FIRST_CHUNK_FRAMES,
    RIGHT_CONTEXT_FRAMES,
    EncodecStream,
    decode_in_chunks,
)
from lofitui.engines.musicgen import MusicGenEngine, SamplingParams
from lofitui.engines.musicgen_prime import PRIME_PARAM, codes_from_text, codes_to_text
from lofitui.engines.runtime import RuntimeOptions
from lofitui.errors import Cancelled, UsageError
from lofitui.models.optimize import optimize_musicgen

SEAM_ATOL = 1e-5
CPU = RuntimeOptions(device="cpu", threads=1)
RATE = 32000
HOP = 640
K = 4
# The first chunk needs FIRST_CHUNK_FRAMES + RIGHT_CONTEXT_FRAMES complete frames: K - 1 steps
# more (20 + 3 = 23 steps, against 61 for a whole second).
FIRST_CHUNK_STEPS = FIRST_CHUNK_FRAMES + RIGHT_CONTEXT_FRAMES + K - 1
# Chunk lengths in samples: 0.3 s, then each as long as all before it, up to 1 s.
RAMP = [FIRST_CHUNK_FRAMES * HOP, FIRST_CHUNK_FRAMES * HOP, 2 * FIRST_CHUNK_FRAMES * HOP]
GREEDY = {"top_k": 1}


@pytest.fixture(scope="module")
def engine() -> MusicGenEngine:
    return MusicGenEngine.load(require_fixture(), CPU, decoder="split")


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> MusicGenEngine:
    root = flat_copy(tmp_path_factory.mktemp("stream") / "tiny")
    optimize_musicgen(root, "fp32")
    return MusicGenEngine.load(root, CPU, decoder="fast", fast_quant="fp32")


def _collect(stream, progress: list[int]) -> tuple[list[np.ndarray], list[int]]:
    """The chunks of a stream and the progress count seen when each arrived."""
    chunks, seen_at = [], []
    for chunk in stream:
        assert isinstance(chunk, Audio) and chunk.sample_rate == RATE and chunk.channels == 1
        chunks.append(chunk.samples[:, 0])
        seen_at.append(progress[-1])
    return chunks, seen_at


def _assert_seamless(chunks: list[np.ndarray], whole: np.ndarray) -> None:
    joined = np.concatenate(chunks)
    assert joined.shape == whole.shape
    np.testing.assert_allclose(joined, whole, atol=SEAM_ATOL, rtol=0)
    # No seam: the sample-to-sample step at each join is the one-piece decode's step there,
    # and not an outlier among the track's steps.
    joins = np.cumsum([len(c) for c in chunks])[:-1]
    steps, want = np.diff(joined), np.diff(whole)
    np.testing.assert_allclose(steps[joins - 1], want[joins - 1], atol=2 * SEAM_ATOL)
    assert np.abs(steps[joins - 1]).max() <= np.quantile(np.abs(want), 0.999)


def test_fixture_encodec_codebooks_are_random(engine: MusicGenEngine) -> None:
    """transformers initialises codebooks to zeros (every code alike); the fixture's differ."""
    text = (Path(__file__).parent / "fixtures" / "make_musicgen.py").read_text()
    assert "codebook.embed.copy_(torch.randn_like(codebook.embed))" in text
    codes = np.random.default_rng(1).integers(0, 2048, size=(K, 20))
    other = codes.copy()
    other[0] = (other[0] + 1) % 2048
    a, b = engine.decode_codes(codes), engine.decode_codes(other)
    assert np.abs(a - b).max() > 1e-2


@pytest.mark.parametrize(
    ("chunk", "first", "sizes"),
    [
        (7, 15, [7] * 46),  # a first chunk longer than the steady one is cut to it
        (50, 15, [15, 15, 30, 50, 50, 50, 50, 50]),
        (120, 15, [15, 15, 30, 60, 120]),
        (50, 1, [1, 1, 2, 4, 8, 16, 32, 50, 50, 50, 50, 50]),  # one frame: the shortest seams
        (50, 50, [50] * 6),  # no ramp: the former 1 s chunks
    ],
)
def test_incremental_encodec_equals_one_piece(
    engine: MusicGenEngine, chunk: int, first: int, sizes: list[int]
) -> None:
    codes = np.random.default_rng(chunk + first).integers(0, 2048, size=(K, 333))
    whole = engine.decode_codes(codes)
    stream = EncodecStream(engine._encodec_run, HOP, chunk=chunk, first=first)
    chunks = []
    for start in range(0, codes.shape[1], 13):  # frames arrive in uneven blocks
        chunks += stream.push(codes[:, start : start + 13])
    assert [len(c) // HOP for c in chunks] == sizes
    chunks.append(stream.finish())
    _assert_seamless(chunks, whole)
    np.testing.assert_array_equal(
        decode_in_chunks(engine._encodec_run, codes, HOP, chunk, first), np.concatenate(chunks)
    )


def test_encodec_right_reach_is_within_the_right_context(engine: MusicGenEngine) -> None:
    """Cutting the codes changes only the samples of the last 4 frames (the convolutions'
    reach, the same for every MusicGen size): RIGHT_CONTEXT_FRAMES covers it with one spare."""
    codes = np.random.default_rng(4).integers(0, 2048, size=(K, 120))
    whole = engine.decode_codes(codes)
    for cut in (40, 77, 100):
        part = engine.decode_codes(codes[:, :cut])
        changed = np.nonzero(np.abs(part - whole[: len(part)]) > SEAM_ATOL)[0]
        reach = cut - changed[0] // HOP
        assert reach == 4 < RIGHT_CONTEXT_FRAMES


def test_stream_yields_growing_chunks_that_join_into_generate(engine: MusicGenEngine) -> None:
    request = TrackRequest("lofi beat", duration_s=5.3, seed=3)
    progress: list[int] = [0]
    stream = engine.stream(request, on_progress=lambda p: progress.append(p.done))
    chunks, seen_at = _collect(stream, progress)
    total = progress[-1]
    assert [len(c) for c in chunks] == [*RAMP, RATE, RATE, RATE, RATE, round(0.1 * RATE)]
    # The first chunk arrives after 23 of 268 steps, each next one as soon as its frames are.
    assert seen_at[0] == FIRST_CHUNK_STEPS < total == 265 + K - 1
    ends = np.cumsum([len(c) // HOP for c in chunks[:-1]])
    assert seen_at[:-1] == [end + RIGHT_CONTEXT_FRAMES + K - 1 for end in ends]
    assert stream.codes is not None and stream.codes.shape == (K, 265)
    _assert_seamless(chunks, engine.decode_codes(stream.codes))
    np.testing.assert_array_equal(np.concatenate(chunks), engine.generate(request).samples[:, 0])


def test_a_file_render_asks_for_longer_chunks_that_join_the_same(engine: MusicGenEngine) -> None:
    """``chunk_s`` (a file render's 5 s) keeps the ramp, then decodes longer chunks; joined,
    they are the same track within the seam tolerance."""
    request = TrackRequest("lofi beat", duration_s=5.3, seed=3)
    chunks = [c.samples[:, 0] for c in engine.stream(request, chunk_s=2.0)]
    assert [len(c) for c in chunks] == [*RAMP, round(1.2 * RATE), 2 * RATE, round(0.9 * RATE)]
    _assert_seamless(chunks, np.concatenate([c.samples[:, 0] for c in engine.stream(request)]))


def test_fast_path_streams_on_sessions_that_stay_loaded(fast: MusicGenEngine) -> None:
    sessions = (fast._text, fast._encodec, fast._decoder._cross)
    progress: list[int] = [0]
    stream = fast.stream(TrackRequest("piano", 2.5, seed=5), lambda p: progress.append(p.done))
    chunks, seen_at = _collect(stream, progress)
    assert [len(c) for c in chunks] == [*RAMP, RATE, FIRST_CHUNK_FRAMES * HOP]
    assert seen_at[0] == FIRST_CHUNK_STEPS
    _assert_seamless(chunks, fast.decode_codes(stream.codes))
    # The same sessions serve every track; only the track's decoder cache is given back.
    assert (fast._text, fast._encodec, fast._decoder._cross) == sessions
    assert fast._decoder._binding is None and fast._decoder._buffers == []


def test_cancel_mid_stream_raises_and_yields_nothing_more(fast: MusicGenEngine) -> None:
    cancel = CancelToken()
    stream = fast.stream(TrackRequest("jazz", 4.0, seed=1), cancel=cancel)
    first = next(stream)
    assert first.frames == FIRST_CHUNK_FRAMES * HOP
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(stream)
    with pytest.raises(StopIteration):
        next(stream)
    # Nothing of the cancelled track stays: the next one is what a fresh stream makes.
    assert fast._decoder._binding is None and fast._decoder._buffers == []
    again = np.concatenate([c.samples for c in fast.stream(TrackRequest("jazz", 1.0, seed=1))])
    np.testing.assert_array_equal(again, fast.generate(TrackRequest("jazz", 1.0, seed=1)).samples)


def test_closing_a_stream_early_frees_the_decoder(fast: MusicGenEngine) -> None:
    stream = fast.stream(TrackRequest("rain", 3.0, seed=2))
    next(stream)
    stream.close()
    assert fast._decoder._binding is None and fast._decoder._buffers == []
    assert stream.codes is None


def test_windowed_continuation_streams_across_window_boundaries(engine: MusicGenEngine) -> None:
    # 4 s in windows of 100 frames advancing by 60: (0, 100), (40, 60), (40, 40).
    request = TrackRequest("drums", duration_s=4.0, seed=5, params={"top_k": 20})
    progress: list[int] = [0]
    stream = engine.stream(
        request, lambda p: progress.append(p.done), window_frames=100, stride_frames=60
    )
    chunks, seen_at = _collect(stream, progress)
    first_window_steps = 100 + K - 1
    assert [len(c) for c in chunks] == [*RAMP, RATE, RATE, round(0.8 * RATE)]
    # The 4th chunk (frames 60..110) needs frames of the second window.
    assert seen_at[2] < first_window_steps < seen_at[3] < seen_at[4] < progress[-1]
    params = SamplingParams(top_k=20, temperature=1.0, guidance=3.0)
    codes = engine.generate_codes("drums", 200, params, seed=5, window_frames=100, stride_frames=60)
    np.testing.assert_array_equal(stream.codes, codes)
    _assert_seamless(chunks, engine.decode_codes(codes))


def test_a_primed_track_continues_the_previous_tracks_last_codes(engine: MusicGenEngine) -> None:
    first = engine.stream(TrackRequest("piano", 2.0, seed=1, params=GREEDY))
    first_audio = np.concatenate([c.samples[:, 0] for c in first])
    assert first.codes is not None and first.codes.shape == (K, 100)
    tail = first.codes[:, -40:]
    primed = TrackRequest("piano", 1.2, seed=9, params={**GREEDY, PRIME_PARAM: codes_to_text(tail)})
    assert primed.key != TrackRequest("piano", 1.2, seed=9, params=GREEDY).key
    second = engine.stream(primed)
    second_audio = np.concatenate([c.samples[:, 0] for c in second])
    assert second_audio.shape == (round(1.2 * RATE),)
    # The second track is what a long track's next window makes from the first one's last 40
    # frames (greedy, so the seed plays no part).
    greedy = SamplingParams(top_k=1, temperature=1.0, guidance=3.0)
    whole = engine.generate_codes("piano", 160, greedy, seed=0, window_frames=100, stride_frames=60)
    np.testing.assert_array_equal(first.codes, whole[:, :100])
    np.testing.assert_array_equal(second.codes, whole[:, 100:])
    # Its audio is decoded with the prime as left context: it continues the decode of the
    # joined codes, not a fresh start.
    joined = engine.decode_codes(whole)
    np.testing.assert_allclose(second_audio, joined[100 * HOP :], atol=SEAM_ATOL, rtol=0)
    assert np.abs(first_audio[: 90 * HOP] - joined[: 90 * HOP]).max() < SEAM_ATOL
    # Flow mode's hand-over: the next prime is the last 12 s of prime + track (here all of it).
    first_request = TrackRequest("piano", 2.0, 1, params=GREEDY)
    after_first = engine.continuation_params(first_request, first.codes)
    np.testing.assert_array_equal(codes_from_text(after_first[PRIME_PARAM], K, 2048), first.codes)
    after_second = engine.continuation_params(primed, second.codes)
    np.testing.assert_array_equal(
        codes_from_text(after_second[PRIME_PARAM], K, 2048), whole[:, 60:]
    )
    long = np.random.default_rng(0).integers(0, 2048, size=(K, 700))
    kept = engine.continuation_params(primed, long)[PRIME_PARAM]
    np.testing.assert_array_equal(codes_from_text(kept, K, 2048), long[:, -600:])


def test_prime_codes_round_trip_and_bad_text_is_refused(engine: MusicGenEngine) -> None:
    codes = np.random.default_rng(0).integers(0, 2048, size=(K, 600))
    text = codes_to_text(codes)
    assert len(text) == math.ceil(600 * K * 2 / 3) * 4
    np.testing.assert_array_equal(codes_from_text(text, K, 2048), codes)
    too_big = codes_to_text(np.full((K, 1), 4000))
    cases = (("not base64!", "base64"), ("AAAA", "whole frames"), (too_big, "codes >= 2048"))
    for bad, match in cases:
        request = TrackRequest("x", 1.0, seed=0, params={PRIME_PARAM: bad})
        with pytest.raises(UsageError, match=match):
            engine.validate(request)


# -- ACE-Step --------------------------------------------------------------------------------

ACESTEP = Path(__file__).parent / "fixtures" / "acestep-tiny" / "turbo"


@pytest.fixture(scope="module")
def turbo() -> AceStepEngine:
    return AceStepEngine.load(ACESTEP, CPU)


def _ace_request(duration: float, seed: int = 1) -> TrackRequest:
    return TrackRequest("lofi piano", duration, seed, engine="ace-step", params={"steps": 2})


def test_acestep_streams_one_chunk_per_vae_tile(turbo: AceStepEngine) -> None:
    request = _ace_request(12.0)
    chunks = list(turbo.stream(request))
    latents = math.ceil(12.0 * turbo.latent_rate)  # 300 frames: tiles of 128, 128, 44
    sizes = [TILE_FRAMES, TILE_FRAMES, latents - 2 * TILE_FRAMES]
    assert [c.frames for c in chunks] == [n * turbo.hop_length for n in sizes]
    assert all(c.channels == 2 and c.sample_rate == turbo.sample_rate for c in chunks)
    joined = np.concatenate([c.samples for c in chunks])
    np.testing.assert_array_equal(joined, turbo.generate(request).samples)
    settings = turbo.validate(request)
    one_piece = turbo.render(settings, tile_frames=None).samples
    np.testing.assert_allclose(joined, one_piece, atol=1e-5, rtol=0)
    joins = np.cumsum([c.frames for c in chunks])[:-1]
    steps, want = np.diff(joined, axis=0), np.diff(one_piece, axis=0)
    np.testing.assert_allclose(steps[joins - 1], want[joins - 1], atol=2e-5)


def test_acestep_stream_cancels_between_tiles(turbo: AceStepEngine) -> None:
    cancel = CancelToken()
    stream = turbo.stream(_ace_request(12.0), cancel=cancel)
    next(stream)
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(stream)
    with pytest.raises(StopIteration):
        next(stream)
