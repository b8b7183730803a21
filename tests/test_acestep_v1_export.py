"""The ACE-Step v1 exporter's output: the published interface, and each component's parity.

tests/fixtures/acestep-v1-tiny/ holds tiny random-weight models built with the original ACE-Step
v1 classes, exported by ``lofitui.convert.acestep_v1`` and checked here with ONNX Runtime against
what the original code computed (tests/fixtures/make_acestep_v1.py; keys in its README.md).
Tolerances (absolute; measured in reference.json): UMT5 and the transformer encoder 1e-5
(~1e-6), one decoder velocity 5e-5 (4.7e-6), the DCAE mel in [-11, 3] 1e-3 (1.1e-4), the vocoder
1e-5 (~1e-7). The whole pipeline (schedulers, guidance, tiling) is tested with the engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from lofitui.convert.formats import (
    ACESTEP_V1_CONFIG_NAME,
    ACESTEP_V1_DECODER_WEIGHTS,
    ACESTEP_V1_FILES,
)

FIXTURE = Path(__file__).parent / "fixtures" / "acestep-v1-tiny"
F32, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
# name -> (inputs, outputs): (name, dtype, rank) in order, as lofi.nvim's runtime feeds them.
PUBLISHED = {
    "text_encoder": (
        [("input_ids", I64, 2), ("attention_mask", I64, 2)],
        [("hidden_states", F32, 3)],
    ),
    "transformer_encoder": (
        [
            ("encoder_text_hidden_states", F32, 3),
            ("text_attention_mask", I64, 2),
            ("speaker_embeds", F32, 2),
            ("lyric_token_idx", I64, 2),
            ("lyric_mask", I64, 2),
        ],
        [("encoder_hidden_states", F32, 3), ("encoder_hidden_mask", F32, 2)],
    ),
    "transformer_decoder": (
        [
            ("hidden_states", F32, 4),
            ("attention_mask", F32, 2),
            ("encoder_hidden_states", F32, 3),
            ("encoder_hidden_mask", F32, 2),
            ("timestep", F32, 1),
        ],
        [("sample", F32, 4)],
    ),
    "dcae_decoder": ([("latents", F32, 4)], [("mel_spectrogram", F32, 4)]),
    "vocoder": ([("mel", F32, 3)], [("waveform", F32, 3)]),
}


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURE / "reference.npz"))


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((FIXTURE / "reference.json").read_text())


def _session(name: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    path = FIXTURE / ACESTEP_V1_FILES[name]
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]


def test_the_directory_holds_exactly_the_published_files() -> None:
    names = {p.name for p in FIXTURE.iterdir()} - {"README.md", "reference.npz", "reference.json"}
    assert names == {*ACESTEP_V1_FILES.values(), ACESTEP_V1_CONFIG_NAME}
    config = json.loads((FIXTURE / ACESTEP_V1_CONFIG_NAME).read_text())
    assert config["latent_scaling_folded"] and config["mel_scaling_folded"]
    assert config["sample_rate"] == 44100 and config["dcae_window"] == 128


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_each_graph_has_the_published_interface(name: str) -> None:
    model = onnx.load(str(FIXTURE / ACESTEP_V1_FILES[name]), load_external_data=False)
    inputs, outputs = PUBLISHED[name]
    for values, expected in ((model.graph.input, inputs), (model.graph.output, outputs)):
        found = [(v.name, v.type.tensor_type.elem_type, len(_dims(v))) for v in values]
        assert found == expected
    shapes = {v.name: _dims(v) for v in [*model.graph.input, *model.graph.output]}
    if name == "dcae_decoder":  # the published graph's fixed window
        assert shapes["latents"] == [1, 8, 16, 128] and shapes["mel_spectrogram"] == [
            1,
            2,
            128,
            1024,
        ]
    if name == "vocoder":  # called once on the whole mel: a dynamic time axis
        assert isinstance(shapes["mel"][2], str) and shapes["mel"][1] == 128
    if name == "transformer_decoder":
        assert shapes["timestep"] == [1] and isinstance(shapes["hidden_states"][3], str)
        assert shapes["hidden_states"][1:3] == [8, 16]
    if name == "text_encoder":
        assert all(isinstance(d, str) for d in shapes["input_ids"])


def test_decoder_weights_are_external_data_under_the_published_name() -> None:
    model = onnx.load(str(FIXTURE / "transformer_decoder.onnx"), load_external_data=False)
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external, "the decoder keeps its weights in the graph"
    locations = {e.value for t in external for e in t.external_data if e.key == "location"}
    assert locations == {ACESTEP_V1_DECODER_WEIGHTS}
    big_inline = [t.name for t in model.graph.initializer if t.ByteSize() > 4096]
    assert big_inline == []
    for name in set(PUBLISHED) - {"transformer_decoder"}:
        other = onnx.load(str(FIXTURE / ACESTEP_V1_FILES[name]), load_external_data=False)
        assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in other.graph.initializer)


def test_tokenizer_json_is_the_umt5_tokenizer_with_eos(ref: dict, meta: dict) -> None:
    tokenizer = Tokenizer.from_file(str(FIXTURE / "tokenizer.json"))
    encoding = tokenizer.encode(meta["prompt"])
    assert encoding.ids == ref["text_input_ids"][0].tolist()
    assert encoding.ids[-1] == tokenizer.token_to_id("</s>") == 1
    assert encoding.attention_mask == ref["text_attention_mask"][0].tolist()
    assert tokenizer.encode("").ids == [1]  # the unconditional prompt lofi.nvim encodes


def test_text_encoder_matches_umt5(ref: dict) -> None:
    feeds = {"input_ids": ref["text_input_ids"], "attention_mask": ref["text_attention_mask"]}
    (hidden,) = _session("text_encoder").run(None, feeds)
    np.testing.assert_allclose(hidden, ref["text_hidden_states"], rtol=0, atol=1e-5)


def test_transformer_encoder_matches_encode_cond_and_uncond(ref: dict) -> None:
    session = _session("transformer_encoder")
    feeds = {
        "encoder_text_hidden_states": ref["text_hidden_states"],
        "text_attention_mask": ref["text_attention_mask"],
        "speaker_embeds": np.zeros((1, 512), np.float32),
        "lyric_token_idx": np.zeros((1, 1), np.int64),
        "lyric_mask": np.zeros((1, 1), np.int64),
    }
    hidden, mask = session.run(None, feeds)
    np.testing.assert_allclose(hidden, ref["encoder_hidden_states"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(mask, ref["encoder_hidden_mask"])
    # the original's unconditional branch: zero text of the same length, the same mask
    feeds["encoder_text_hidden_states"] = np.zeros_like(ref["text_hidden_states"])
    hidden, _ = session.run(None, feeds)
    np.testing.assert_allclose(hidden, ref["encoder_hidden_states_uncond"], rtol=0, atol=1e-5)


def test_transformer_decoder_gives_the_first_velocity(ref: dict) -> None:
    noise = ref["noise"]
    (velocity,) = _session("transformer_decoder").run(
        None,
        {
            "hidden_states": noise,
            "attention_mask": np.ones((1, noise.shape[-1]), np.float32),
            "encoder_hidden_states": ref["encoder_hidden_states"],
            "encoder_hidden_mask": ref["encoder_hidden_mask"],
            "timestep": ref["euler_timesteps"][:1],
        },
    )
    assert velocity.shape == noise.shape
    np.testing.assert_allclose(velocity, ref["decoder_velocity"], rtol=0, atol=5e-5)


def test_dcae_decoder_folds_the_scaling_into_each_window(ref: dict, meta: dict) -> None:
    latents = ref["euler_latents"]
    frames = latents.shape[-1]
    assert 128 < frames < 256  # two windows, the second zero-padded
    session = _session("dcae_decoder")
    mels = []
    for start in range(0, frames, 128):
        size = min(128, frames - start)
        window = np.zeros((1, 8, 16, 128), np.float32)
        window[..., :size] = latents[..., start : start + size]
        (mel,) = session.run(None, {"latents": window})
        mels.append(mel[..., : size * 8])
    mel = np.concatenate(mels, axis=-1)
    assert mel.shape == ref["euler_mel"].shape
    first, last = meta["mel_seam_frames"]
    np.testing.assert_allclose(mel[..., first:last], ref["euler_mel_seam"], rtol=0, atol=1e-3)
    # the rest against the float16 copy: its rounding is up to 4e-3 on |mel| <= 11
    np.testing.assert_allclose(mel, ref["euler_mel"].astype(np.float32), rtol=0, atol=6e-3)
    assert float(mel.std()) > 0.1  # random weights: the output varies


def test_vocoder_runs_any_length_and_matches(ref: dict, meta: dict) -> None:
    session = _session("vocoder")
    (wave,) = session.run(None, {"mel": ref["vocoder_mel"]})
    np.testing.assert_allclose(wave, ref["vocoder_wave"], rtol=0, atol=1e-5)
    hop = meta["samples_per_mel_frame"]
    (short,) = session.run(None, {"mel": ref["vocoder_mel"][:1, :, :24]})
    assert short.shape == (1, 1, 24 * hop)
