"""ACE-Step 1.5 on ONNX Runtime against diffusers' AceStepPipeline (tiny random models).

The fixtures in tests/fixtures/acestep-tiny/{turbo,base} were exported by lofi's own exporter from
tiny random-config pipelines; reference.npz holds what diffusers computed for fixed noise
(tests/fixtures/make_acestep.py). Tolerance: 2e-5 absolute on every tensor (measured: ~1e-6 on
the encoders, VAE and waveform; up to 1.9e-5 on APG-guided velocities, whose update is
amplified by guidance - 1 = 4).
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from session_spy import CountingSession

from lofitui.engines.acestep import AceStepEngine, AceStepSettings, read_config
from lofitui.engines.acestep_text import caption_text, lyric_text, metas
from lofitui.engines.base import CancelToken, Engine, TrackRequest
from lofitui.engines.flow import shifted_schedule
from lofitui.engines.runtime import RuntimeOptions
from lofitui.errors import Cancelled, ModelError, UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "acestep-tiny"
ATOL = 2e-5
OPTIONS = RuntimeOptions(device="cpu", threads=1)


@pytest.fixture(scope="module", params=["turbo", "base"])
def case(request):
    directory = FIXTURES / request.param
    ref = dict(np.load(directory / "reference.npz"))
    meta = json.loads((directory / "reference.json").read_text())
    engine = AceStepEngine.load(directory, OPTIONS)
    settings = AceStepSettings(
        prompt=meta["prompt"],
        duration_s=meta["duration_s"],
        lyrics=meta["lyrics"],
        bpm=meta["bpm"],
        keyscale=meta["keyscale"],
        timesignature=meta["timesignature"],
        steps=meta["steps"],
        shift=meta["shift"],
        guidance=meta["guidance"],
        cfg_interval=(meta.get("cfg_interval_start", 0.0), meta.get("cfg_interval_end", 1.0)),
    )
    return request.param, engine, settings, ref


@pytest.fixture(scope="module")
def turbo():
    return AceStepEngine.load(FIXTURES / "turbo", OPTIONS)


def _encode(engine, s):
    return engine.encode(
        s.prompt,
        s.duration_s,
        lyrics=s.lyrics,
        bpm=s.bpm,
        keyscale=s.keyscale,
        timesignature=s.timesignature,
    )


# -- text ------------------------------------------------------------------------------------


def test_caption_template_is_byte_exact():
    text = caption_text("warm piano", 61.9, bpm=90, keyscale="A minor", timesignature="4")
    assert text == (
        "# Instruction\nFill the audio semantic mask based on the given conditions:\n\n"
        "# Caption\nwarm piano\n\n# Metas\n- bpm: 90\n- timesignature: 4\n- keyscale: A minor\n"
        "- duration: 61 seconds\n<|endoftext|>\n"
    )
    assert lyric_text("") == "# Languages\nen\n\n# Lyric\n<|endoftext|>"


def test_metas_use_na_for_missing_values():
    assert metas(None, "", "  ", 30.0) == (
        "- bpm: N/A\n- timesignature: N/A\n- keyscale: N/A\n- duration: 30 seconds\n"
    )
    assert metas(0, None, None, 0).startswith("- bpm: N/A")
    assert metas(0, None, None, 0).endswith("- duration: 30 seconds\n")


def test_token_ids_match_the_reference(case):
    _, engine, s, ref = case
    caption = engine.tokenizer.caption(
        caption_text(s.prompt, s.duration_s, s.bpm, s.keyscale, s.timesignature)
    )
    lyric = engine.tokenizer.lyrics(lyric_text(s.lyrics))
    np.testing.assert_array_equal(caption.ids, ref["text_input_ids"])
    np.testing.assert_array_equal(lyric.ids, ref["lyric_input_ids"])
    assert caption.ids[0, -2] == engine.tokenizer._caption.token_to_id("<|endoftext|>")


def test_caption_is_truncated_to_256_tokens(turbo):
    tokens = turbo.tokenizer.caption(caption_text("piano " * 400, 30))
    assert tokens.ids.shape == (1, 256)


# -- components ------------------------------------------------------------------------------


def test_text_encoder_parity(case):
    _, engine, _, ref = case
    text, lyric = engine._run(
        "text_encoder", text_input_ids=ref["text_input_ids"], lyric_input_ids=ref["lyric_input_ids"]
    )
    np.testing.assert_allclose(text, ref["text_hidden_states"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(lyric, ref["lyric_hidden_states"], atol=ATOL, rtol=0)


def test_condition_parity(case):
    _, engine, s, ref = case
    cond = _encode(engine, s)
    np.testing.assert_allclose(cond.hidden_states, ref["encoder_hidden_states"], atol=ATOL, rtol=0)
    np.testing.assert_array_equal(cond.attention_mask, ref["encoder_attention_mask"])


def test_schedule_matches_diffusers(case):
    _, _, s, ref = case
    np.testing.assert_allclose(shifted_schedule(s.steps, s.shift), ref["schedule"], atol=1e-7)
    np.testing.assert_allclose(ref["dit_timesteps"], ref["schedule"][:-1], atol=0)


def test_transformer_parity_per_step(case):
    """Each DiT call on the reference's own inputs (odd length: padded and cropped on the host)."""
    _, engine, _, ref = case
    length = ref["noise"].shape[1]
    assert length % 2 == 1
    context = engine.context_latents(length)
    enc = ref["encoder_hidden_states"]
    for step, t in enumerate(ref["dit_timesteps"]):
        x = ref["dit_inputs"][step]
        x2 = np.pad(x, ((0, 0), (0, 1), (0, 0)))
        c2 = np.pad(context, ((0, 0), (0, 1), (0, 0)))
        ts = np.full((1,), t, np.float32)
        (v,) = engine._run(
            "transformer",
            hidden_states=x2,
            timestep=ts,
            timestep_r=ts,
            encoder_hidden_states=enc,
            context_latents=c2,
        )
        np.testing.assert_allclose(v[:, :length], ref["dit_outputs"][step], atol=ATOL, rtol=0)
        if ref["dit_guided"][step]:
            null = np.broadcast_to(engine.null_condition, enc.shape)
            (u,) = engine._run(
                "transformer",
                hidden_states=x2,
                timestep=ts,
                timestep_r=ts,
                encoder_hidden_states=null,
                context_latents=c2,
            )
            np.testing.assert_allclose(
                u[:, :length], ref["dit_outputs_uncond"][step], atol=ATOL, rtol=0
            )


