"""Export the original ACE-Step v1 (3.5B) checkpoint into the files lofi.nvim publishes.

Input: the layout of ACE-Step/ACE-Step-v1-3.5B as ``ACEStepPipeline.load_checkpoint`` reads it
(``ace_step_transformer/``, ``music_dcae_f8c8/``, ``music_vocoder/``, ``umt5-base/``). Output: the
published file names with the same inputs and outputs (B: batch, dynamic; L, S, F, T: dynamic)::

    tokenizer.json                   the UMT5 tokenizer (``tokenizers`` JSON; appends ``</s>``)
    text_encoder.onnx                input_ids, attention_mask int64 [B, L]
                                     -> hidden_states [B, L, 768]
    transformer_encoder.onnx         encoder_text_hidden_states [B, L, 768], text_attention_mask
                                     int64 [B, L], speaker_embeds [B, 512], lyric_token_idx and
                                     lyric_mask int64 [B, Ll] -> encoder_hidden_states
                                     [B, 1+L+Ll, 2560], encoder_hidden_mask [B, 1+L+Ll]
    transformer_decoder.onnx         hidden_states [B, 8, 16, F], attention_mask [B, F],
    + transformer_decoder_weights.bin  encoder_hidden_states [B, S, 2560], encoder_hidden_mask
                                     [B, S], timestep [1] (σ·1000) -> sample [B, 8, 16, F]
                                     (weights always as external data, under that name)
    dcae_decoder.onnx                latents [1, 8, 16, 128] (fixed) -> mel_spectrogram
                                     [1, 2, 128, 1024]
    vocoder.onnx                     mel [B, 128, T] -> waveform [B, 1, 512·T], 44.1 kHz
    acestep_v1.json                  the side file below (the runtime runs the set without it)

Scaling (decided here, recorded in the side file): the DCAE graph folds in both of
``MusicDCAE.decode``'s de-normalisations, latents ``/ 0.1786 + (-1.9091)`` before the decoder and
the mel ``* 0.5 + 0.5`` mapped onto [-11, 3] after it, because lofi.nvim's runtime applies neither
and its published files play: the graph takes the sampler's latents and gives the vocoder's mel.

``fp16`` stores the weights in float16 while every input and output stays float32 (int64 where
int64), so a runtime feeds both precisions alike; the fp16 graphs run on ONNX Runtime's CPU.

Needs the ``export-acestep-v1`` extra and the original code (the ``acestep`` package from GitHub,
see :data:`ACESTEP_CODE_HINT`); the runtime never imports this module.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from lofitui.convert.acestep import export_program, import_torch, save_program
from lofitui.convert.formats import (
    ACESTEP_V1_CONFIG_NAME,
    ACESTEP_V1_DECODER_WEIGHTS,
    ACESTEP_V1_DEFAULTS,
    ACESTEP_V1_FILES,
    ACESTEP_V1_FORMAT,
    ACESTEP_V1_FORMAT_VERSION,
    EXPORT_V1_EXTRA_HINT,
)
from lofitui.errors import ModelError, UsageError

COMPONENTS = (
    "text_encoder",
    "transformer_encoder",
    "transformer_decoder",
    "dcae_decoder",
    "vocoder",
)
# The onnxscript optimizer (0.7.2) turns the DCAE decoder's graph into one that outputs NaN; it
# is exported as traced.
UNOPTIMIZED = ("dcae_decoder",)
# Kept in float32 by ``--fp16``: the DCAE's linear attention divides by sums plus eps 1e-15,
# which float16 cannot hold (max error 1.1 on the [-11, 3] mel of the tiny fixture); its weights
# are 3% of the set.
FLOAT32_ALWAYS = ("dcae_decoder",)
CHECKPOINT_FOLDERS = ("ace_step_transformer", "music_dcae_f8c8", "music_vocoder", "umt5-base")
# Where the exporter looks for the original code besides the import path.
CODE_ENV = "LOFI_ACESTEP_V1_CODE"
ACESTEP_COMMIT = "d612523"
ACESTEP_CODE_HINT = (
    f"pip install --no-deps 'git+https://github.com/ace-step/ACE-Step@{ACESTEP_COMMIT}' "
    f"(or pass --code DIR / set {CODE_ENV} to a clone; PyPI's 'ace-step' 0.1.0 has no model code)"
)

SAMPLE_RATE = 44100
HOP_LENGTH = 512  # audio samples per mel frame
MEL_PER_LATENT = 8  # mel frames per latent frame
DCAE_WINDOW = 128  # latent frames per dcae_decoder call (fixed, as published)

Progress = Callable[[str], None]


def code_dir(code: str | os.PathLike[str] | None = None) -> Path | None:
    """The directory holding the ``acestep`` package (``--code``, then ``$LOFI_ACESTEP_V1_CODE``);
    None: it must be importable as installed. A UsageError when neither has it."""
    import importlib.util

    given = code if code is not None else os.environ.get(CODE_ENV) or None
    if given is not None:
        root = Path(given).expanduser()
        if (root / "acestep" / "models" / "ace_step_transformer.py").is_file():
            return root.resolve()
        if root.name == "acestep" and (root / "models" / "ace_step_transformer.py").is_file():
            return root.parent.resolve()
        raise UsageError(
            f"{root} holds no ACE-Step v1 code (acestep/models/ace_step_transformer.py)"
        )
    spec = importlib.util.find_spec("acestep")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"the original ACE-Step v1 code is not installed: {ACESTEP_CODE_HINT}")
    root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / "models" / "ace_step_transformer.py").is_file():
        raise UsageError(f"the installed 'acestep' package has no model code: {ACESTEP_CODE_HINT}")
    return None


def check_checkpoint(path: Path) -> Path:
    """``path`` if it has the four sub-folders of the original layout; a UsageError otherwise."""
    if not path.is_dir():
        raise UsageError(f"{path}: no such directory")
    missing = [name for name in CHECKPOINT_FOLDERS if not (path / name).is_dir()]
    if missing:
        raise UsageError(
            f"{path} is not an ACE-Step v1 checkpoint (no {', '.join(missing)}): pass the "
            f"directory holding {', '.join(f'{name}/' for name in CHECKPOINT_FOLDERS)}"
        )
    return path


def export_acestep_v1(
    checkpoint_dir: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    fp16: bool = False,
    progress: Progress | None = None,
    *,
    code: str | os.PathLike[str] | None = None,
) -> Path:
    """Export the checkpoint in ``checkpoint_dir`` into ``dest``; returns ``dest``.

    Written to ``<dest>.partial`` and renamed into place at the end, so an interrupted export
    never leaves a directory that looks complete. ``fp16``: float16 weights behind float32
    inputs and outputs (the DCAE decoder stays float32, :data:`FLOAT32_ALWAYS`). ``code``: a
    directory holding the original ``acestep`` package when it is not installed.
    """
    torch = import_torch("ACE-Step v1", EXPORT_V1_EXTRA_HINT)
    say = progress or (lambda _msg: None)
    source = check_checkpoint(Path(checkpoint_dir))
    root = code_dir(code)
    from lofitui.convert import _acestep_v1_torch as wrappers

    say(f"loading {source}")
    try:
        classes = wrappers.import_acestep(root)
    except ImportError as exc:
        raise UsageError(
            f"cannot import the original ACE-Step v1 code ({exc.name or exc} missing): "
            f"{ACESTEP_CODE_HINT}"
        ) from exc
    try:
        models = wrappers.load_checkpoint(classes, source)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"cannot load the ACE-Step v1 checkpoint in {source}: {reason[:300]}"
        ) from exc

    out = Path(dest)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    specs = _component_specs(models, wrappers, torch)
    with torch.no_grad():
        for name in COMPONENTS:
            module, args, names_in, names_out, dynamic = specs[name]
            module = module.float().eval()
            half = fp16 and name not in FLOAT32_ALWAYS
            if half:
                module = wrappers.HalfWeights(module).eval()
            start = time.perf_counter()
            say(f"exporting {name}")
            external = ACESTEP_V1_DECODER_WEIGHTS if name == "transformer_decoder" else None
            dynamic = _positional(dynamic, names_in, packed=half)
            _export(torch, module, args, names_in, names_out, dynamic, partial, name, external)
            say(f"exported {name} in {time.perf_counter() - start:.1f} s")

    models.tokenizer.backend_tokenizer.save(str(partial / ACESTEP_V1_FILES["tokenizer"]))
    _write_config(models, partial, str(source), fp16)
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    say(f"done: {out}")
    return out


def _component_specs(models, wrappers, torch):
    """Wrapper, batch-2 example inputs, names and dynamic axes of each published file."""
    from torch.export import Dim

    text_dim = models.text_encoder.config.d_model
    tr = models.transformer
    inner = tr.inner_dim
    speaker_dim = tr.speaker_embedder.in_features
    lyric_vocab = tr.lyric_embs.num_embeddings
    vocab = models.text_encoder.config.vocab_size
    n_mels = models.vocoder.config.input_channels
    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    def mask(length, valid):
        m = torch.ones(2, length, dtype=torch.int64)
        m[1, valid:] = 0
        return m

    # torch.export freezes any dimension whose example size is 1: batch 2, distinct lengths.
    batch = Dim("batch", min=1, max=64)
    text_len, lyric_len = Dim("text_len", min=1, max=4096), Dim("lyric_len", min=1, max=8192)
    frames, cond_len = Dim("frames", min=1, max=8192), Dim("cond_len", min=2, max=16384)
    mel_frames = Dim("mel_frames", min=8, max=262144)
    tr_mask = {0: batch, 1: frames}
    return {
        "text_encoder": (
            wrappers.TextEncoder(models.text_encoder),
            (torch.randint(0, vocab, (2, 13), generator=gen), mask(13, 9)),
            ["input_ids", "attention_mask"],
            ["hidden_states"],
            {"input_ids": {0: batch, 1: text_len}, "attention_mask": {0: batch, 1: text_len}},
        ),
        "transformer_encoder": (
            wrappers.TransformerEncoder(tr),
            (
                randn(2, 13, text_dim),
                mask(13, 9),
                randn(2, speaker_dim),
                torch.randint(0, lyric_vocab, (2, 7), generator=gen),
                mask(7, 4),
            ),
            [
                "encoder_text_hidden_states",
                "text_attention_mask",
                "speaker_embeds",
                "lyric_token_idx",
                "lyric_mask",
            ],
            ["encoder_hidden_states", "encoder_hidden_mask"],
            {
                "encoder_text_hidden_states": {0: batch, 1: text_len},
                "text_attention_mask": {0: batch, 1: text_len},
                "speaker_embeds": {0: batch},
                "lyric_token_idx": {0: batch, 1: lyric_len},
                "lyric_mask": {0: batch, 1: lyric_len},
            },
        ),
        "transformer_decoder": (
            wrappers.TransformerDecoder(tr),
            (
                randn(2, 8, 16, 19),
                torch.ones(2, 19),
                randn(2, 23, inner),
                mask(23, 17).float(),
                torch.tensor([870.0]),
            ),
            [
                "hidden_states",
                "attention_mask",
                "encoder_hidden_states",
                "encoder_hidden_mask",
                "timestep",
            ],
            ["sample"],
            {
                "hidden_states": {0: batch, 3: frames},
                "attention_mask": tr_mask,
                "encoder_hidden_states": {0: batch, 1: cond_len},
                "encoder_hidden_mask": {0: batch, 1: cond_len},
                "timestep": None,
            },
        ),
        "dcae_decoder": (
            wrappers.DcaeDecoder(models.dcae),
            (randn(1, 8, 16, DCAE_WINDOW),),
            ["latents"],
            ["mel_spectrogram"],
            None,
        ),
        "vocoder": (
            wrappers.Vocoder(models.vocoder),
            (randn(2, n_mels, 37),),
            ["mel"],
            ["waveform"],
            {"mel": {0: batch, 2: mel_frames}},
        ),
    }


def _export(torch, module, args, names_in, names_out, dynamic, folder, name, external) -> None:
    optimize = name not in UNOPTIMIZED
    program = export_program(
        torch, module, args, names_in, names_out, dynamic, name, optimize=optimize
    )
    save_program(program, folder / ACESTEP_V1_FILES[name], external_data=external)


def _positional(dynamic, names_in, packed: bool):
    """Dynamic axes by position; ``packed``: the fp16 wrapper's ``*args`` are one tuple input."""
    if dynamic is None:
        return None
    axes = tuple(dynamic[n] for n in names_in)
    return (axes,) if packed else axes


