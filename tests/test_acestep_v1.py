"""ACE-Step v1 on ONNX Runtime against the original ACE-Step pipeline (tiny random models).

tests/fixtures/acestep-v1-tiny holds a tiny random-weight model built with the original classes and
exported by lofi's exporter under the published file names, and reference.npz/.json: what the
original ``text2music_diffusion_process`` computed from the same noise (ERG off), for Euler,
Heun and PingPong with APG and the guidance interval, and one plain-cfg run
(tests/fixtures/make_acestep_v1.py; keys in that directory's README.md). Tolerances are below.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_helpers import ensure_model_asking, one_error_line, run_lofi
from hubserver import FakeHub
from session_spy import CountingSession

from lofitui.audio.types import Audio
from lofitui.audio.wav import read_wav
from lofitui.engines.acestep_text import tokenize
from lofitui.engines.acestep_v1 import AceStepV1Engine, AceStepV1Settings, frame_count
from lofitui.engines.acestep_v1_decode import (
    DCAE_CONTEXT,
    VOCODER_CONTEXT,
    MelDecoder,
    window_cores,
)
from lofitui.engines.acestep_v1_graph import SIDE_FILE, Folding, graph_folding
from lofitui.engines.base import CancelToken, TrackRequest
from lofitui.engines.flow import flowmatch_schedule, model_timestep
from lofitui.engines.runtime import RuntimeOptions
from lofitui.errors import Cancelled, ModelError, UsageError
from lofitui.models import download, store
from lofitui.models.catalog import MANIFEST_NAME, get_entry

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "acestep-v1-tiny"
OPTIONS = RuntimeOptions(device="cpu", threads=1)
# The fixture stores the velocities and the mel in float16: those compare within its rounding
# (2**-11 relative) plus ATOL_*; everything else is float32. Measured (ORT CPU, 1 thread):
# encoder outputs 6e-7; velocities 9.6e-4 to 3.8e-3 abs at |v| <= 9.7 (= the float16 rounding);
# final latents 7e-6 to 1.3e-5; first DCAE window's mel 3.9e-3 at |mel| <= 10.7 (float16);
# 44.1 kHz wave over the first window's core 1.2e-7; vocoder tiles vs one pass 7.5e-8.
FP16 = 2**-11
ATOL_ENC = 1e-5
ATOL_VELOCITY = 2e-5
ATOL_LATENTS = 5e-5
ATOL_MEL = 1e-4
ATOL_WAVE = 1e-5
# lofi's overlapped DCAE windows vs the original's single pass (measured 4e-6 to 9e-5).
ATOL_SINGLE_PASS = 2e-4


@pytest.fixture(scope="module")
def reference():
    ref = dict(np.load(FIXTURE / "reference.npz"))
    meta = json.loads((FIXTURE / "reference.json").read_text())
    return ref, meta


@pytest.fixture(scope="module")
def engine():
    return AceStepV1Engine.load(FIXTURE, OPTIONS)


def _settings(meta, run: str) -> AceStepV1Settings:
    spec = meta["runs"][run]
    return AceStepV1Settings(
        prompt=meta["prompt"],
        duration_s=meta["duration_s"],
        seed=meta["seed"],
        steps=meta["steps"],
        scheduler=spec["scheduler"],
        guidance=meta["guidance_scale"],
        guidance_mode=spec["cfg_type"],
        omega=meta["omega_scale"],
        guidance_interval=meta["guidance_interval"],
        guidance_decay=spec["guidance_interval_decay"],
        min_guidance=meta["min_guidance_scale"],
    )


def _replay(draws: np.ndarray):
    """PingPong's step noise as the reference drew it from the seed's generator, in order."""
    queue = iter(draws.astype(np.float32))
    return lambda shape: next(queue).reshape(shape)


# -- parity with the original pipeline ----------------------------------------------------------


def test_text_side_matches_the_original(engine, reference):
    ref, meta = reference
    assert frame_count(meta["duration_s"]) == meta["frames"] == ref["noise"].shape[-1]
    tokens = tokenize(engine.tokenizer, meta["prompt"])
    np.testing.assert_array_equal(tokens.ids, ref["text_input_ids"])
    cond, uncond = engine.encode(meta["prompt"])
    np.testing.assert_allclose(
        cond.hidden_states, ref["encoder_hidden_states"], atol=ATOL_ENC, rtol=0
    )
    np.testing.assert_allclose(
        uncond.hidden_states, ref["encoder_hidden_states_uncond"], atol=ATOL_ENC, rtol=0
    )
    np.testing.assert_array_equal(cond.attention_mask, ref["encoder_hidden_mask"])
    np.testing.assert_array_equal(uncond.attention_mask, ref["encoder_hidden_mask"])  # the cond's


@pytest.mark.parametrize(
    "run", ["euler", "heun", "pingpong", "euler_cfg", "euler_cfg_star", "euler_decay"]
)
def test_whole_pipeline_matches_the_original(engine, reference, run):
    ref, meta = reference
    settings = _settings(meta, run)
    sigmas = flowmatch_schedule(settings.steps)
    if settings.scheduler == "heun":  # t0, then every later sigma twice
        sigmas = np.concatenate([sigmas[:1], np.repeat(sigmas[1:-1], 2)])
    else:
        sigmas = sigmas[:-1]
    np.testing.assert_array_equal([model_timestep(s) for s in sigmas], ref[f"{run}_timesteps"])

    seen: dict[int, tuple] = {}
    cond, uncond = engine.encode(settings.prompt)
    step_noise = _replay(ref[f"{run}_step_noise"]) if settings.scheduler == "pingpong" else None
    latents = engine.denoise(
        ref["noise"],
        cond,
        uncond,
        settings,
        step_noise,
        on_evaluation=lambda i, sigma, c, u, v: seen.setdefault(i, (c, u, v)),
    )
    guided = [i for i, (_, u, _) in seen.items() if u is not None]
    np.testing.assert_array_equal(guided, ref[f"{run}_guided_steps"])
    assert len(seen) == len(ref[f"{run}_timesteps"])
    cond_v = np.concatenate([c for c, _, _ in seen.values()])
    np.testing.assert_allclose(cond_v, ref[f"{run}_cond"], atol=ATOL_VELOCITY, rtol=FP16)
    used = np.concatenate([seen[i][2] for i in guided])
    np.testing.assert_allclose(used, ref[f"{run}_guided"], atol=ATOL_VELOCITY, rtol=FP16)
    np.testing.assert_allclose(latents, ref[f"{run}_latents"], atol=ATOL_LATENTS)

    # The reference decodes butt-joined 128-frame windows; lofi's first window is the same
    # 128 frames, so its core and the audio vocoded from it match exactly. Beyond it lofi's
    # overlapped windows give other (seamless) audio: the difference is the seam they remove.
    wave = np.concatenate(list(engine.decoder.audio(latents, lambda: None)), axis=-1)
    hop = meta["samples_per_mel_frame"]
    assert wave.shape == ref[f"{run}_wave"].shape == (2, meta["frames"] * 8 * hop)
    first = (window_cores(meta["frames"], 128, DCAE_CONTEXT)[0][2] * 8 - 2 * VOCODER_CONTEXT) * hop
    np.testing.assert_allclose(wave[:, :first], ref[f"{run}_wave"][:, :first], atol=ATOL_WAVE)


def test_overlapped_windows_match_the_originals_single_pass(engine, reference):
    """The published DCAE takes 128 frames; the original decodes the whole latent at once. lofi's
    overlapped windows keep each window's core, so the whole track stays within float rounding
    of the single pass, where butt-joined windows (lofi.nvim's, the fixture's tiled reference)
    leave seams 20x larger."""
    ref, meta = reference
    latents = ref["euler_latents"]
    assert len(window_cores(meta["frames"], 128, DCAE_CONTEXT)) > 1  # the windows are tested
    wave = np.concatenate(list(engine.decoder.audio(latents, lambda: None)), axis=-1)
    single = ref["euler_wave_single"]
    ours = float(np.abs(wave - single).max())
    butt_joined = float(np.abs(ref["euler_wave"] - single).max())
    assert ours < ATOL_SINGLE_PASS < butt_joined / 10, (ours, butt_joined)


def test_first_dcae_window_matches_the_original(engine, reference):
    ref, meta = reference
    mels = list(engine.decoder.mels(ref["euler_latents"], lambda: None))
    core = mels[0].shape[-1]
    assert core == window_cores(meta["frames"], 128, DCAE_CONTEXT)[0][2] * 8
    assert sum(m.shape[-1] for m in mels) == meta["frames"] * 8 and mels[0].shape[:2] == (2, 128)
    want = ref["euler_mel"][0, ..., :core].astype(np.float32)  # stored in float16
    np.testing.assert_allclose(mels[0], want, atol=ATOL_MEL, rtol=FP16)


def test_vocoder_tiles_join_into_the_single_pass(engine, reference):
    ref, _ = reference
    mel = ref["vocoder_mel"]  # [2 channels, 128, 64]
    tiles = [engine.decoder._vocode(mel, a, b) for a, b in ((0, 10), (10, 41), (41, 64))]
    np.testing.assert_allclose(
        np.concatenate(tiles, axis=-1), ref["vocoder_wave"][:, 0], atol=ATOL_WAVE, rtol=0
    )


def _short(**params) -> TrackRequest:
    """A two-window track (F = 215 latent frames) in a few steps."""
    params = {"steps": 3, **params}
    return TrackRequest("lofi piano", 20.0, 5, engine="ace-step-v1", model="tiny", params=params)


# -- streaming, cancellation, bad input ----------------------------------------------------------


def test_stream_is_48k_stereo_and_joins_to_generate_exactly(engine):
    request = _short(scheduler="pingpong")
    chunks = list(engine.stream(request))
    whole = engine.generate(request)
    assert len(chunks) >= 3  # one per DCAE window, then the resampler's tail
    assert all(c.sample_rate == 48_000 and c.channels == 2 for c in chunks)
    np.testing.assert_array_equal(Audio.join(chunks).samples, whole.samples)
    assert whole.frames == 20 * 48_000
    assert np.abs(whole.samples).max() > 0.01
    assert not np.array_equal(whole.samples[:, 0], whole.samples[:, 1])  # two mel channels


def test_stream_hands_out_each_window_as_it_is_decoded(engine, monkeypatch):
    dcae = CountingSession(engine.decoder.dcae)
    monkeypatch.setattr(engine.decoder, "dcae", dcae)
    # 256 frames, the tiny model's longest (its rotary table): three DCAE windows.
    request = TrackRequest("lofi piano", 23.8, 5, engine="ace-step-v1", params={"steps": 2})
    stream = engine.stream(request)
    first = next(stream)
    windows = len(window_cores(frame_count(23.8), 128, DCAE_CONTEXT))
    # The first window's core, vocoded once the next window's mel gives it its right context.
    assert dcae.runs == 2 < windows and first.frames > 0
    rest = list(stream)
    assert dcae.runs == windows and len(rest) >= windows - 1


def test_seed_decides_the_noise_and_pingpong_draws(engine):
    a = engine.generate(_short(scheduler="pingpong"))
    b = engine.generate(_short(scheduler="pingpong"))
    other = TrackRequest(
        "lofi piano", 20.0, 6, engine="ace-step-v1", params={"steps": 3, "scheduler": "pingpong"}
    )
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.allclose(a.samples, engine.generate(other).samples)


def test_progress_counts_evaluations_and_cancel_leaves_nothing_behind(engine):
    seen = []
    engine.generate(_short(scheduler="heun"), seen.append)
    assert [p.done for p in seen] == list(range(1, 6)) and seen[-1].total == 5  # 2N - 1
    before = engine.generate(_short())
    cancel = CancelToken()

    def on_progress(progress):
        if progress.done == 2:
            cancel.cancel()

    with pytest.raises(Cancelled):
        list(engine.stream(_short(), on_progress, cancel))
    np.testing.assert_array_equal(engine.generate(_short()).samples, before.samples)


def test_cancel_while_decoding_windows_leaves_no_audio(engine):
    cancel = CancelToken()
    settings = AceStepV1Settings.from_request(_short())
    noise = np.random.default_rng(0).standard_normal((1, 8, 16, 215)).astype(np.float32)
    native = engine.render_native(settings, noise, lambda shape: None, cancel=cancel)
    assert next(native).shape[0] == 2  # the first window is vocoded before the second decodes
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(native)
    with pytest.raises(Cancelled):  # stream hands out nothing of a track cancelled mid-decode
        list(engine.stream(_short(), cancel=cancel))


@pytest.mark.parametrize(
    ("params", "duration", "message"),
    [
        ({}, 3.0, "between 5 and 240 seconds for ace-step-v1"),
        ({}, 241.0, "between 5 and 240 seconds for ace-step-v1"),
        ({"steps": 0}, 30.0, "steps must be between 1 and 200"),
        ({"scheduler": "ddim"}, 30.0, "scheduler must be one of euler, heun, pingpong"),
        ({"guidance_mode": "erg"}, 30.0, "guidance-mode must be one of apg, cfg, cfg_star"),
        ({"guidance_interval": 1.5}, 30.0, "guidance-interval must be between 0 and 1"),
        ({"bpm": 90}, 30.0, "ace-step-v1 does not take bpm"),
    ],
)
def test_bad_requests_are_one_line_before_any_work(params, duration, message):
    request = TrackRequest("x", duration, 0, engine="ace-step-v1", params=params)
    with pytest.raises(UsageError, match=message) as err:
        AceStepV1Engine.check(request)
    assert "\n" not in str(err.value)


def test_lyrics_need_a_lyric_vocabulary(engine):
    with pytest.raises(UsageError, match="no lyric vocabulary") as err:
        engine.generate(_short(lyrics="la la la"))
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="prompt is empty"):
        AceStepV1Engine.check(TrackRequest("  ", 30.0, 0, engine="ace-step-v1"))


def test_defaults_are_the_original_pipelines(engine):
    assert engine.defaults() == {
        "steps": 60,
        "scheduler": "euler",
        "guidance": 15.0,
        "guidance_mode": "apg",
        "omega": 10.0,
        "guidance_interval": 0.5,
        "guidance_decay": 0.0,
        "min_guidance": 3.0,
    }
    settings = AceStepV1Settings.from_request(TrackRequest("x", 30.0, 0, engine="ace-step-v1"))
    assert (settings.steps, settings.guidance, settings.lyrics) == (60, 15.0, "")
    assert frame_count(30.0) == 322  # floor, as the original (lofi.nvim's ceil gives 323)
    assert engine.describe()["dcae"] == "128-frame windows"


# -- DCAE windows and what the graph folds ----------------------------------------------------


@pytest.mark.parametrize("length", [1, 53, 128, 129, 215, 322, 2583])
def test_windows_cover_the_track_once_and_stay_inside_it(length):
    cores = window_cores(length, 128, 16)
    assert cores[0][1] == 0 and cores[-1][2] == length
    for (start, core_start, core_end), nxt in zip(cores, [*cores[1:], None], strict=True):
        assert 0 <= start <= core_start < core_end <= start + 128
        assert start + 128 <= max(length, 128)
        if nxt is not None:
            assert nxt[1] == core_end  # no gap, no overlap
            assert core_end <= start + 128 - 16  # an inner edge keeps 16 frames of context
            assert nxt[1] - nxt[0] >= 16


def _strip_scaling(source: Path, dest: Path) -> None:
    """``source``'s DCAE graph without its leading and trailing scalar affine ops."""
    model = onnx.load(str(source))
    graph = model.graph
    consts = {t.name for t in graph.initializer} | {
        n.output[0] for n in graph.node if n.op_type == "Constant"
    }

    def affine(node) -> bool:
        return node.op_type in ("Mul", "Div", "Add", "Sub") and (
            sum(i in consts for i in node.input) == 1
        )

    drop = []
    name = graph.input[0].name
    while True:
        users = [n for n in graph.node if name in n.input]
        if len(users) != 1 or not affine(users[0]):
            break
        drop.append(users[0])
        name = users[0].output[0]
    for node in graph.node:  # the first real op reads the raw input
        node.input[:] = [graph.input[0].name if i == name else i for i in node.input]
    out = graph.output[0].name
    name = out
    while True:
        producer = next((n for n in graph.node if name in n.output), None)
        if producer is None or not affine(producer) or producer in drop:
            break
        drop.append(producer)
        name = next(i for i in producer.input if i not in consts)
    for node in graph.node:
        node.output[:] = [out if o == name else o for o in node.output]
    for node in drop:
        graph.node.remove(node)
    onnx.save(model, str(dest))


