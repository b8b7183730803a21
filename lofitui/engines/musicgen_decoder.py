"""MusicGen's autoregressive decoder behind one small interface, for each export shape.

``start`` runs the prompt (one or more token positions) with an empty cache; ``step`` feeds one
new token column and reuses the cache. Both return the logits of the last position,
shaped (rows, vocab). Rows are codebook-major per batch item: row = b·K + k.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from lofitui.engines.runtime import RuntimeOptions, input_dtype, load_session
from lofitui.errors import ModelError

_PAST = re.compile(r"^past_key_values\.(\d+)\.(decoder|encoder)\.(key|value)$")


@dataclass(frozen=True)
class CacheLayout:
    """What the graph says about its KV cache: layers, heads, head size, dtype."""

    layers: int
    heads: int
    head_dim: int
    dtype: np.dtype

    @classmethod
    def of(
        cls, session: ort.InferenceSession, path: Path, heads: int, head_dim: int
    ) -> CacheLayout:
        layers = set()
        shape: list | None = None
        for arg in session.get_inputs():
            match = _PAST.match(arg.name)
            if match:
                layers.add(int(match.group(1)))
                shape = arg.shape
        if not layers:
            raise ModelError(f"{path} has no past_key_values inputs: not a MusicGen decoder export")
        if layers != set(range(len(layers))):
            raise ModelError(f"{path} has past_key_values for layers {sorted(layers)}: gaps")
        # Heads and head size are static in optimum exports; fall back to the config if not.
        assert shape is not None
        if isinstance(shape[1], int):
            heads = shape[1]
        if isinstance(shape[3], int):
            head_dim = shape[3]
        return cls(
            len(layers), heads, head_dim, input_dtype(session, "past_key_values.0.decoder.key")
        )

    def names(self, prefix: str, part: str) -> list[str]:
        return [f"{prefix}.{i}.{part}.{kv}" for i in range(self.layers) for kv in ("key", "value")]

    def empty(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.heads, 0, self.head_dim), dtype=self.dtype)


class DecoderRunner(Protocol):
    layout: CacheLayout
    hidden_dtype: np.dtype

    def start(
        self,
        input_ids: np.ndarray,
        encoder_hidden: np.ndarray,
        encoder_mask: np.ndarray,
        capacity: int | None = None,
    ) -> np.ndarray: ...

    def step(self, input_ids: np.ndarray) -> np.ndarray: ...

    def release(self) -> None:
        """Drop the cache of the finished sequence (start() builds a new one)."""
        ...


def _check_outputs(session: ort.InferenceSession, path: Path, names: list[str]) -> None:
    have = {o.name for o in session.get_outputs()}
    missing = [n for n in names if n not in have]
    if missing:
        raise ModelError(
            f"{path} does not have the expected outputs (missing: {missing[0]}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            + ")"
        )


def _step_with_feed(
    session: ort.InferenceSession,
    feed: dict[str, np.ndarray],
    input_ids: np.ndarray,
    presents: list[str],
    pasts: list[str],
) -> np.ndarray:
    """One cached step of a public decoder graph: this step's presents become the next pasts."""
    feed["input_ids"] = input_ids
    outputs = session.run(["logits", *presents], feed)
    feed.update(zip(pasts, outputs[1:], strict=True))
    return outputs[0][:, -1, :]


class SplitDecoder:
    """decoder_model.onnx for the prompt, decoder_with_past_model.onnx for every later step."""

    def __init__(
        self, first: Path, with_past: Path, options: RuntimeOptions, heads: int, head_dim: int
    ) -> None:
        common = ("input_ids", "encoder_attention_mask")
        self._first = load_session(
            first, options, inputs=(*common, "encoder_hidden_states"), outputs=("logits",)
        )
        self._next = load_session(with_past, options, inputs=common, outputs=("logits",))
        self.layout = CacheLayout.of(self._next, with_past, heads, head_dim)
        self.hidden_dtype = input_dtype(self._first, "encoder_hidden_states")
        self._dec_present = self.layout.names("present", "decoder")
        self._enc_present = self.layout.names("present", "encoder")
        _check_outputs(self._first, first, self._dec_present + self._enc_present)
        _check_outputs(self._next, with_past, self._dec_present)
        self._dec_past = self.layout.names("past_key_values", "decoder")
        self._feed: dict[str, np.ndarray] = {}

    def start(
        self,
        input_ids: np.ndarray,
        encoder_hidden: np.ndarray,
        encoder_mask: np.ndarray,
        capacity: int | None = None,
    ) -> np.ndarray:
        outputs = self._first.run(
            ["logits", *self._dec_present, *self._enc_present],
            {
                "input_ids": input_ids,
                "encoder_hidden_states": encoder_hidden.astype(self.hidden_dtype, copy=False),
                "encoder_attention_mask": encoder_mask,
            },
        )
        n = len(self._dec_present)
        self._feed = {"encoder_attention_mask": encoder_mask}
        self._feed.update(zip(self._dec_past, outputs[1 : 1 + n], strict=True))
        self._feed.update(
            zip(self.layout.names("past_key_values", "encoder"), outputs[1 + n :], strict=True)
        )
        return outputs[0][:, -1, :]

    def step(self, input_ids: np.ndarray) -> np.ndarray:
        return _step_with_feed(self._next, self._feed, input_ids, self._dec_present, self._dec_past)

    def release(self) -> None:
        self._feed = {}


