"""Export-friendly torch wrappers around diffusers' ACE-Step 1.5 modules (imported lazily).

Each wrapper computes exactly what the diffusers module computes, rewritten only where
``torch.export`` cannot follow the original:

- ``_pack_sequences`` sorts with a stable argsort (no ONNX conversion): :func:`pack_sequences`
  builds the same order with cumulative sums and a scatter;
- the timbre encoder unpacks with ``.item()``/``bincount`` (data-dependent shapes): with one
  reference clip per batch item that is exactly ``unsqueeze(1)`` with an all-true mask;
- the DiT zero-pads an odd time axis behind a Python ``if``: it is exported for even lengths
  only and the runtime pads the input (and crops the output) itself.
"""

from __future__ import annotations

import torch
from diffusers.models.transformers.ace_step_transformer import (
    _ace_step_rotary_freqs,
    _create_4d_mask,
)
from torch import nn

from lofitui.convert._weight_norm import fold_weight_norm


def pack_sequences(
    hidden1: torch.Tensor, hidden2: torch.Tensor, mask1: torch.Tensor, mask2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate two masked sequences, valid tokens first (stable), then the padding."""
    hidden = torch.cat([hidden1, hidden2], dim=1)
    mask = torch.cat([mask1, mask2], dim=1).to(torch.long)
    n_valid = mask.sum(dim=1, keepdim=True)
    dest_valid = torch.cumsum(mask, dim=1) - 1
    dest_pad = n_valid + torch.cumsum(1 - mask, dim=1) - 1
    dest = torch.where(mask.bool(), dest_valid, dest_pad)
    index = dest.unsqueeze(-1).expand_as(hidden)
    packed = torch.zeros_like(hidden).scatter(1, index, hidden)
    positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
    return packed, positions < n_valid


class TextEncoder(nn.Module):
    """Qwen3 caption encoding (no attention mask, as diffusers calls it) + lyric embeddings."""

    def __init__(self, qwen: nn.Module) -> None:
        super().__init__()
        self.qwen = qwen

    def forward(self, text_input_ids: torch.Tensor, lyric_input_ids: torch.Tensor):
        text = self.qwen(input_ids=text_input_ids, use_cache=False).last_hidden_state
        lyric = self.qwen.get_input_embeddings()(lyric_input_ids)
        return text, lyric


class ConditionEncoder(nn.Module):
    """``AceStepConditionEncoder.forward`` for one reference clip per batch item."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def _timbre(self, refer: torch.Tensor) -> torch.Tensor:
        timbre = self.encoder.timbre_encoder
        hidden = timbre.embed_tokens(refer)
        seq_len = hidden.shape[1]
        rotary = _ace_step_rotary_freqs(
            seq_len, timbre.head_dim, timbre.rope_theta, hidden.device, hidden.dtype
        )
        sliding = _create_4d_mask(
            seq_len=seq_len,
            dtype=hidden.dtype,
            device=hidden.device,
            attention_mask=None,
            sliding_window=timbre.sliding_window,
            is_sliding_window=True,
            is_causal=False,
        )
        for i, layer in enumerate(timbre.layers):
            mask = sliding if timbre._layer_types[i] == "sliding_attention" else None
            hidden = layer(hidden_states=hidden, position_embeddings=rotary, attention_mask=mask)
        return timbre.norm(hidden)[:, 0, :].unsqueeze(1)

    def forward(
        self,
        text_hidden_states: torch.Tensor,
        text_attention_mask: torch.Tensor,
        lyric_hidden_states: torch.Tensor,
        lyric_attention_mask: torch.Tensor,
        refer_audio_acoustic: torch.Tensor,
    ):
        enc = self.encoder
        text = enc.text_projector(text_hidden_states)
        lyric = enc.lyric_encoder(
            inputs_embeds=lyric_hidden_states, attention_mask=lyric_attention_mask
        )
        timbre = self._timbre(refer_audio_acoustic)
        timbre_mask = torch.ones(
            timbre.shape[0], 1, dtype=lyric_attention_mask.dtype, device=timbre.device
        )
        hidden, mask = pack_sequences(lyric, timbre, lyric_attention_mask, timbre_mask)
        hidden, mask = pack_sequences(hidden, text, mask, text_attention_mask)
        return hidden, mask


class Transformer(nn.Module):
    """The DiT for an even time axis; returns the velocity only."""

    def __init__(self, dit: nn.Module) -> None:
        super().__init__()
        self.dit = dit

    def forward(self, hidden_states, timestep, timestep_r, encoder_hidden_states, context_latents):
        return self.dit(
            hidden_states=hidden_states,
            timestep=timestep,
            timestep_r=timestep_r,
            encoder_hidden_states=encoder_hidden_states,
            context_latents=context_latents,
            return_dict=False,
        )[0]


class VaeDecoder(nn.Module):
    """Oobleck decoder with weight norm folded into plain weights: latents [B,C,T] -> audio."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.decoder = vae.decoder
        fold_weight_norm(self.decoder)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents)