def test_folding_is_read_from_the_side_file_or_the_graph(engine, tmp_path):
    assert engine.decoder.folding.source == f"from {SIDE_FILE}"  # lofi's export has one
    folded = graph_folding(FIXTURE / "dcae_decoder.onnx")
    assert folded.latents and folded.mel
    for name in FIXTURE.iterdir():
        if name.name != SIDE_FILE:
            shutil.copy(name, tmp_path / name.name)
    _strip_scaling(FIXTURE / "dcae_decoder.onnx", tmp_path / "dcae_decoder.onnx")
    bare = graph_folding(tmp_path / "dcae_decoder.onnx")
    assert not bare.latents and not bare.mel
    raw = AceStepV1Engine.load(tmp_path, OPTIONS)
    assert raw.decoder.folding == bare  # no side file: the graph decides; the host applies both
    latents = np.random.default_rng(3).standard_normal((1, 8, 16, 150)).astype(np.float32)
    never = lambda: None  # noqa: E731
    want = np.concatenate(list(engine.decoder.mels(latents, never)), axis=-1)
    got = np.concatenate(list(raw.decoder.mels(latents, never)), axis=-1)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


# -- the command line and the catalog -----------------------------------------------------------


def test_render_writes_a_48k_stereo_file(tmp_path: Path, cli_env: dict) -> None:
    result = run_lofi(
        *("--render", "lofi piano", "--engine", "ace-step-v1", "--model", str(FIXTURE)),
        *("--duration", "6", "--seed", "7", "--steps", "2", "--scheduler", "heun"),
        *("--guidance-mode", "cfg_star", "--omega", "0", "--out", "out"),
        cwd=tmp_path,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr
    wav = tmp_path / "out" / "lofi-piano-7.wav"
    audio = read_wav(wav)
    assert (audio.sample_rate, audio.channels, audio.frames) == (48_000, 2, 6 * 48_000)
    meta = json.loads(wav.with_suffix(".json").read_text())
    assert meta["engine"] == "ace-step-v1" and meta["params"]["guidance_mode"] == "cfg_star"
    assert meta["params"]["steps"] == 2 and meta["params"]["omega"] == 0.0
    lyrics = run_lofi(
        *("--render", "x", "--engine", "ace-step-v1", "--model", str(FIXTURE), "--duration", "6"),
        *("--lyrics", "la la", "--out", "out"),
        cwd=tmp_path,
        env=cli_env,
    )
    assert "has no lyric vocabulary" in one_error_line(lyrics)


def test_published_set_downloads_verified_with_resume(fake_hub: FakeHub, monkeypatch) -> None:
    monkeypatch.setattr(download, "CHUNK_SIZE", 256)  # the tiny files stand in for GBs
    entry = get_entry("ace-step-v1")
    assert entry.engine == "ace-step-v1" and entry.revision == "main"
    assert 12.2e9 < entry.size < 12.4e9  # the reference's table: consent shows ~12.3 GB
    files = {f.remote: (FIXTURE / f.local).read_bytes() for f in entry.files}
    commit = "1" * 40
    fake_hub.add_repo(entry.repo, files, commit=commit)
    fake_hub.drop_after(entry.repo, "ace-step/dcae_decoder.onnx", 1000)
    directory = ensure_model_asking(
        "ace-step-v1", engine="ace-step-v1", assume_yes=True, offline=False, progress=lambda p: None
    )
    assert store.state_of(entry) is store.State.INSTALLED
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    assert manifest["revision"] == "main" and manifest["commit"] == commit
    for f in entry.files:
        assert (directory / f.local).read_bytes() == files[f.remote]
    sha = fake_hub.sha256(entry.repo, "ace-step/dcae_decoder.onnx")
    ranges = [r.headers.get("Range") for r in fake_hub.requests if r.path == f"/cdn/{sha}"]
    assert ranges[0] is None and ranges[1].startswith("bytes=")  # resumed, not restarted
    engine = AceStepV1Engine.load(directory, OPTIONS)
    assert engine.generate(_short(steps=1)).frames == 20 * 48_000


def test_an_incomplete_directory_is_one_line(tmp_path: Path) -> None:
    for name in FIXTURE.iterdir():
        if name.name != "transformer_decoder_weights.bin":
            shutil.copy(name, tmp_path / name.name)
    with pytest.raises(ModelError, match=r"lacks transformer_decoder_weights\.bin") as err:
        AceStepV1Engine.load(tmp_path, OPTIONS)
    assert "\n" not in str(err.value)


def _dynamic_dcae(path: Path) -> None:
    """A DCAE stand-in with a dynamic time axis: [1, 8, 16, F] -> [1, 2, 128, 8F] (nearest)."""
    from onnx import TensorProto, helper

    ints = lambda name, *v: helper.make_tensor(name, TensorProto.INT64, [len(v)], v)  # noqa: E731
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 8, 8])
    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["latents", "s0", "s1", "ax"], ["two"]),
            helper.make_node("Resize", ["two", "", "scales"], ["mel"], mode="nearest"),
        ],
        "dcae",
        [helper.make_tensor_value_info("latents", TensorProto.FLOAT, [1, 8, 16, "frames"])],
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, 2, 128, None])],
        [ints("s0", 0), ints("s1", 2), ints("ax", 1), scales],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def test_a_dynamic_axis_dcae_decodes_in_one_pass(engine, tmp_path):
    import onnxruntime as ort

    _dynamic_dcae(tmp_path / "dcae.onnx")
    dcae = ort.InferenceSession(str(tmp_path / "dcae.onnx"), providers=["CPUExecutionProvider"])
    decoder = MelDecoder(dcae, engine.decoder.vocoder, Folding(True, True, "test"))
    assert decoder.window is None
    latents = np.random.default_rng(1).standard_normal((1, 8, 16, 300)).astype(np.float32)
    (mel,) = decoder.mels(latents, lambda: None)  # one piece: the whole track at once
    np.testing.assert_array_equal(mel, np.repeat(np.repeat(latents[0, :2], 8, 1), 8, 2))
    wave = np.concatenate(list(decoder.audio(latents, lambda: None)), axis=-1)
    assert wave.shape == (2, 300 * 8 * 8)
