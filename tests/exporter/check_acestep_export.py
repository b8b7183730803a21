"""The ACE-Step exporter itself: needs torch + diffusers, so it is not part of the default suite.

Its file name does not match ``test_*.py`` on purpose (the runtime suite has no torch, and a skip
would hide that); run it by path in an environment with the exporter extra:
    pip install -e '.[export-acestep,test]' && pytest tests/exporter/check_acestep_export.py
The round trip (build a tiny pipeline -> export -> run with onnxruntime -> compare with diffusers)
takes about a minute on two CPU cores. The runtime-only suite covers the committed export
through tests/test_acestep.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "fixtures"))
import make_acestep

from lofitui.convert.acestep import export_acestep
from lofitui.engines.acestep import AceStepEngine, AceStepSettings
from lofitui.engines.runtime import RuntimeOptions


def test_pack_sequences_matches_diffusers():
    from diffusers.pipelines.ace_step.modeling_ace_step import _pack_sequences

    from lofitui.convert._acestep_torch import pack_sequences

    gen = torch.Generator().manual_seed(0)
    h1, h2 = torch.randn(3, 7, 4, generator=gen), torch.randn(3, 5, 4, generator=gen)
    m1 = torch.rand(3, 7, generator=gen) > 0.4
    m2 = torch.rand(3, 5, generator=gen) > 0.4
    expected, expected_mask = _pack_sequences(h1, h2, m1, m2)
    packed, mask = pack_sequences(h1, h2, m1, m2)
    assert torch.equal(mask, expected_mask)
    # Pads too: the DiT's cross-attention has no mask, so pads must land in the same order.
    assert torch.equal(packed, expected)


def test_export_round_trip(tmp_path):
    pipe = make_acestep.build_pipeline("turbo")
    out = export_acestep(pipe, tmp_path / "turbo")
    assert not (tmp_path / "turbo.partial").exists()
    names = {p.name for p in out.iterdir()}
    assert {
        "text_encoder.onnx",
        "condition_encoder.onnx",
        "transformer.onnx",
        "vae_decoder.onnx",
        "tokenizer.json",
        "silence_latent.npy",
        "null_condition_emb.npy",
        "acestep.json",
    } <= names

    case = make_acestep.CASES["turbo"]
    with torch.no_grad():
        ref = make_acestep.reference_run(pipe, case, seed=5)
    engine = AceStepEngine.load(out, RuntimeOptions("cpu", 1))
    settings = AceStepSettings(
        prompt=make_acestep.PROMPT,
        duration_s=make_acestep.DURATION_S,
        lyrics=make_acestep.LYRICS,
        bpm=case["bpm"],
        keyscale=case["keyscale"],
        timesignature=case["timesignature"],
        steps=case["steps"],
        shift=case["shift"],
    )
    audio = engine.render(settings, noise=ref["noise"])
    np.testing.assert_allclose(audio.samples.T, ref["audio"][0], atol=2e-5, rtol=0)