def test_vae_parity(case):
    _, engine, _, ref = case
    audio = engine.decode(ref["latents"][-1], tile_frames=None)
    np.testing.assert_allclose(audio, ref["vae_audio"][0], atol=ATOL, rtol=0)


# -- the whole pipeline ----------------------------------------------------------------------


def test_denoising_loop_parity(case):
    variant, engine, s, ref = case
    velocities = []
    cond = _encode(engine, s)
    latents = engine.denoise(
        ref["noise"],
        cond,
        s.steps,
        s.shift,
        engine.guidance(s),
        on_velocity=lambda x, t, v: velocities.append(v),
    )
    np.testing.assert_allclose(np.stack(velocities), ref["velocities"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(latents, ref["latents"][-1], atol=ATOL, rtol=0)
    if variant == "base":  # the interval (0.05, 0.45) guides some steps and not others
        assert 0 < ref["dit_guided"].sum() < len(ref["dit_guided"])


@pytest.mark.parametrize("tile_frames", [None, 5, 8])
def test_waveform_parity(case, tile_frames):
    _, engine, s, ref = case
    audio = engine.render(s, noise=ref["noise"], tile_frames=tile_frames)
    assert audio.sample_rate == 48000 and audio.channels == 2
    # The VAE's waveform: the reference pipeline's -1 dBFS peak normalisation is left to lofi's
    # loudness normalisation (tests/test_loudness.py).
    np.testing.assert_allclose(audio.samples.T, ref["vae_audio"][0], atol=ATOL, rtol=0)


def test_tiled_decode_equals_one_pass_on_a_long_latent(turbo):
    latents = np.random.default_rng(0).standard_normal((1, 97, 8)).astype(np.float32)
    whole = turbo.decode(latents, tile_frames=None)
    tiled = turbo.decode(latents, tile_frames=10)
    assert tiled.shape == whole.shape == (2, 97 * 1920)
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)


def test_stream_hands_out_each_tile_as_it_is_decoded(turbo, monkeypatch):
    vae = CountingSession(turbo.sessions["vae_decoder"])
    monkeypatch.setitem(turbo.sessions, "vae_decoder", vae)
    stream = turbo.stream(_request(duration_s=12.0, steps=2))
    first = next(stream)
    assert vae.runs == 1 and first.duration_s > 4.0  # one 5 s tile, not the whole track
    rest = list(stream)
    assert vae.runs == len(rest) + 1 >= 3
    assert sum(c.duration_s for c in (first, *rest)) == pytest.approx(12.0, abs=0.05)


# -- the Engine protocol ---------------------------------------------------------------------


def _request(**params):
    duration = params.pop("duration_s", 5.0)
    return TrackRequest(
        "lofi piano",
        duration,
        seed=params.pop("seed", 1),
        engine="ace-step",
        model="acestep-tiny",
        params=params,
    )


def test_engine_protocol_and_generate(turbo):
    assert isinstance(turbo, Engine)
    assert turbo.name == "ace-step" and turbo.sample_rate == 48000 and turbo.channels == 2
    events = []
    audio = turbo.generate(_request(bpm=80, keyscale="C major", timesignature=4), events.append)
    assert audio.sample_rate == 48000 and audio.channels == 2
    assert audio.frames == 125 * 1920  # ceil(5 s * 25 Hz) latents
    assert audio.samples.dtype == np.float32
    assert [e.done for e in events] == list(range(1, 9))
    assert all(e.total == 8 and e.unit == "step" for e in events)
    assert events[-1].eta_s == 0


def test_generate_is_seeded(turbo):
    a = turbo.generate(_request(seed=3, steps=2))
    b = turbo.generate(_request(seed=3, steps=2))
    c = turbo.generate(_request(seed=4, steps=2))
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.allclose(a.samples, c.samples)


@pytest.mark.parametrize("scheduler", ["heun", "pingpong"])
def test_other_schedulers_run(turbo, scheduler):
    events = []
    audio = turbo.generate(_request(scheduler=scheduler, steps=3), events.append)
    assert np.all(np.isfinite(audio.samples))
    assert len(events) == (5 if scheduler == "heun" else 3)


def test_base_model_uses_guidance_and_cfg_option(case):
    variant, engine, s, _ = case
    if variant != "base":
        assert engine.guidance(s).scale == 1.0  # turbo forces guidance off
        return
    calls = []
    original = engine._run

    def spy(component, **inputs):
        if component == "transformer":
            calls.append(inputs["hidden_states"].shape[0])
        return original(component, **inputs)

    engine._run = spy
    try:
        audio = engine.generate(_request(steps=4, guidance=3.0, guidance_mode="cfg"))
    finally:
        del engine._run
    assert calls == [2, 2, 2, 2]
    assert np.all(np.isfinite(audio.samples))


@pytest.mark.parametrize("duration", [4.9, 240.5, 0, -3, float("nan")])
def test_duration_outside_limits_is_refused(turbo, duration):
    with pytest.raises(UsageError, match="5 to 240 seconds"):
        turbo.generate(_request(duration_s=duration))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"scheduler": "ddim"}, "scheduler"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"bpm": "fast"}, "bpm"),
        ({"shift": "x"}, "shift"),
        ({"guidance": -1}, "guidance"),
        ({"guidance_mode": "magic"}, "guidance mode"),
        ({"cfg_start": 0.8, "cfg_end": 0.2}, "interval"),
    ],
)
def test_bad_params_get_clear_errors(turbo, params, match):
    with pytest.raises(UsageError, match=match):
        turbo.generate(_request(**params))


