"""Export a diffusers-format ACE-Step 1.5 pipeline into the ONNX model directory lofi runs.

Output directory (``ModelFiles`` in :mod:`lofitui.engines.acestep` reads it)::

    text_encoder.onnx        text_input_ids, lyric_input_ids
                             -> text_hidden_states, lyric_hidden_states
    condition_encoder.onnx   text_hidden_states, text_attention_mask, lyric_hidden_states,
                             lyric_attention_mask, refer_audio_acoustic
                             -> encoder_hidden_states, encoder_attention_mask
    transformer.onnx         hidden_states, timestep, timestep_r, encoder_hidden_states,
                             context_latents -> velocity           (time axis must be even)
    vae_decoder.onnx         latents [B, C, T] -> audio [B, 2, hop*T]
    *.onnx.data              external weights, only for files that would pass 2 GB
    tokenizer.json           the Qwen3 tokenizer (``tokenizers`` format)
    silence_latent.npy       [1, T, C] float32: the timbre input and source latents for text2music
    null_condition_emb.npy   [1, 1, D] float32: the unconditional branch for guidance
    acestep.json             sample rate, latent rate, variant, defaults, file list

Needs the ``export-acestep`` extra (torch, diffusers, transformers, onnx, onnxscript); the runtime
never imports this module.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lofitui.convert.formats import (
    ACESTEP_CONFIG_NAME,
    ACESTEP_FORMAT,
    ACESTEP_FORMAT_VERSION,
    ACESTEP_PIPELINE_COMPONENTS,
    EXPORT_EXTRA_HINT,
)
from lofitui.errors import LofiError, ModelError, UsageError

OPSET = 18
COMPONENTS = ("text_encoder", "condition_encoder", "transformer", "vae_decoder")
# ONNX protobuf files cannot exceed 2 GiB; keep a margin for the graph itself.
EXTERNAL_DATA_BYTES = 1_900_000_000

# Generation defaults recorded in acestep.json (the runtime reads them; params override them).
TURBO_DEFAULTS = {"steps": 8, "shift": 3.0, "guidance": 1.0}
BASE_DEFAULTS = {"steps": 32, "shift": 3.0, "guidance": 7.0}

Progress = Callable[[str], None]


def import_torch(what: str = "ACE-Step", hint: str = EXPORT_EXTRA_HINT):
    """torch, after checking the rest of an exporter extra; one line naming ``hint`` if not."""
    try:
        import diffusers  # noqa: F401
        import onnxscript  # noqa: F401
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise LofiError(
            f"exporting {what} needs torch, diffusers, transformers and onnxscript "
            f"({exc.name} is missing): {hint}"
        ) from exc
    return torch


def absent_components(path: Path) -> dict[str, None]:
    """Components ``model_index.json`` names beyond the ones the exporter reads whose folder is
    absent (diffusers' converter writes ``audio_tokenizer`` and ``audio_token_detokenizer``, which
    lofi does not download): ``from_pretrained`` skips a component passed as None."""
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path / 'model_index.json'}: {exc}") from None
    if not isinstance(index, dict):
        raise ModelError(f"{path / 'model_index.json'} is not a JSON object")
    return {
        name: None
        for name, spec in index.items()
        if isinstance(spec, list)
        and name not in ACESTEP_PIPELINE_COMPONENTS
        and not (path / name).is_dir()
    }


def load_pipeline(source: str | os.PathLike[str]):
    """Load a diffusers-format ACE-Step 1.5 pipeline directory in float32 on the CPU."""
    torch = import_torch()
    from diffusers import AceStepPipeline

    path = Path(source)
    if not (path / "model_index.json").is_file():
        raise UsageError(f"{path} is not a diffusers pipeline directory (no model_index.json)")
    try:
        return AceStepPipeline.from_pretrained(
            path, torch_dtype=torch.float32, **absent_components(path)
        )
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load the ACE-Step pipeline in {path}: {reason[:300]}") from exc


def export_acestep(
    src_dir_or_pipeline: Any,
    out_dir: str | os.PathLike[str],
    fp16: bool = False,
    progress: Progress | None = None,
    *,
    components: tuple[str, ...] = COMPONENTS,
) -> Path:
    """Export every component and the side data; returns ``out_dir``.

    ``src_dir_or_pipeline`` is a diffusers pipeline directory or a loaded ``AceStepPipeline``.
    The result is written to ``<out_dir>.partial`` and renamed into place at the end, so an
    interrupted export never leaves a directory that looks complete. ``fp16`` stores weights and
    float inputs/outputs in half precision: half the disk and memory, meant for GPUs (it runs
    on the CPU provider too, with ~5e-4 deviation on the tiny fixture). ``components`` exports
    a subset (benchmarks); the runtime needs all four.
    """
    torch = import_torch()
    unknown = set(components) - set(COMPONENTS)
    if unknown:
        raise UsageError(f"unknown ACE-Step components: {', '.join(sorted(unknown))}")
    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    if isinstance(src_dir_or_pipeline, (str, os.PathLike)):
        say(f"loading {src_dir_or_pipeline}")
        pipe = load_pipeline(src_dir_or_pipeline)
        source = str(src_dir_or_pipeline)
    else:
        pipe = src_dir_or_pipeline
        source = type(pipe).__name__
    for name in ("text_encoder", "tokenizer", "condition_encoder", "transformer", "vae"):
        if getattr(pipe, name, None) is None:
            raise ModelError(f"the ACE-Step pipeline has no {name}")

    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)

    from lofitui.convert import _acestep_torch as wrappers

    dtype = torch.float16 if fp16 else torch.float32
    specs = _component_specs(pipe, wrappers, torch, dtype)
    files: dict[str, str] = {}
    with torch.no_grad():
        for name in components:
            module, args, names_in, names_out, dynamic = specs[name]
            start = time.perf_counter()
            say(f"exporting {name}")
            module = module.to(dtype).eval()
            files[name] = _export_one(
                torch, module, args, names_in, names_out, dynamic, partial / f"{name}.onnx"
            )
            say(f"exported {name} in {time.perf_counter() - start:.1f} s")

    _write_side_data(pipe, partial, source, fp16, files)
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    say(f"done: {out}")
    return out


def _component_specs(pipe, wrappers, torch, dtype):
    """Wrapper module, batch-2 example inputs, names and dynamic axes for each component."""
    from torch.export import Dim

    text_dim = pipe.text_encoder.config.hidden_size
    cond = pipe.condition_encoder
    timbre_dim = cond.silence_latent.shape[-1]
    dit_cfg = pipe.transformer.config
    acoustic = dit_cfg.audio_acoustic_hidden_dim
    context_dim = dit_cfg.in_channels - acoustic
    enc_dim = dit_cfg.encoder_hidden_size or dit_cfg.hidden_size
    vocab = pipe.text_encoder.config.vocab_size
    latent_channels = pipe.vae.config.decoder_input_channels

    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(dtype)

    def ids(*shape):
        return torch.randint(0, vocab, shape, generator=gen)

    def mask(batch, length, valid):
        m = torch.ones(batch, length, dtype=torch.bool)
        m[1, valid:] = False
        return m

    # torch.export freezes any dimension whose example size is 1: use batch 2 and distinct
    # lengths everywhere. Each dynamic axis gets its own Dim.
    batch = Dim("batch", min=1, max=64)
    text_len, lyric_len = Dim("text_len", min=1), Dim("lyric_len", min=1)
    refer_len, cond_len = Dim("refer_len", min=1), Dim("cond_len", min=1)
    half_frames, frames = Dim("half_frames", min=1), Dim("frames", min=1)

    return {
        "text_encoder": (
            wrappers.TextEncoder(pipe.text_encoder),
            (ids(2, 17), ids(2, 11)),
            ["text_input_ids", "lyric_input_ids"],
            ["text_hidden_states", "lyric_hidden_states"],
            {
                "text_input_ids": {0: batch, 1: text_len},
                "lyric_input_ids": {0: batch, 1: lyric_len},
            },
        ),
        "condition_encoder": (
            wrappers.ConditionEncoder(cond),
            (
                randn(2, 17, text_dim),
                mask(2, 17, 13),
                randn(2, 11, text_dim),
                mask(2, 11, 7),
                randn(2, 23, timbre_dim),
            ),
            [
                "text_hidden_states",
                "text_attention_mask",
                "lyric_hidden_states",
                "lyric_attention_mask",
                "refer_audio_acoustic",
            ],
            ["encoder_hidden_states", "encoder_attention_mask"],
            {
                "text_hidden_states": {0: batch, 1: text_len},
                "text_attention_mask": {0: batch, 1: text_len},
                "lyric_hidden_states": {0: batch, 1: lyric_len},
                "lyric_attention_mask": {0: batch, 1: lyric_len},
                "refer_audio_acoustic": {0: batch, 1: refer_len},
            },
        ),
        "transformer": (
            wrappers.Transformer(pipe.transformer),
            (
                randn(2, 20, acoustic),
                torch.tensor([0.9, 0.5]).to(dtype),
                torch.tensor([0.9, 0.5]).to(dtype),
                randn(2, 29, enc_dim),
                randn(2, 20, context_dim),
            ),
            ["hidden_states", "timestep", "timestep_r", "encoder_hidden_states", "context_latents"],
            ["velocity"],
            {
                "hidden_states": {0: batch, 1: 2 * half_frames},
                "timestep": {0: batch},
                "timestep_r": {0: batch},
                "encoder_hidden_states": {0: batch, 1: cond_len},
                "context_latents": {0: batch, 1: 2 * half_frames},
            },
        ),
        "vae_decoder": (
            wrappers.VaeDecoder(pipe.vae),
            (randn(2, latent_channels, 7),),
            ["latents"],
            ["audio"],
            {"latents": {0: batch, 2: frames}},
        ),
    }


def _export_one(torch, module, args, names_in, names_out, dynamic, path: Path) -> str:
    program = export_program(torch, module, args, names_in, names_out, dynamic, path.stem)
    weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    weight_bytes += sum(b.numel() * b.element_size() for b in module.buffers())
    save_program(program, path, external_data=weight_bytes > EXTERNAL_DATA_BYTES)
    return path.name


def export_program(
    torch, module, args, names_in, names_out, dynamic, name: str, *, optimize: bool = True
):
    """``torch.onnx.export`` with the dynamo exporter at :data:`OPSET`; a one-line ModelError
    naming ``name`` when it fails."""
    try:
        return torch.onnx.export(
            module,
            args,
            f=None,
            input_names=names_in,
            output_names=names_out,
            dynamic_shapes=dynamic,
            opset_version=OPSET,
            dynamo=True,
            optimize=optimize,
            verbose=False,
        )
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"exporting {name} failed: {reason[:400]}") from exc


def save_program(program, path: Path, external_data: bool | str = False) -> None:
    """Save an exported ``ONNXProgram`` without its debug info. ``external_data``: True keeps the
    weights in ``<file>.data``, a file name keeps them in that file next to ``path``."""
    _strip_debug_info(program.model)
    if isinstance(external_data, str):
        import onnx_ir

        onnx_ir.save(program.model, path, external_data=external_data)
    else:
        program.save(str(path), external_data=external_data)


def _strip_debug_info(model) -> None:
    """Drop the per-node stack traces the exporter records: they double a small graph's size."""
    for node in model.graph.all_nodes():
        node.metadata_props.clear()
        node.doc_string = None
    for function in model.functions.values():
        for node in function.all_nodes():
            node.metadata_props.clear()
            node.doc_string = None


