"""Torch side of the ACE-Step v1 exporter: the original classes, loaded and wrapped for export.

The model code is the original ACE-Step v1 (the ``acestep`` package from github ace-step/ACE-Step,
imported by :func:`import_acestep`); each wrapper calls the original module and adds only what the
published lofi.nvim files hold in their graphs:

- the transformer's ``encode`` returns its mask as float32, and ``decode`` gets a [1] timestep
  expanded to the batch, as ``text2music_diffusion_process`` expands it;
- the DCAE decoder folds in ``MusicDCAE.decode``'s latent de-normalisation
  (``latents / 0.1786 + (-1.9091)``) and mel de-normalisation (``* 0.5 + 0.5``, then onto
  [-11, 3]): lofi.nvim's runtime applies neither, so its published graph must;
- the vocoder is ``ADaMoSHiFiGANV1.decode`` with weight norm folded into plain weights.

torchaudio: the vocoder's module imports ``torchaudio.transforms.MelScale`` for its *encoder* (the
mel transform, which no export touches). torchaudio has no build for the torch the extra pins, so
when it cannot be imported :func:`import_acestep` puts a stand-in ``MelScale`` in its place: it
holds the same filter-bank buffer (so the checkpoint loads) and refuses to run. A torchvision that
is installed but cannot load (a build for another torch) is hidden, so that transformers and
diffusers treat it as absent instead of failing on import.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from pathlib import Path

import torch
from torch import nn

from lofitui.convert._weight_norm import fold_weight_norm
from lofitui.errors import LofiError

# MusicDCAE (acestep/music_dcae/music_dcae_pipeline.py) sets these in __init__, not in a config.
LATENT_SCALE = 0.1786
LATENT_SHIFT = -1.9091
MEL_MIN = -11.0
MEL_MAX = 3.0


class _UnusedMelScale(nn.Module):
    """Stands in for ``torchaudio.transforms.MelScale`` where torchaudio cannot load."""

    def __init__(self, n_mels: int = 128, sample_rate: int = 16000, *args, **kwargs) -> None:
        super().__init__()
        # MelScale(n_mels, sample_rate, f_min, f_max, n_stft, ...): the buffer is [n_stft, n_mels]
        n_stft = kwargs.get("n_stft", args[2] if len(args) > 2 else 201)
        self.register_buffer("fb", torch.zeros(n_stft, n_mels))

    def forward(self, *args, **kwargs):
        raise LofiError("torchaudio is not available: the vocoder's mel encoder cannot run")


def _loads(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    except Exception:  # an installed build for another torch: hide it (see the module doc)
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        sys.modules[name] = None  # type: ignore[assignment]
        return False
    return True


def install_standins() -> None:
    """Hide a broken torchvision and stand in for torchaudio's MelScale (see the module doc)."""
    _loads("torchvision")
    if _loads("torchaudio"):
        return
    audio = types.ModuleType("torchaudio")
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.MelScale = _UnusedMelScale  # type: ignore[attr-defined]
    audio.transforms = transforms  # type: ignore[attr-defined]
    for module in (audio, transforms):
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
        sys.modules[module.__name__] = module


def import_acestep(code_dir: Path | None) -> types.SimpleNamespace:
    """The original classes the export needs (never the torchaudio-bound pipeline modules)."""
    install_standins()
    if code_dir is not None and str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    from acestep.models.ace_step_transformer import ACEStepTransformer2DModel
    from acestep.music_dcae.music_vocoder import ADaMoSHiFiGANV1
    from diffusers import AutoencoderDC
    from transformers import AutoTokenizer, UMT5EncoderModel

    return types.SimpleNamespace(
        transformer=ACEStepTransformer2DModel,
        dcae=AutoencoderDC,
        vocoder=ADaMoSHiFiGANV1,
        text_encoder=UMT5EncoderModel,
        tokenizer=AutoTokenizer,
    )


def load_checkpoint(classes: types.SimpleNamespace, checkpoint: Path) -> types.SimpleNamespace:
    """The four models and the tokenizer from the original layout, float32 on the CPU, as
    ``ACEStepPipeline.load_checkpoint`` reads them."""
    f32 = torch.float32
    return types.SimpleNamespace(
        transformer=classes.transformer.from_pretrained(
            checkpoint / "ace_step_transformer", torch_dtype=f32
        ).eval(),
        dcae=classes.dcae.from_pretrained(checkpoint / "music_dcae_f8c8", torch_dtype=f32).eval(),
        vocoder=classes.vocoder.from_pretrained(checkpoint / "music_vocoder").float().eval(),
        text_encoder=classes.text_encoder.from_pretrained(
            checkpoint / "umt5-base", torch_dtype=f32
        ).eval(),
        tokenizer=classes.tokenizer.from_pretrained(checkpoint / "umt5-base"),
    )


class TextEncoder(nn.Module):
    """UMT5 encoder: ids and mask -> last hidden state (``get_text_embeddings``)."""

    def __init__(self, umt5: nn.Module) -> None:
        super().__init__()
        self.umt5 = umt5

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.umt5(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class TransformerEncoder(nn.Module):
    """``ACEStepTransformer2DModel.encode``: speaker token, projected text, lyric Conformer."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, text_hidden, text_mask, speaker_embeds, lyric_token_idx, lyric_mask):
        hidden, mask = self.transformer.encode(
            text_hidden, text_mask, speaker_embeds, lyric_token_idx, lyric_mask
        )
        return hidden, mask.to(hidden.dtype)


class TransformerDecoder(nn.Module):
    """``ACEStepTransformer2DModel.decode`` -> the flow velocity; timestep [1] is σ·1000."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, hidden_states, attention_mask, encoder_hidden_states, encoder_hidden_mask,
                timestep):  # fmt: skip
        return self.transformer.decode(
            hidden_states=hidden_states,
            attention_mask=attention_mask,
            encoder_hidden_states=encoder_hidden_states,
            encoder_hidden_mask=encoder_hidden_mask,
            timestep=timestep.expand(hidden_states.shape[0]),
            output_length=hidden_states.shape[-1],
            return_dict=False,
        )[0]


class DcaeDecoder(nn.Module):
    """Sampler latents -> mel in [-11, 3]: ``MusicDCAE.decode`` up to the vocoder."""

    def __init__(self, dcae: nn.Module) -> None:
        super().__init__()
        self.decoder = dcae.decoder

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        mel = self.decoder(latents / LATENT_SCALE + LATENT_SHIFT)
        mel = mel * 0.5 + 0.5
        return mel * (MEL_MAX - MEL_MIN) + MEL_MIN


class Vocoder(nn.Module):
    """``ADaMoSHiFiGANV1.decode``: mel [B, n_mels, T] -> waveform [B, 1, hop·T]."""

    def __init__(self, vocoder: nn.Module) -> None:
        super().__init__()
        self.backbone = vocoder.backbone
        self.head = vocoder.head
        fold_weight_norm(self)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(mel))


class HalfWeights(nn.Module):
    """Runs ``module`` in float16 behind float32 inputs and outputs (integer inputs pass)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.half()

    def forward(self, *args):
        args = tuple(a.half() if a.is_floating_point() else a for a in args)
        out = self.module(*args)
        if isinstance(out, tuple):
            return tuple(o.float() for o in out)
        return out.float()