class MergedDecoder:
    """decoder_model_merged.onnx: ``use_cache_branch`` False for the prompt, True after.

    The cache branch returns empty encoder presents: the encoder cache from the first call is
    kept and fed back unchanged (feeding the empty ones would silently drop cross-attention).
    """

    def __init__(self, merged: Path, options: RuntimeOptions, heads: int, head_dim: int) -> None:
        self._session = load_session(
            merged,
            options,
            inputs=(
                "input_ids",
                "encoder_hidden_states",
                "encoder_attention_mask",
                "use_cache_branch",
            ),
            outputs=("logits",),
        )
        self.layout = CacheLayout.of(self._session, merged, heads, head_dim)
        self.hidden_dtype = input_dtype(self._session, "encoder_hidden_states")
        self._dec_present = self.layout.names("present", "decoder")
        self._enc_present = self.layout.names("present", "encoder")
        _check_outputs(self._session, merged, self._dec_present + self._enc_present)
        self._dec_past = self.layout.names("past_key_values", "decoder")
        self._enc_past = self.layout.names("past_key_values", "encoder")
        self._feed: dict[str, np.ndarray] = {}

    def start(
        self,
        input_ids: np.ndarray,
        encoder_hidden: np.ndarray,
        encoder_mask: np.ndarray,
        capacity: int | None = None,
    ) -> np.ndarray:
        batch = encoder_hidden.shape[0]
        empty = self.layout.empty(batch)
        feed = {
            "input_ids": input_ids,
            "encoder_hidden_states": encoder_hidden.astype(self.hidden_dtype, copy=False),
            "encoder_attention_mask": encoder_mask,
            "use_cache_branch": np.array([False]),
        }
        feed.update(dict.fromkeys(self._dec_past + self._enc_past, empty))
        outputs = self._session.run(["logits", *self._dec_present, *self._enc_present], feed)
        n = len(self._dec_present)
        feed["use_cache_branch"] = np.array([True])
        feed.update(zip(self._dec_past, outputs[1 : 1 + n], strict=True))
        feed.update(zip(self._enc_past, outputs[1 + n :], strict=True))
        self._feed = feed
        return outputs[0][:, -1, :]

    def step(self, input_ids: np.ndarray) -> np.ndarray:
        return _step_with_feed(
            self._session, self._feed, input_ids, self._dec_present, self._dec_past
        )

    def release(self) -> None:
        self._feed = {}