def _write_side_data(pipe, out: Path, source: str, fp16: bool, files: dict[str, str]) -> None:
    import numpy as np

    pipe.tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    cond = pipe.condition_encoder
    silence = cond.silence_latent.detach().float().cpu().numpy()
    np.save(out / "silence_latent.npy", silence.astype(np.float32))
    null = getattr(cond, "null_condition_emb", None)
    if null is not None:
        np.save(out / "null_condition_emb.npy", null.detach().float().cpu().numpy())

    dit_cfg = pipe.transformer.config
    vae_cfg = pipe.vae.config
    is_turbo = bool(pipe.is_turbo)
    hop = int(math.prod(vae_cfg.downsampling_ratios))
    sample_rate = int(vae_cfg.sampling_rate)
    config = {
        "format": ACESTEP_FORMAT,
        "format_version": ACESTEP_FORMAT_VERSION,
        "source": source,
        "precision": "fp16" if fp16 else "fp32",
        "variant": "turbo" if is_turbo else str(dit_cfg.model_version or "base"),
        "is_turbo": is_turbo,
        "sample_rate": sample_rate,
        "hop_length": hop,
        "latent_rate": sample_rate / hop,
        "audio_channels": int(vae_cfg.audio_channels),
        "latent_channels": int(dit_cfg.audio_acoustic_hidden_dim),
        "text_hidden_size": int(pipe.text_encoder.config.hidden_size),
        "encoder_hidden_size": int(dit_cfg.encoder_hidden_size or dit_cfg.hidden_size),
        "timbre_frames": math.ceil(30 * sample_rate / hop),
        "max_text_tokens": 256,
        "max_lyric_tokens": 2048,
        "has_null_condition": null is not None,
        "defaults": dict(TURBO_DEFAULTS if is_turbo else BASE_DEFAULTS),
        "files": {
            **files,
            "tokenizer": "tokenizer.json",
            "silence_latent": "silence_latent.npy",
            **({"null_condition_emb": "null_condition_emb.npy"} if null is not None else {}),
        },
    }
    (out / ACESTEP_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