def _write_config(models, out: Path, source: str, fp16: bool) -> None:
    tr = models.transformer
    voc = models.vocoder.config
    latent_rate = SAMPLE_RATE / (HOP_LENGTH * MEL_PER_LATENT)
    config = {
        "format": ACESTEP_V1_FORMAT,
        "format_version": ACESTEP_V1_FORMAT_VERSION,
        "source": source,
        "precision": "fp16" if fp16 else "fp32",
        "sample_rate": SAMPLE_RATE,
        "samples_per_mel_frame": int(voc.hop_length),
        "mel_frames_per_latent": MEL_PER_LATENT,
        "latent_rate": latent_rate,
        "frames": "floor(duration_s * 44100 / 512 / 8)",
        "latent_shape": [int(tr.config.in_channels), int(tr.config.max_height)],
        "dcae_window": DCAE_WINDOW,
        "mel_bins": int(voc.input_channels),
        "audio_channels": 2,
        "latent_scaling_folded": True,
        "mel_scaling_folded": True,
        "text_hidden_size": int(models.text_encoder.config.d_model),
        "encoder_hidden_size": int(tr.inner_dim),
        "speaker_embedding_dim": int(tr.speaker_embedder.in_features),
        "lyric_vocab_size": int(tr.lyric_embs.num_embeddings),
        "max_text_tokens": 256,
        "defaults": dict(ACESTEP_V1_DEFAULTS),
        "files": dict(ACESTEP_V1_FILES),
    }
    (out / ACESTEP_V1_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