class FastDecoder:
    """lofi's rebuilt decoder (see musicgen_fast): in-place KV cache through IO binding.

    The self-attention cache lives in one preallocated OrtValue per layer and tensor, bound as
    both the past input and the present output, so a step writes one new position instead of
    copying the whole cache; cross-attention keys/values are computed once per track. The cache
    takes the graph's dtype: float32, or int8 (a quarter of the bytes read per step).
    """

    def __init__(self, step: Path, cross: Path, options: RuntimeOptions) -> None:
        self._session = load_session(
            step,
            options,
            inputs=(
                "input_ids",
                "position_ids",
                "seqlens_k",
                "total_sequence_length",
                "cross_bias",
                "past_key_0",
            ),
            outputs=("logits", "present_key_0"),
        )
        self._cross = load_session(
            cross,
            options,
            inputs=("encoder_hidden_states", "encoder_attention_mask"),
            outputs=("cross_key_t_0", "cross_value_0"),
            arena=False,
        )
        shapes = {a.name: a.shape for a in self._session.get_inputs()}
        layers = sum(1 for name in shapes if name.startswith("past_key_"))
        _, heads, _, head_dim = shapes["past_key_0"]
        # float32, or int8 for a decoder built with a quantized cache (convert.kv_cache).
        cache_dtype = input_dtype(self._session, "past_key_0")
        self.layout = CacheLayout(layers, int(heads), int(head_dim), cache_dtype)
        self.hidden_dtype = np.dtype(np.float32)
        meta = self._session.get_modelmeta().custom_metadata_map
        if "max_positions" not in meta:
            raise ModelError(
                f"{step} lacks its max_positions metadata: rebuild it with `lofi models optimize`"
            )
        self._positions = int(meta["max_positions"])
        self._cross_names = [o.name for o in self._cross.get_outputs()]
        self._buffers: list[ort.OrtValue] = []
        self._binding: ort.IOBinding | None = None
        self._pos = 0
        self._batch = 0
        self._capacity = 0

    @property
    def max_positions(self) -> int:
        return self._positions

    def start(
        self,
        input_ids: np.ndarray,
        encoder_hidden: np.ndarray,
        encoder_mask: np.ndarray,
        capacity: int | None = None,
    ) -> np.ndarray:
        batch = encoder_hidden.shape[0]
        cross = self._cross.run(
            self._cross_names,
            {
                "encoder_hidden_states": encoder_hidden.astype(np.float32, copy=False),
                "encoder_attention_mask": encoder_mask,
            },
        )
        # The cache holds what this window needs, not the model's 2048 positions: 24 layers of
        # K and V at [2, 16, 2048, 64] would be 800 MB for musicgen-small.
        needed = min(self._positions, capacity or self._positions)
        if batch != self._batch or needed != self._capacity:
            shape = (batch, self.layout.heads, needed, self.layout.head_dim)
            self._binding, self._buffers = None, []  # free the old cache before the new one
            self._buffers = [
                ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, self.layout.dtype))
                for _ in range(2 * self.layout.layers)
            ]
            self._batch, self._capacity = batch, needed
        binding = self._session.io_binding()
        self._keep = [
            *cross,
            np.where(encoder_mask > 0, 0.0, -1e9).astype(np.float32)[:, None, None, :],
        ]
        for name, value in zip(self._cross_names, cross, strict=True):
            binding.bind_cpu_input(name, value)
        binding.bind_cpu_input("cross_bias", self._keep[-1])
        binding.bind_output("logits")  # first: get_outputs() lists outputs in binding order
        for i in range(self.layout.layers):
            for j, kv in enumerate(("key", "value")):
                buffer = self._buffers[2 * i + j]
                binding.bind_ortvalue_input(f"past_{kv}_{i}", buffer)
                binding.bind_ortvalue_output(f"present_{kv}_{i}", buffer)
        self._binding = binding
        self._pos = 0
        return self._run(input_ids)

    def step(self, input_ids: np.ndarray) -> np.ndarray:
        return self._run(input_ids)

    def seek(self, position: int) -> None:
        """Make the next step write ``position``, as if the cache held that many positions.

        A step costs the same whatever the cache holds, so this times a step deep into a window
        without generating up to it (:meth:`MusicGenEngine.measure_pace`)."""
        if not 0 <= position < self._capacity:
            raise ValueError(f"position {position} is outside the cache's {self._capacity}")
        self._pos = position

    def release(self) -> None:
        self._binding, self._buffers, self._keep = None, [], []
        self._batch = self._capacity = 0

    def _run(self, input_ids: np.ndarray) -> np.ndarray:
        binding = self._binding
        assert binding is not None, "start() first"
        seq = input_ids.shape[1]
        end = self._pos + seq
        if end > self._capacity:
            raise ModelError(f"the decoder cache holds {self._capacity} positions; {end} needed")
        binding.bind_cpu_input("input_ids", np.ascontiguousarray(input_ids))
        binding.bind_cpu_input("position_ids", np.arange(self._pos, end, dtype=np.int64))
        binding.bind_cpu_input("seqlens_k", np.full(self._batch, end - 1, dtype=np.int32))
        binding.bind_cpu_input("total_sequence_length", np.array(end, dtype=np.int32))
        self._session.run_with_iobinding(binding)
        self._pos = end
        # The bound output's memory is reused by the next run: hand back a copy (64 KB).
        return np.array(binding.get_outputs()[0].numpy(), copy=True)
