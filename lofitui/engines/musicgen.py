"""MusicGen through ONNX Runtime: T5 text encoder → decoder with KV cache → EnCodec.

Per step the decoder sees one token column per codebook (the delay pattern staggers codebook k
by k steps), classifier-free guidance runs the conditional and unconditional rows in one batch,
and top-k sampling with a seeded numpy generator makes the same request give the same tokens.
Tracks longer than one window continue audiocraft-style: the last ``prompt`` seconds of codes
prime the next window; a request's ``prime_codes`` primes its first window the same way, so a
track can continue the previous one. ``stream`` yields chunks as frames complete (0.3 s first,
growing to 1 s), decoded incrementally by :class:`~lofitui.engines.encodec_stream.EncodecStream`;
``generate`` joins them. Every session stays loaded while the engine lives, so a track's first
chunk waits only for its own frames.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from lofitui.audio.types import Audio
from lofitui.convert.formats import CROSS_KV, FAST_QUANTS
from lofitui.engines.base import (
    CancelToken,
    EngineBase,
    Param,
    ProgressCallback,
    ProgressMeter,
    StageCallback,
    TrackRequest,
)
from lofitui.engines.encodec_stream import (
    CHUNK_FRAMES,
    FIRST_CHUNK_FRAMES,
    EncodecStream,
    decode_in_chunks,
)
from lofitui.engines.model_check import check_musicgen
from lofitui.engines.musicgen_decoder import (
    DecoderRunner,
    FastDecoder,
    MergedDecoder,
    SplitDecoder,
)
from lofitui.engines.musicgen_files import MusicGenFiles, find_fast
from lofitui.engines.musicgen_precision import COMPUTE_PARAM, compute_type_of
from lofitui.engines.musicgen_precision import fast_quant as fast_quant_for
from lofitui.engines.musicgen_prime import PRIME_PARAM, codes_from_text, codes_to_text
from lofitui.engines.runtime import (
    RuntimeOptions,
    active_device,
    load_session,
)
from lofitui.errors import ModelError, UsageError
from lofitui.paths import models_dir

MAX_DURATION_S = 600.0  # 10 minutes: windowed continuation keeps cost linear
MIN_DURATION_S = 1.0
MAX_PROMPT_TOKENS = 256
DECODERS = ("auto", "fast", "split", "merged")

DEFAULT_TOP_K = 250
DEFAULT_TEMPERATURE = 1.0
DEFAULT_GUIDANCE = 3.0
# audiocraft's long-form defaults: 30 s windows that advance by 18 s (12 s of codes as prompt).
DEFAULT_WINDOW_S = 30.0
PACE_REPEATS = 3  # measure_pace keeps the fastest of this many timings of each cost
DEFAULT_STRIDE_S = 18.0

PARAMS = (
    Param(
        "top_k",
        int,
        "top-k (1 = greedy; default 250)",
        "--top-k",
        "K",
        default=DEFAULT_TOP_K,
        minimum=1,
    ),
    Param(
        "temperature",
        float,
        "default 1.0 (0.01 to 100)",
        "--temperature",
        "T",
        default=DEFAULT_TEMPERATURE,
        minimum=0.01,
        maximum=100,
    ),
    Param(
        "guidance",
        float,
        "guidance scale, both engines (MusicGen: default 3, 1 disables; ACE-Step base: "
        "default 7; turbo ignores it)",
        "--guidance",
        "G",
        default=DEFAULT_GUIDANCE,
        minimum=1,
        maximum=100,
    ),
    COMPUTE_PARAM,
)


@dataclass(frozen=True)
class MusicGenConfig:
    """The numbers generation needs, read from config.json / generation_config.json."""

    num_codebooks: int
    vocab_size: int
    pad_token_id: int
    sampling_rate: int
    frame_rate: float
    max_positions: int
    heads: int
    head_dim: int
    top_k: int
    guidance: float
    temperature: float

    @classmethod
    def from_files(cls, files: MusicGenFiles) -> MusicGenConfig:
        check_musicgen(files)  # config.json, generation_config.json and the graphs agree
        config = files.read_config()
        gen = files.read_generation_config()
        decoder: dict[str, Any] = config.get("decoder", config)
        audio: dict[str, Any] = config.get("audio_encoder", {})
        try:
            if int(decoder.get("audio_channels", 1)) != 1:
                raise ModelError(f"{files.config}: stereo MusicGen models are not supported yet")
            vocab = int(decoder["vocab_size"])
            rate = int(audio.get("sampling_rate", 32000))
            ratios = audio.get("upsampling_ratios") or [8, 5, 4, 4]
            frame_rate = float(audio.get("frame_rate") or rate / math.prod(ratios))
            hidden = int(decoder["hidden_size"])
            heads = int(decoder["num_attention_heads"])
            return cls(
                num_codebooks=int(decoder["num_codebooks"]),
                vocab_size=vocab,
                pad_token_id=int(decoder.get("pad_token_id") or gen.get("pad_token_id") or vocab),
                sampling_rate=rate,
                frame_rate=frame_rate,
                max_positions=int(decoder.get("max_position_embeddings", 2048)),
                heads=heads,
                head_dim=hidden // heads,
                top_k=int(gen.get("top_k") or DEFAULT_TOP_K),
                guidance=float(gen.get("guidance_scale") or DEFAULT_GUIDANCE),
                temperature=float(gen.get("temperature") or DEFAULT_TEMPERATURE),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{files.config} is not a MusicGen config ({exc!r})") from exc


@dataclass(frozen=True)
class SamplingParams:
    top_k: int
    temperature: float
    guidance: float

    def validate(self, vocab: int) -> None:
        if self.top_k < 1:
            raise UsageError(f"top-k must be >= 1 (got {self.top_k})")
        if self.top_k > vocab:
            raise UsageError(f"top-k must be <= {vocab} (got {self.top_k})")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise UsageError(f"temperature must be > 0 (got {self.temperature})")
        if not (self.guidance >= 1 and math.isfinite(self.guidance)):
            raise UsageError(f"guidance must be >= 1 (got {self.guidance}); 1 disables it")


def sample_tokens(
    logits: np.ndarray, params: SamplingParams, rng: np.random.Generator
) -> np.ndarray:
    """One token per row from (rows, vocab) logits; CFG rows are [cond; uncond].

    Guidance mixes the two halves; ``top_k == 1`` is greedy (argmax, no randomness).
    """
    scores = logits.astype(np.float32, copy=False)
    if params.guidance > 1:
        half = scores.shape[0] // 2
        cond, uncond = scores[:half], scores[half:]
        scores = uncond + params.guidance * (cond - uncond)
    if params.top_k == 1:
        return scores.argmax(axis=1)
    k = params.top_k
    top = np.argpartition(scores, -k, axis=1)[:, -k:] if k < scores.shape[1] else None
    top_scores = np.take_along_axis(scores, top, axis=1) if top is not None else scores
    z = top_scores / params.temperature
    weights = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(weights, axis=1)
    u = rng.random(scores.shape[0]) * cdf[:, -1]
    pick = (cdf < u[:, None]).sum(axis=1).clip(max=cdf.shape[1] - 1)
    if top is None:
        return pick
    return top[np.arange(top.shape[0]), pick]


class DelayPattern:
    """The staggered token grid of one window: codebook k runs k positions behind codebook 0.

    Position 0 holds the start token. Codebook k's frame f sits at position f + k + 1;
    ``forced`` holds the pads of the stagger and any prompt codes, -1 where tokens are sampled.
    """

    def __init__(
        self, frames: int, num_codebooks: int, pad: int, prompt: np.ndarray | None = None
    ) -> None:
        k_count = num_codebooks
        self.length = frames + k_count
        forced = np.full((k_count, self.length), -1, dtype=np.int64)
        for k in range(k_count):
            forced[k, : k + 1] = pad
            tail = k_count - 1 - k
            if tail:
                forced[k, self.length - tail :] = pad
        prompt_frames = 0
        if prompt is not None and prompt.shape[1]:
            prompt_frames = prompt.shape[1]
            for k in range(k_count):
                forced[k, 1 + k : 1 + k + prompt_frames] = prompt[k]
        self.forced = forced
        self.free = forced < 0
        self.tokens = np.where(self.free, pad, forced)
        self.prefill = prompt_frames + 1  # positions known before the first sampled one

    @property
    def steps(self) -> int:
        """Decoder calls needed to fill the grid (the prefill call included)."""
        return self.length - self.prefill

    def put(self, position: int, sampled: np.ndarray) -> None:
        column = self.tokens[:, position]
        free = self.free[:, position]
        column[free] = sampled[free]

    def codes(self) -> np.ndarray:
        """Undo the stagger: (K, frames) codes, frame f of codebook k from position f + k + 1."""
        return self.frames(0, self.length - self.tokens.shape[0])

    def frames(self, start: int, end: int) -> np.ndarray:
        """(K, end - start) codes of frames [start, end), read across the stagger."""
        k_count = self.tokens.shape[0]
        return np.stack([self.tokens[k, 1 + k + start : 1 + k + end] for k in range(k_count)])

    def complete(self, position: int) -> int:
        """Frames complete once ``position`` is filled: every codebook has them."""
        return max(0, min(self.length - self.tokens.shape[0], position - self.tokens.shape[0] + 1))


@dataclass(frozen=True)
class WindowPlan:
    """How a track of ``frames`` frames is cut into windows of at most ``window`` frames."""

    frames: int
    window: int
    stride: int
    primed: int = 0  # frames of given codes that prime the first window

    def windows(self) -> list[tuple[int, int]]:
        """(prompt_frames, new_frames) for each window."""
        first = min(self.frames, self.window - self.primed)
        plan = [(self.primed, first)]
        made = first
        prompt = self.window - self.stride
        while made < self.frames:
            new = min(self.stride, self.frames - made)
            plan.append((prompt, new))
            made += new
        return plan

    def total_steps(self, num_codebooks: int) -> int:
        """Decoder calls for the whole track: each window fills new + K - 1 positions."""
        return sum(new + num_codebooks - 1 for _, new in self.windows())


class MusicGenEngine(EngineBase):
    """A loaded MusicGen export. Thread-compatible: one generation at a time per instance."""

    name = "musicgen"
    title = "sampling (MusicGen)"
    params = PARAMS
    channels = 1
    min_duration_s = MIN_DURATION_S
    max_duration_s = MAX_DURATION_S
    setup_params = ("compute_type",)
    derives = True
    # A step attends to every position before it: the last step of a 30 s window cost 1.6x the
    # first on the AMD 2-core machine, ~2.8x on the Intel one (tests/bench/bench_musicgen.py).
    # :meth:`measure_pace` replaces this guess with this machine's figures (``slowdown_for``).
    slowdown = 0.3

    def __init__(
        self,
        files: MusicGenFiles,
        options: RuntimeOptions | None = None,
        *,
        decoder: str = "auto",
        fast_quant: str | None = None,
        model_name: str | None = None,
        compute_type: str | None = None,
    ) -> None:
        options = options or RuntimeOptions()
        self.files = files
        self.model_name = model_name or files.text_encoder.parent.name
        self.config = MusicGenConfig.from_files(files)
        self.sample_rate = self.config.sampling_rate
        try:
            self._tokenizer = Tokenizer.from_file(str(files.tokenizer))
        except Exception as exc:
            raise ModelError(f"cannot read tokenizer {files.tokenizer}: {exc}") from exc
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_PROMPT_TOKENS)
        self.decoder_kind = self._pick_decoder(decoder, options)
        # The graphs run once per track (T5, the cross K/V projection) or once per chunk
        # (EnCodec) stay loaded: reading them again would delay each track's first chunk by
        # ~2 s (musicgen-small: 1.2 s T5, 0.4 s each of the others), for ~0.7 GB of memory.
        # No arena: their peak activations are given back after each run.
        self._text = load_session(
            files.text_encoder,
            options,
            inputs=("input_ids", "attention_mask"),
            outputs=("last_hidden_state",),
            arena=False,
        )
        self._encodec = load_session(
            files.encodec,
            options,
            inputs=("audio_codes",),
            outputs=("audio_values",),
            arena=False,
        )
        cfg = self.config
        if self.decoder_kind == "fast":
            quant = fast_quant or next(q for q in FAST_QUANTS if q in files.fast)
            if quant not in files.fast or files.cross_kv is None:
                raise ModelError(
                    f"no fast {quant} decoder in {files.onnx_dir}: build it with "
                    f"`lofi models optimize`"
                )
            self.fast_quant: str | None = quant
            self._decoder: DecoderRunner = FastDecoder(files.fast[quant], files.cross_kv, options)
        elif self.decoder_kind == "split":
            assert files.decoder and files.decoder_with_past
            self._decoder = SplitDecoder(
                files.decoder, files.decoder_with_past, options, cfg.heads, cfg.head_dim
            )
        else:
            assert files.decoder_merged
            self._decoder = MergedDecoder(files.decoder_merged, options, cfg.heads, cfg.head_dim)
        self.device = active_device(self._text)
        self.dtype = np.dtype(self._decoder.layout.dtype).name
        self.compute_type = (
            compute_type_of(self.fast_quant) if self.fast_quant else (compute_type or "auto")
        )
        self._unit_cost: tuple[float, float] | None = None  # measure_pace's (a, b)

    # -- pace ------------------------------------------------------------------------------------

    def measure_pace(self, repeats: int = PACE_REPEATS) -> tuple[float, float] | None:
        """Time what a unit of progress costs at the start and at the end of a window on this
        machine; :meth:`slowdown_for` then predicts any track's slowdown from it.

        A unit is a decoder step (timed at the window's first position and at its last, entered
        directly: see ``FastDecoder.seek``), its sampling, and its frame's share of EnCodec (a
        streamed chunk of n frames decodes 2n with its left context). Takes 0.6-0.9 s for
        musicgen-small on 2 cores, the sessions' first runs included. Only the fast decoder can
        enter a window at any position: with the others this returns None and the class's guess
        stands. Returns the cost model (a, b): a unit at position p costs a + b p seconds.
        """
        decoder = self._decoder
        if not isinstance(decoder, FastDecoder):
            return None
        cfg = self.config
        params = SamplingParams(cfg.top_k, cfg.temperature, cfg.guidance)
        copies = 2 if params.guidance > 1 else 1
        hidden, mask = self.encode_text("lofi")
        hidden, mask = np.concatenate([hidden] * copies), np.concatenate([mask] * copies)
        window = self.window_plan(1).window
        length = window + cfg.num_codebooks
        column = np.full((copies * cfg.num_codebooks, 1), cfg.pad_token_id, dtype=np.int64)
        rng = np.random.default_rng(0)

        def step_at(position: int) -> float:
            best = math.inf
            for _ in range(repeats):
                decoder.seek(position)
                started = time.perf_counter()
                sample_tokens(decoder.step(column), params, rng)
                best = min(best, time.perf_counter() - started)
            return best

        try:
            decoder.start(column, hidden, mask, capacity=length)
            first, last = step_at(1), step_at(length - 1)
        finally:
            decoder.release()
        codes = np.zeros((cfg.num_codebooks, 2 * CHUNK_FRAMES), dtype=np.int64)
        encodec = math.inf
        for _ in range(repeats):
            started = time.perf_counter()
            self._encodec_run(codes)
            encodec = min(encodec, time.perf_counter() - started)
        slope = max(last - first, 0.0) / (length - 2)
        self._unit_cost = (first - slope + encodec / CHUNK_FRAMES, slope)
        return self._unit_cost

    def slowdown_for(self, duration_s: float) -> float:
        """The slowdown k of a ``duration_s`` track (its last unit costs 1 + k times its
        first; averaged over the windows of a long one), from :meth:`measure_pace`'s figures;
        the class's guess until they are measured."""
        if self._unit_cost is None:
            return self.slowdown
        a, b = self._unit_cost
        steps = self.config.num_codebooks - 1
        units, cost = 0, 0.0
        for prompt, new in self.window_plan(self.frames_for(duration_s)).windows():
            n = new + steps  # positions prompt + 1 ... prompt + n
            units += n
            cost += n * a + b * n * (2 * prompt + n + 1) / 2
        first = a + b
        return max(2.0 * (cost / (first * units) - 1.0), 0.0)

    def _pick_decoder(self, decoder: str, options: RuntimeOptions) -> str:
        files = self.files
        self.fast_quant = None
        if decoder not in DECODERS:
            raise UsageError(f"decoder must be one of {', '.join(DECODERS)} (got {decoder!r})")
        if decoder == "fast" and not (files.fast and files.cross_kv):
            raise ModelError(
                f"no fast decoder in {files.onnx_dir}: build it with `lofi models optimize`"
            )
        if decoder == "merged" and not files.decoder_merged:
            raise ModelError(f"no decoder_model_merged.onnx in {files.onnx_dir}")
        if decoder == "split" and not files.has_split:
            raise ModelError(
                f"no decoder_model.onnx + decoder_with_past_model.onnx in {files.onnx_dir}"
            )
        if decoder != "auto":
            return decoder
        # lofi's rebuilt decoder is the CPU fast path (its in-place cache kernel is fp32 on CPU);
        # among the public files the split pair beats the merged graph (no If-node dispatch).
        on_cpu = options.providers()[0] == "CPUExecutionProvider"
        if on_cpu and files.fast and files.cross_kv:
            return "fast"
        return "split" if files.has_split else "merged"

    @classmethod
    def prepare(
        cls,
        model_dir: Path,
        options: RuntimeOptions,
        on_stage: StageCallback,
        *,
        quant: str | None = None,
        compute_type: str | None = None,
        derived: Path | None = None,
    ) -> Path | None:
        """Build (once) the fast CPU decoder ``compute_type`` asks for; returns it, or None where
        the exported graphs run (a GPU, or a model the builder does not understand with ``auto``).

        Files go to ``derived`` (lofi's own directory for this model: the model directory itself
        when lofi manages it, a cache entry otherwise). Without ``derived``, only models in
        lofi's models directory are built for: a directory the user passed is never written to.
        ``quant`` (``lofi models optimize``) builds that variant explicitly.
        """
        model_dir = Path(model_dir)
        if derived is None and models_dir().resolve() in model_dir.resolve().parents:
            derived = model_dir
        if quant is not None:
            return cls._build_fast(model_dir, quant, on_stage, derived)
        wanted = fast_quant_for(compute_type, options)
        if wanted is None or derived is None:
            return None
        built = find_fast(derived) if (derived / CROSS_KV).is_file() else {}
        explicit = compute_type not in (None, "auto")
        if wanted in built or (built and not explicit):
            return built.get(wanted) or next(iter(built.values()))
        # a broken model is said as such, before any build is announced (load would refuse it)
        MusicGenConfig.from_files(MusicGenFiles.find(model_dir))
        where = "" if derived == model_dir else f" into {derived} ({model_dir} is not written to)"
        on_stage(f"building the fast CPU decoder ({compute_type_of(wanted)}) once{where}")
        try:
            return cls._build_fast(model_dir, wanted, on_stage, derived)
        except ModelError as exc:
            if explicit:
                raise
            on_stage(f"keeping the exact decoder: {exc}")
            return None

    @staticmethod
    def _build_fast(
        model_dir: Path, quant: str, on_stage: StageCallback | None, out_dir: Path | None
    ) -> Path:
        from lofitui.convert.musicgen_fast import build_fast_decoder  # needs onnx: lazily

        if quant not in FAST_QUANTS:
            raise UsageError(f"unknown quantization {quant!r} (choose {', '.join(FAST_QUANTS)})")
        files = MusicGenFiles.find(model_dir)
        target = out_dir or files.onnx_dir
        built = find_fast(target)
        if quant in built and (target / CROSS_KV).is_file():
            return built[quant]
        config = MusicGenConfig.from_files(files)
        return build_fast_decoder(
            files.exact_source,
            target,
            heads=config.heads,
            max_positions=config.max_positions,
            quant=quant,
            on_stage=on_stage,
            text_encoder=files.text_encoder,
            tokenizer=files.tokenizer,
        )

    @classmethod
    def load(
        cls,
        model_dir: Path,
        options: RuntimeOptions | None = None,
        *,
        variant: str | None = None,
        decoder: str = "auto",
        fast_quant: str | None = None,
        model_name: str | None = None,
        compute_type: str | None = None,
        derived: Path | None = None,
    ) -> MusicGenEngine:
        """Open the model; ``derived`` is where its fast decoders were built (see ``prepare``),
        ``compute_type`` which one runs (None/auto: the best one built for a CPU)."""
        files = MusicGenFiles.find(Path(model_dir), variant)
        if derived is not None and Path(derived) != files.onnx_dir:
            cross = Path(derived) / CROSS_KV
            files = replace(
                files, fast=find_fast(Path(derived)), cross_kv=cross if cross.is_file() else None
            )
        if compute_type not in (None, "auto"):
            wanted = fast_quant_for(compute_type, options or RuntimeOptions())
            decoder, fast_quant = ("fast", wanted) if wanted else (decoder, None)
        return cls(
            files,
            options,
            decoder=decoder,
            fast_quant=fast_quant,
            model_name=model_name,
            compute_type=compute_type,
        )

    # -- the pipeline, piece by piece --------------------------------------------------------

    def frames_for(self, duration_s: float) -> int:
        return max(1, round(duration_s * self.config.frame_rate))

    def validate(self, request: TrackRequest) -> SamplingParams:
        if not request.prompt.strip():
            raise UsageError("the prompt is empty")
        d = request.duration_s
        if not (math.isfinite(d) and self.min_duration_s <= d <= self.max_duration_s):
            raise UsageError(
                f"duration must be between {self.min_duration_s:g} and "
                f"{self.max_duration_s:g} seconds for MusicGen (got {d:g})"
            )
        params = self.sampling_params(request)
        params.validate(self.config.vocab_size)
        self.prime_of(request)
        asked = request.param("compute_type", "auto")
        if asked not in ("auto", self.compute_type):
            raise UsageError(
                f"this MusicGen engine runs compute-type {self.compute_type}, not {asked}: "
                "load it again with that compute type"
            )
        return params

    def defaults(self) -> dict[str, float | int | str]:
        """The sampling parameters a request gets when it names none (from the model files)."""
        cfg = self.config
        return {
            "top_k": cfg.top_k,
            "temperature": cfg.temperature,
            "guidance": cfg.guidance,
            "compute_type": self.compute_type,
        }

    def sampling_params(self, request: TrackRequest) -> SamplingParams:
        cfg = self.config
        try:
            return SamplingParams(
                top_k=int(request.param("top_k", cfg.top_k)),
                temperature=float(request.param("temperature", cfg.temperature)),
                guidance=float(request.param("guidance", cfg.guidance)),
            )
        except (TypeError, ValueError) as exc:
            raise UsageError(f"invalid sampling parameter: {exc}") from exc

    def encode_text(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        """T5 hidden states (1, T, d) and mask (1, T) for one prompt."""
        ids = self._tokenizer.encode(prompt).ids
        input_ids = np.asarray([ids], dtype=np.int64)
        mask = np.ones_like(input_ids)
        (hidden,) = self._text.run(
            ["last_hidden_state"], {"input_ids": input_ids, "attention_mask": mask}
        )
        return hidden.astype(np.float32, copy=False), mask

    def window_plan(
        self,
        frames: int,
        window_frames: int | None = None,
        stride_frames: int | None = None,
        primed: int = 0,
    ) -> WindowPlan:
        """The windows of a ``frames``-long track (30 s windows, 18 s stride by default)."""
        cfg = self.config
        window = window_frames or min(
            round(DEFAULT_WINDOW_S * cfg.frame_rate), cfg.max_positions - cfg.num_codebooks
        )
        stride = stride_frames or round(window * DEFAULT_STRIDE_S / DEFAULT_WINDOW_S)
        if window + cfg.num_codebooks > cfg.max_positions:
            raise UsageError(
                f"window of {window} frames exceeds the model's {cfg.max_positions} positions"
            )
        if not 0 < stride <= window:
            raise UsageError(f"stride must be in 1..{window} frames (got {stride})")
        return WindowPlan(frames, window, stride, min(primed, window - stride))

    def prime_of(self, request: TrackRequest) -> np.ndarray | None:
        """The request's ``prime_codes`` as (K, F) codes, or None when it has none."""
        text = request.param(PRIME_PARAM, "")
        if not text:
            return None
        if not isinstance(text, str):
            raise UsageError(f"{PRIME_PARAM} must be text (base64 codes)")
        cfg = self.config
        return codes_from_text(text, cfg.num_codebooks, cfg.vocab_size)

    def continuation_params(self, request: TrackRequest, codes: np.ndarray) -> dict[str, str]:
        """Params that make a next track continue this one (flow mode).

        ``codes`` are the finished stream's; joined to ``request``'s own prime, their last
        ``window - stride`` frames (12 s) prime the next track, as a long track's next window.
        """
        plan = self.window_plan(1)
        prime = self.prime_of(request)
        joined = codes if prime is None else np.concatenate([prime, codes], axis=1)
        keep = plan.window - plan.stride
        return {PRIME_PARAM: codes_to_text(joined[:, max(0, joined.shape[1] - keep) :])}

    def generate_codes(
        self,
        prompt: str,
        frames: int,
        params: SamplingParams,
        *,
        seed: int,
        window_frames: int | None = None,
        stride_frames: int | None = None,
        prime: np.ndarray | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> np.ndarray:
        """Sample (K, frames) EnCodec codes for ``prompt`` (continuing ``prime`` if given)."""
        blocks = self.iter_codes(
            prompt,
            frames,
            params,
            seed=seed,
            window_frames=window_frames,
            stride_frames=stride_frames,
            prime=prime,
            on_progress=on_progress,
            cancel=cancel,
        )
        with closing(blocks):
            return np.concatenate(list(blocks), axis=1)

    def iter_codes(
        self,
        prompt: str,
        frames: int,
        params: SamplingParams,
        *,
        seed: int,
        window_frames: int | None = None,
        stride_frames: int | None = None,
        prime: np.ndarray | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[np.ndarray]:
        """Yield the track's codes as (K, n) blocks of frames, each as soon as it is complete.

        A frame is complete when the last codebook has it (K - 1 steps after the first, by the
        delay pattern). ``prime``'s last ``window - stride`` frames prime the first window.
        """
        cfg = self.config
        k_count = cfg.num_codebooks
        history = [np.zeros((k_count, 0), dtype=np.int64)]  # the prime, then every block
        if prime is not None:
            history.append(np.asarray(prime, dtype=np.int64).reshape(k_count, -1))
        plan = self.window_plan(frames, window_frames, stride_frames, history[-1].shape[1])
        hidden, mask = self.encode_text(prompt)
        if params.guidance > 1:  # unconditional rows: zero hidden states, zero mask
            hidden = np.concatenate([hidden, np.zeros_like(hidden)])
            mask = np.concatenate([mask, np.zeros_like(mask)])
        rng = np.random.default_rng(seed)
        meter = ProgressMeter(plan.total_steps(k_count), "token", on_progress)
        try:
            for prompt_frames, new_frames in plan.windows():
                history = [np.concatenate(history, axis=1)]
                prime_codes = history[0][:, -prompt_frames:] if prompt_frames else None
                grid = DelayPattern(
                    prompt_frames + new_frames, k_count, cfg.pad_token_id, prime_codes
                )
                done = prompt_frames
                for position in self._fill(grid, hidden, mask, params, rng, meter, cancel):
                    complete = grid.complete(position)
                    if complete > done:
                        block = grid.frames(done, complete)
                        history.append(block)
                        done = complete
                        yield block
        finally:
            self._decoder.release()  # the KV cache is not needed between tracks

    def _fill(
        self,
        grid: DelayPattern,
        hidden: np.ndarray,
        mask: np.ndarray,
        params: SamplingParams,
        rng: np.random.Generator,
        meter: ProgressMeter,
        cancel: CancelToken | None,
    ) -> Iterator[int]:
        """Sample the grid's free positions one step at a time; yield each filled position."""
        copies = 2 if params.guidance > 1 else 1
        tokens = grid.tokens
        if cancel:
            cancel.check()
        logits = self._decoder.start(
            np.tile(tokens[:, : grid.prefill], (copies, 1)), hidden, mask, capacity=grid.length
        )
        for position in range(grid.prefill, grid.length):
            if position > grid.prefill:
                if cancel:
                    cancel.check()
                column = np.tile(tokens[:, position - 1 : position], (copies, 1))
                logits = self._decoder.step(column)
            grid.put(position, sample_tokens(logits, params, rng))
            meter.advance()
            yield position

    def decode_codes(self, codes: np.ndarray, chunk_frames: int | None = None) -> np.ndarray:
        """EnCodec: (K, F) codes → mono float32 samples; in one piece, or incrementally in
        pieces growing to ``chunk_frames`` exactly as a stream decodes them."""
        if chunk_frames is None:
            return self._encodec_run(codes)
        return decode_in_chunks(self._encodec_run, codes, self.hop, chunk_frames)

    @property
    def hop(self) -> int:
        """Samples per EnCodec frame."""
        return round(self.config.sampling_rate / self.config.frame_rate)

    def _encodec_run(self, codes: np.ndarray) -> np.ndarray:
        (audio,) = self._encodec.run(["audio_values"], {"audio_codes": codes[None, None]})
        return audio.reshape(-1).astype(np.float32, copy=False)

    # -- the Engine protocol -----------------------------------------------------------------

    def stream(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        *,
        chunk_s: float | None = None,
        chunk_frames: int = CHUNK_FRAMES,
        first_frames: int = FIRST_CHUNK_FRAMES,
        window_frames: int | None = None,
        stride_frames: int | None = None,
    ) -> MusicGenStream:
        """Yield the track's audio in chunks as its frames are generated: ``first_frames``
        (0.3 s) first, then each as long as all before it, up to ``chunk_frames`` (1 s), or
        ``chunk_s`` seconds when given (a file render: each EnCodec call decodes its chunk plus
        50 frames of left context, so 5 s chunks halve EnCodec's share of a track).

        The chunks join without a seam into :meth:`generate`'s result; the returned stream's
        ``codes`` hold the track's (K, F) codes once it has ended (to prime a next track).
        Cancellation raises :class:`~lofitui.errors.Cancelled` between steps; nothing more is
        yielded after it.
        """
        params = self.validate(request)
        if chunk_s is not None:
            chunk_frames = max(1, round(chunk_s * self.config.frame_rate))
        prime = self.prime_of(request)
        frames = self.frames_for(request.duration_s)
        wanted = round(request.duration_s * self.sample_rate)

        def run(out: MusicGenStream) -> Iterator[Audio]:
            blocks = self.iter_codes(
                request.prompt,
                frames,
                params,
                seed=request.seed,
                window_frames=window_frames,
                stride_frames=stride_frames,
                prime=prime,
                on_progress=on_progress,
                cancel=cancel,
            )
            # A prime is the previous track's tail: left context for the first chunk, not emitted.
            decoder = EncodecStream(
                self._encodec_run,
                self.hop,
                chunk=chunk_frames,
                first=first_frames,
                context=prime,
            )
            made: list[np.ndarray] = []
            sent = 0
            with closing(blocks):
                for block in blocks:
                    made.append(block)
                    for chunk in decoder.push(block):
                        if cancel:
                            cancel.check()
                        piece = chunk[: max(0, wanted - sent)]
                        sent += len(piece)
                        if len(piece):
                            yield Audio(piece[:, None], self.sample_rate)
                if cancel:
                    cancel.check()
                tail = decoder.finish()[: max(0, wanted - sent)]
            out.codes = np.concatenate(made, axis=1)
            if len(tail):
                yield Audio(tail[:, None], self.sample_rate)

        return MusicGenStream(run)

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "model": self.model_name,
            "device": self.device,
            "dtype": self.dtype,
            "decoder": self.decoder_kind + (f"-{self.fast_quant}" if self.fast_quant else ""),
            "layers": self._decoder.layout.layers,
        }


class MusicGenStream(Iterator[Audio]):
    """The audio chunks of one track; ``codes`` holds its (K, F) codes once it has ended."""

    def __init__(self, run: Callable[[MusicGenStream], Iterator[Audio]]) -> None:
        self.codes: np.ndarray | None = None
        self._chunks = run(self)

    def __next__(self) -> Audio:
        return next(self._chunks)

    def close(self) -> None:
        """Stop generating (frees the decoder's cache at once)."""
        self._chunks.close()