def test_empty_prompt_is_refused(turbo):
    with pytest.raises(UsageError, match="prompt"):
        turbo.generate(TrackRequest("  ", 5.0, seed=1, engine="ace-step"))


def test_cancellation_stops_within_a_step(turbo):
    cancel = CancelToken()
    events = []

    def on_progress(progress):
        events.append(progress.done)
        if progress.done == 2:
            cancel.cancel()

    with pytest.raises(Cancelled):
        turbo.generate(_request(), on_progress, cancel)
    assert events == [1, 2]


def test_cancellation_from_another_thread(turbo):
    cancel = CancelToken()
    started = threading.Event()
    result: list[BaseException] = []

    def on_progress(_progress):
        started.set()

    def worker():
        try:
            turbo.generate(_request(duration_s=20.0, steps=50), on_progress, cancel)
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    assert started.wait(30)
    cancel.cancel()
    thread.join(30)
    assert not thread.is_alive()
    assert len(result) == 1 and isinstance(result[0], Cancelled)


# -- loading and the exported files ----------------------------------------------------------


def test_exported_config_round_trips(case):
    variant, engine, _, _ = case
    config = read_config(engine.model_dir)
    assert config["is_turbo"] is (variant == "turbo")
    assert config["sample_rate"] == 48000 and config["hop_length"] == 1920
    assert config["latent_rate"] == 25.0 and config["timbre_frames"] == 750
    assert config["defaults"]["steps"] == (8 if variant == "turbo" else 32)
    assert engine.silence_latent.shape == (1, 15000, 8)
    assert engine.null_condition.shape == (1, 1, 32)
    inputs = {i.name for i in engine.sessions["transformer"].get_inputs()}
    assert inputs == {
        "hidden_states",
        "timestep",
        "timestep_r",
        "encoder_hidden_states",
        "context_latents",
    }


