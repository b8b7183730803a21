"""A model's config files checked against its graphs at load time, before any session is made.

Every number generation reads must be in range, and every size a graph fixes in its inputs and
outputs (MusicGen: codebooks, vocabulary, attention heads and head size, layers, text hidden
size; ACE-Step: latent and hidden channels, audio channels, hop length) must equal the
config's. A disagreement is one :class:`~lofitui.errors.ModelError` line naming the config
file, the field, and the graph that disagrees, instead of an ONNX Runtime error at the first
step. Sizes a graph leaves symbolic are not checked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lofitui.engines.musicgen_files import MusicGenFiles
from lofitui.engines.onnx_signature import Dim, Signature, read_signature
from lofitui.errors import ModelError

__all__ = ["check_acestep", "check_musicgen"]

_KV = re.compile(r"^(?:past_key_values|present)\.(\d+)\.decoder\.key$")
_TIMES = re.compile(r"^(\d+)\s*\*\s*\w+$")  # a symbolic length "1920*frames"


class _Fields:
    """Typed reads of one JSON object, each failure naming the file and the field."""

    def __init__(self, path: Path, data: Mapping[str, Any], prefix: str = "") -> None:
        self.path = path
        self.data = data
        self.prefix = prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, problem: str) -> ModelError:
        return ModelError(f"{self.path}: {self.name(key)} {problem}")

    def integer(self, key: str, minimum: int = 1, *, required: bool = False) -> int | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail(key, "is missing")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be a whole number >= {minimum} (got {value!r})")
        return value

    def number(self, key: str, minimum: float = 0.0, *, above: bool = False) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < minimum or (above and value == minimum):
            bound = f"> {minimum:g}" if above else f">= {minimum:g}"
            raise self.fail(key, f"must be a number {bound} (got {value!r})")
        return float(value)


def _fixed(shape: tuple[Dim, ...], axis: int) -> int | None:
    """The fixed size of ``axis`` of ``shape``, None when symbolic, unknown or absent."""
    if -len(shape) <= axis < len(shape):
        size = shape[axis]
        return size if isinstance(size, int) and size > 0 else None
    return None


def _agree(
    fields: _Fields, key: str, value: int | None, graph: Path, what: str, got: int | None
) -> None:
    """Refuse ``value`` (the config's ``key``) where ``graph`` fixes the size to ``got``."""
    if value is not None and got is not None and value != got:
        raise ModelError(
            f"{fields.path}: {fields.name(key)} is {value}, but {graph} has {got} {what}"
        )


# ---- MusicGen ----------------------------------------------------------------------------------


def check_musicgen(files: MusicGenFiles) -> None:
    """Check config.json and generation_config.json, then the graphs' shapes against them."""
    raw = files.read_config()
    nested = isinstance(raw.get("decoder"), dict)
    dec = _Fields(files.config, raw["decoder"] if nested else raw, "decoder." if nested else "")
    audio = _Fields(files.config, _section(raw, "audio_encoder"), "audio_encoder.")
    text = _Fields(files.config, _section(raw, "text_encoder"), "text_encoder.")

    codebooks = dec.integer("num_codebooks", required=True)
    vocab = dec.integer("vocab_size", required=True)
    hidden = dec.integer("hidden_size", required=True)
    heads = dec.integer("num_attention_heads", required=True)
    layers = dec.integer("num_hidden_layers")
    positions = dec.integer("max_position_embeddings")
    assert codebooks is not None and vocab is not None and hidden is not None and heads
    if hidden % heads:
        raise dec.fail(
            "hidden_size",
            f"{hidden} is not a multiple of {dec.name('num_attention_heads')} {heads}",
        )
    if positions is not None and positions <= codebooks:
        raise dec.fail(
            "max_position_embeddings", f"{positions} leaves no room for {codebooks} codebooks"
        )
    audio.integer("sampling_rate")
    audio.number("frame_rate", above=True)
    ratios = audio.data.get("upsampling_ratios")
    if ratios is not None and not (
        isinstance(ratios, list) and ratios and all(_positive_int(r) for r in ratios)
    ):
        raise audio.fail(
            "upsampling_ratios", f"must be a list of whole numbers >= 1 (got {ratios!r})"
        )
    d_model = text.integer("d_model")
    _check_generation_config(files, vocab)

    for path in (files.decoder, files.decoder_with_past, files.decoder_merged):
        if path is not None:
            _check_decoder(
                read_signature(path), dec, text, vocab, heads, hidden // heads, layers, d_model
            )
    for path in files.fast.values():
        logits = read_signature(path).outputs.get("logits", ())
        _agree(dec, "vocab_size", vocab, path, "logits per codebook", _fixed(logits, -1))
    encodec = read_signature(files.encodec)
    codes = encodec.inputs.get("audio_codes", ())
    _agree(dec, "num_codebooks", codebooks, files.encodec, "codebooks", _fixed(codes, 2))
    states = read_signature(files.text_encoder).outputs.get("last_hidden_state", ())
    _agree(text, "d_model", d_model, files.text_encoder, "hidden features", _fixed(states, -1))


def _check_decoder(
    sig: Signature,
    dec: _Fields,
    text: _Fields,
    vocab: int,
    heads: int,
    head_dim: int,
    layers: int | None,
    d_model: int | None,
) -> None:
    path = sig.path
    _agree(
        dec,
        "vocab_size",
        vocab,
        path,
        "logits per codebook",
        _fixed(sig.outputs.get("logits", ()), -1),
    )
    kv = {**sig.inputs, **sig.outputs}
    indexes = {int(m.group(1)) for name in kv if (m := _KV.match(name))}
    for name, shape in kv.items():
        if _KV.match(name):
            _agree(dec, "num_attention_heads", heads, path, "attention heads", _fixed(shape, 1))
            got = _fixed(shape, 3)
            if got is not None and got != head_dim:
                raise ModelError(
                    f"{dec.path}: {dec.name('hidden_size')} / {dec.name('num_attention_heads')} "
                    f"is {head_dim} per head, but {path} has {got}"
                )
    if indexes:
        _agree(dec, "num_hidden_layers", layers, path, "layers", max(indexes) + 1)
    states = sig.inputs.get("encoder_hidden_states", ())
    _agree(text, "d_model", d_model, path, "text features per position", _fixed(states, -1))


def _check_generation_config(files: MusicGenFiles, vocab: int) -> None:
    if files.generation_config is None:
        return
    gen = _Fields(files.generation_config, files.read_generation_config())
    top_k = gen.integer("top_k", minimum=0)
    if top_k is not None and top_k > vocab:
        raise gen.fail("top_k", f"is {top_k}, more than the {vocab} tokens of the vocabulary")
    gen.number("guidance_scale")
    gen.number("temperature")
    gen.integer("pad_token_id", minimum=0)


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    return value if isinstance(value, dict) else {}


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# ---- ACE-Step -----------------------------------------------------------------------------------

# acestep.json field, graph, tensor, axis, what the axis counts
_ACESTEP_SIZES = (
    ("latent_channels", "transformer", "hidden_states", -1, "latent channels"),
    ("latent_channels", "transformer", "velocity", -1, "latent channels"),
    ("latent_channels", "vae_decoder", "latents", 1, "latent channels"),
    ("latent_channels", "condition_encoder", "refer_audio_acoustic", -1, "latent channels"),
    ("audio_channels", "vae_decoder", "audio", 1, "audio channels"),
    ("text_hidden_size", "text_encoder", "text_hidden_states", -1, "text features"),
    ("text_hidden_size", "condition_encoder", "text_hidden_states", -1, "text features"),
    ("encoder_hidden_size", "condition_encoder", "encoder_hidden_states", -1, "features"),
    ("encoder_hidden_size", "transformer", "encoder_hidden_states", -1, "features"),
)


def check_acestep(config_path: Path, config: Mapping[str, Any], graphs: Mapping[str, Path]) -> None:
    """Check ``acestep.json``'s numbers, then the graphs (component → path) against them."""
    cfg = _Fields(config_path, config)
    rate = cfg.integer("sample_rate", required=True)
    hop = cfg.integer("hop_length", required=True)
    latent_rate = cfg.number("latent_rate", above=True)
    latent = cfg.integer("latent_channels", required=True)
    channels = cfg.integer("audio_channels")
    text_hidden = cfg.integer("text_hidden_size")
    cond_hidden = cfg.integer("encoder_hidden_size")
    cfg.integer("timbre_frames")
    assert rate is not None and hop is not None
    if latent_rate is not None and not math.isclose(rate, hop * latent_rate, rel_tol=1e-6):
        raise cfg.fail(
            "latent_rate", f"is {latent_rate:g}, but sample_rate / hop_length is {rate / hop:g}"
        )
    sigs = {name: read_signature(path) for name, path in graphs.items()}

    def dim(component: str, tensor: str, axis: int) -> tuple[Path, int | None]:
        sig = sigs.get(component)
        if sig is None:
            return Path(component), None
        shape = {**sig.inputs, **sig.outputs}.get(tensor, ())
        return sig.path, _fixed(shape, axis)

    values = {
        "latent_channels": latent,
        "audio_channels": channels,
        "text_hidden_size": text_hidden,
        "encoder_hidden_size": cond_hidden,
    }
    for key, component, tensor, axis, what in _ACESTEP_SIZES:
        path, got = dim(component, tensor, axis)
        _agree(cfg, key, values[key], path, what, got)
    path, context = dim("transformer", "context_latents", -1)
    if context is not None and context != 2 * latent:
        raise ModelError(
            f"{config_path}: latent_channels is {latent}, but {path} takes context latents of "
            f"{context} channels (twice the latent channels)"
        )
    vae = sigs.get("vae_decoder")
    if vae is not None:
        audio = vae.outputs.get("audio", ())
        length = audio[-1] if audio else None
        match = _TIMES.match(length) if isinstance(length, str) else None
        if match is not None:
            _agree(
                cfg, "hop_length", hop, vae.path, "samples per latent frame", int(match.group(1))
            )
