"""The catalog against the hub's listing: layouts chosen from what a folder holds, the pinned
revision honoured, and the default model (the fp16 export) downloaded from a local hub serving
the tiny fixture's real files, then run at every compute type."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hubserver import FakeHub
from musicgen_fixture import META_FILES, reference, require_fixture

from lofitui import session
from lofitui.errors import ModelError
from lofitui.models import catalog, download, store
from lofitui.models.catalog import DEFAULT_MODELS, GABOTECHS_REVISION, get_entry
from lofitui.models.layout import DiffusersLayout, Listed, MusicGenLayout

REPO = "gabotechs/music_gen"


def listing(sizes: dict[str, int]) -> dict[str, Listed]:
    return {p: Listed(p, n, sha256=f"{i:064x}") for i, (p, n) in enumerate(sizes.items())}


def chosen(layout, sizes: dict[str, int]) -> dict[str, str]:
    return {c.file.path: c.local for c in layout.choose(listing(sizes), "repo@rev")}


# -- layouts (pure: a listing in, the files out) -------------------------------------------------

META = {"m/config.json": 8, "m/tokenizer.json": 9, "m/generation_config.json": 1}
GRAPHS = {"o/text_encoder.onnx": 400, "o/encodec_decode.onnx": 100}


def test_the_smaller_complete_decoder_form_is_chosen_with_its_sidecars_only():
    layout = MusicGenLayout("m", "o")
    both = {
        **META,
        **GRAPHS,
        "o/decoder_model_merged.onnx": 5,
        "o/decoder_model_merged.onnx_data": 7000,
        "o/decoder_model.onnx": 3000,
        "o/decoder_with_past_model.onnx": 2900,
        "o/decoder_model.onnx_data": 1,
        "o/README.md": 3,
    }
    assert chosen(layout, both) == {
        "m/config.json": "config.json",
        "m/tokenizer.json": "tokenizer.json",
        "m/generation_config.json": "generation_config.json",
        "o/text_encoder.onnx": "text_encoder.onnx",
        "o/decoder_model.onnx": "decoder_model.onnx",
        "o/decoder_with_past_model.onnx": "decoder_with_past_model.onnx",
        "o/decoder_model.onnx_data": "decoder_model.onnx_data",
        "o/encodec_decode.onnx": "encodec_decode.onnx",
    }
    merged_smaller = {**both, "o/decoder_model_merged.onnx_data": 100}
    picked = chosen(layout, merged_smaller)
    assert "o/decoder_model_merged.onnx_data" in picked and "o/decoder_model.onnx" not in picked
    only_merged = {k: v for k, v in both.items() if "decoder_model." not in k and "past" not in k}
    assert set(chosen(layout, only_merged)) >= {"o/decoder_model_merged.onnx"}


def test_a_missing_piece_is_named_and_suffixed_files_get_plain_names():
    layout = MusicGenLayout("m", "o")
    with pytest.raises(ModelError, match=r"repo@rev has neither o/decoder_model_merged\.onnx"):
        layout.choose(listing({**META, **GRAPHS, "o/decoder_model.onnx": 1}), "repo@rev")
    with pytest.raises(ModelError, match=r"repo@rev has no m/tokenizer\.json"):
        layout.choose(listing({"m/config.json": 1, **GRAPHS}), "repo@rev")
    xenova = MusicGenLayout("", "onnx", {"decoder_model_merged": "_quantized"})
    files = {
        "config.json": 1,
        "tokenizer.json": 1,
        "onnx/text_encoder.onnx": 1,
        "onnx/encodec_decode.onnx": 1,
        "onnx/decoder_model_merged.onnx": 10,  # fp32: not this entry's
        "onnx/decoder_model_merged_quantized.onnx": 5,
        "onnx/decoder_model_merged_quantized.onnx_data": 5,
    }
    picked = chosen(xenova, files)
    assert picked["onnx/decoder_model_merged_quantized.onnx"] == "decoder_model_merged.onnx"
    # the graph names its external data: the sidecar keeps the name it has on the hub
    assert picked["onnx/decoder_model_merged_quantized.onnx_data"] == (
        "decoder_model_merged_quantized.onnx_data"
    )
    assert "onnx/decoder_model_merged.onnx" not in picked


def test_diffusers_layout_takes_the_components_lofi_reads_and_nothing_else():
    layout = DiffusersLayout(("text_encoder", "vae"))
    files = {
        "model_index.json": 1,
        "text_encoder/config.json": 1,
        "text_encoder/model-00001-of-00002.safetensors": 9,
        "text_encoder/model-00002-of-00002.safetensors": 9,
        "text_encoder/model.safetensors.index.json": 1,
        "vae/config.json": 1,
        "vae/diffusion_pytorch_model.safetensors": 5,
        "audio_tokenizer/config.json": 1,
        "audio_tokenizer/diffusion_pytorch_model.safetensors": 5,
        "README.md": 1,
    }
    assert sorted(chosen(layout, files)) == sorted(
        p for p in files if not p.startswith("audio_tokenizer") and p != "README.md"
    )
    with pytest.raises(ModelError, match="has no vae/ folder"):
        layout.choose(listing({"model_index.json": 1, "text_encoder/config.json": 1}), "r@v")


# -- the hub: listings, pinning, the default model ------------------------------------------------


def fixture_repo(*, merged: bool = False) -> dict[str, bytes]:
    """gabotechs/music_gen as the hub holds it, with the tiny fixture's real files: small/ and
    small_fp16/ (the split pair, as the public fp16 folders hold it)."""
    src = require_fixture()
    files = {f"small/{name}": (src / name).read_bytes() for name in META_FILES}
    stems = ["text_encoder", "decoder_model", "decoder_with_past_model", "encodec_decode"]
    if merged:
        stems.append("decoder_model_merged")
    for stem in stems:
        files[f"small_fp16/{stem}.onnx"] = (src / "fp16" / f"{stem}.onnx").read_bytes()
    return files


def test_default_model_is_the_fp16_export_resolved_from_the_listing(fake_hub: FakeHub):
    entry = get_entry(DEFAULT_MODELS["musicgen"])
    assert entry.name == "musicgen-small-fp16" and entry.revision == GABOTECHS_REVISION
    assert entry.size < 2 * catalog.GB < get_entry("musicgen-small").size  # display estimates
    fake_hub.add_repo_at(REPO, fixture_repo(), entry.revision)
    plan = download.plan_download(entry)
    assert [f.local for f in plan.files] == [
        "config.json",
        "tokenizer.json",
        "generation_config.json",
        "text_encoder.onnx",
        "decoder_model.onnx",
        "decoder_with_past_model.onnx",
        "encodec_decode.onnx",
    ]
    served = fake_hub.repos[REPO].files
    assert all(f.size == len(served[f.remote]) for f in plan.files)  # the listing's sizes
    assert plan.total == sum(len(served[f.remote]) for f in plan.files)
    assert all(f"/{GABOTECHS_REVISION}/" in f.url for f in plan.files)
    download.download(plan)
    assert store.state_of(entry) is store.State.INSTALLED


def test_medium_fp16_takes_the_split_pair_the_folder_holds(fake_hub: FakeHub):
    """The public medium_fp16 folder may hold the split pair and no merged graph."""
    entry = get_entry("musicgen-medium-fp16")
    files = {
        "medium/config.json": b"{}",
        "medium/tokenizer.json": b"{}",
        "medium_fp16/text_encoder.onnx": b"t" * 100,
        "medium_fp16/decoder_model.onnx": b"d" * 50,
        "medium_fp16/decoder_model.onnx_data": b"D" * 3000,
        "medium_fp16/decoder_with_past_model.onnx": b"p" * 50,
        "medium_fp16/decoder_with_past_model.onnx_data": b"P" * 2900,
        "medium_fp16/encodec_decode.onnx": b"e" * 60,
    }
    fake_hub.add_repo_at(REPO, files, entry.revision)
    plan = download.plan_download(entry)
    assert {f.remote for f in plan.files} == set(files)
    assert {f.local for f in plan.files} >= {"decoder_model.onnx_data", "decoder_model.onnx"}


def test_a_pinned_revision_the_hub_no_longer_has_fails_and_fetches_nothing(fake_hub: FakeHub):
    entry = get_entry("musicgen-small-fp16")
    moved = "f" * 40
    fake_hub.add_repo(REPO, fixture_repo(), commit=moved)  # main now points elsewhere
    with pytest.raises(ModelError, match=f"revision '{GABOTECHS_REVISION}' not found in {REPO}"):
        download.plan_download(entry)
    assert all(GABOTECHS_REVISION in r.path for r in fake_hub.requests)
    assert not [r for r in fake_hub.requests if r.path.startswith("/cdn/")]
    # asked for explicitly, the hub's branch works (and is recorded as what was asked)
    plan = download.plan_download(entry, revision="main")
    assert plan.commit == moved and all(f"/{moved}/" in f.url for f in plan.files)


def test_a_folder_missing_at_the_revision_names_it(fake_hub: FakeHub):
    files = {k: v for k, v in fixture_repo().items() if k.startswith("small/")}
    fake_hub.add_repo_at(REPO, files, GABOTECHS_REVISION)
    with pytest.raises(ModelError, match="small_fp16 not found in gabotechs/music_gen"):
        download.plan_download(get_entry("musicgen-small-fp16"))


# -- compute types on the downloaded default --------------------------------------------------

# Logit error against transformers' fp32 reference on the tiny fixture, for what each compute
# type runs when built from the fp16 export (measured: 9.5e-5, 0.0037, 0.041; the fp16 graphs
# themselves, the GPU path: 2.1e-4).
BOUNDS = {"float32": 2e-4, "int8": 0.01, "int4": 0.08}


def _logits(engine) -> np.ndarray:
    ref = reference()
    ids = ref["step_input_ids"]
    decoder = engine._decoder
    out = [decoder.start(ids[:, :1], ref["encoder_hidden_states"], ref["encoder_attention_mask"])]
    out += [decoder.step(ids[:, s : s + 1]) for s in range(1, ids.shape[1])]
    return np.stack(out).astype(np.float32)


def test_every_compute_type_on_the_default_download(fake_hub: FakeHub):
    entry = get_entry(DEFAULT_MODELS["musicgen"])
    fake_hub.add_repo_at(REPO, fixture_repo(), entry.revision)
    download.download(download.plan_download(entry))
    want = reference()["step_logits"]
    built = {}
    for kind, decoder in (("int8", "fast-q8kv"), ("float32", "fast-fp32"), ("int4", "fast-q4kv")):
        opened = session.open_engine(
            "musicgen", entry.name, device="cpu", threads=1, params={"compute_type": kind}
        )
        assert opened.engine.describe()["decoder"] == decoder
        assert opened.defaults["compute_type"] == kind
        err = np.abs(_logits(opened.engine) - want).max()
        assert err < BOUNDS[kind], f"{kind}: {err:.3g}"
        built[kind] = err
    assert built["float32"] < built["int8"] < built["int4"]
    auto = session.open_engine("musicgen", entry.name, device="cpu", threads=1)
    assert (
        auto.engine.describe()["decoder"] == "fast-q8kv" and auto.defaults["compute_type"] == "int8"
    )
    exact = session.open_engine("musicgen", entry.name, device="cpu", threads=1)
    exact_engine = type(exact.engine).load(store.model_dir(entry.name), decoder="split")
    assert np.abs(_logits(exact_engine) - want).max() < 5e-4  # the fp16 graphs (the GPU path)
    # lofi's own model directory: the builds sit next to the model and go with it
    names = {p.name for p in store.removable_files(entry, store.model_dir(entry.name))}
    assert {"decoder_fast_q8kv.onnx", "decoder_fast.onnx", "decoder_fast_q4kv.onnx"} <= names
    assert "decoder_cross_kv.onnx" in names
    manifest = json.loads((store.model_dir(entry.name) / catalog.MANIFEST_NAME).read_text())
    assert manifest["commit"] == GABOTECHS_REVISION