def test_dynamic_batch_of_the_exported_transformer(turbo):
    """Exported with batch 2, run here with batch 1 and 3: no frozen dimensions."""
    rng = np.random.default_rng(0)
    for batch, frames, cond_len in ((1, 6, 5), (3, 12, 40)):
        (v,) = turbo._run(
            "transformer",
            hidden_states=rng.standard_normal((batch, frames, 8)),
            timestep=np.full((batch,), 0.5),
            timestep_r=np.full((batch,), 0.5),
            encoder_hidden_states=rng.standard_normal((batch, cond_len, 32)),
            context_latents=rng.standard_normal((batch, frames, 16)),
        )
        assert v.shape == (batch, frames, 8)


def test_missing_model_dir(tmp_path):
    with pytest.raises(ModelError, match="not an exported ACE-Step model"):
        AceStepEngine.load(tmp_path / "nothing", OPTIONS)


def test_bad_config_and_missing_files(tmp_path):
    model = tmp_path / "m"
    shutil.copytree(FIXTURES / "turbo", model)
    (model / "transformer.onnx").unlink()
    with pytest.raises(ModelError, match=r"transformer\.onnx"):
        AceStepEngine.load(model, OPTIONS)
    config = json.loads((model / "acestep.json").read_text())
    (model / "acestep.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ModelError, match="re-export"):
        AceStepEngine.load(model, OPTIONS)
    (model / "acestep.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        AceStepEngine.load(model, OPTIONS)


def test_validate_checks_before_work_and_returns_settings(turbo):
    settings = turbo.validate(_request(steps="4", bpm="96", timesignature=3, scheduler="Heun"))
    assert (settings.steps, settings.bpm, settings.timesignature) == (4, 96, "3")
    assert settings.scheduler == "heun" and settings.shift == 3.0  # default from acestep.json
    with pytest.raises(UsageError):
        turbo.validate(_request(duration_s=300))
