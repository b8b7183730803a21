"""ACE-Step 1.5 on ONNX Runtime: text/condition encoders -> flow matching -> tiled VAE decode.

Runs the model directory written by ``lofi``'s exporter (:mod:`lofitui.convert.acestep`) with numpy
and onnxruntime only. The computation is diffusers' ``AceStepPipeline`` for text2music:

1. caption and lyric templates -> Qwen3 tokenizer (:mod:`lofitui.engines.acestep_text`);
2. ``text_encoder``: caption -> Qwen3 hidden states; lyric ids -> token embeddings;
3. ``condition_encoder``: text + lyrics + timbre (no reference audio: the silence latent)
   -> the packed cross-attention sequence;
4. flow matching from noise over the shifted schedule (:mod:`lofitui.engines.flow`), one
   ``transformer`` call per evaluation (batched [cond; null] where guidance applies);
5. ``vae_decoder`` in overlapping tiles -> 48 kHz stereo, as the VAE makes it: the reference
   pipeline's -1 dBFS peak normalisation is left to lofi's shared loudness normalisation
   (:mod:`lofitui.audio.loudness`), which every engine's tracks go through.

``stream`` yields the track tile by tile, each as soon as the VAE has decoded it (a tile is 5 s,
longer than the 1 s chunks the scheduler's start rule assumes of other engines: it plans on the
longest chunk it has seen instead). ``generate`` is the joined stream.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from lofitui.audio.types import Audio
from lofitui.convert.formats import ACESTEP_CONFIG_NAME, ACESTEP_FORMAT
from lofitui.engines.acestep_text import AceStepTokenizer, caption_text, lyric_text
from lofitui.engines.base import (
    CancelToken,
    EngineBase,
    Param,
    ProgressCallback,
    ProgressMeter,
    TrackRequest,
    check_cancelled,
)
from lofitui.engines.flow import (
    GUIDANCE_MODES,
    Guidance,
    check_scheduler,
    evaluations,
    sample,
    shifted_schedule,
)
from lofitui.engines.model_check import check_acestep
from lofitui.engines.runtime import (
    RuntimeOptions,
    active_device,
    input_dtype,
    load_session,
    run_session,
)
from lofitui.errors import ModelError, UsageError

ENGINE_NAME = "ace-step"
SUPPORTED_FORMAT_VERSIONS = (1,)
MIN_DURATION_S = 5.0
MAX_DURATION_S = 240.0
# VAE tiles: the decoder's receptive field is about +-9 latent frames, so 16 frames of overlap on
# each side make tiled decoding equal to one pass up to float rounding. 128 + 2*16 frames keep
# the largest activation of the full-size decoder near 160 MB (one pass over 60 s: ~1.5 GB).
TILE_FRAMES = 128
TILE_OVERLAP = 16
SCHEDULERS = ("euler", "heun", "pingpong")
_KEY_RE = re.compile(r"^([A-Ga-g])\s*([#♯b♭]?)\s*(major|minor|maj|min)$", re.IGNORECASE)


def key_scale(text: str) -> str:
    """'a minor', 'F#maj', 'Bb Major' -> 'A minor', 'F# major', 'Bb major' (the model's form)."""
    match = _KEY_RE.match(text.strip())
    if match is None:
        raise UsageError(f"--key {text!r}: use a note A-G, an optional # or b, and major or minor")
    note, accidental, scale = match.groups()
    accidental = {"♯": "#", "♭": "b"}.get(accidental, accidental)
    scale = "major" if scale.lower().startswith("maj") else "minor"
    return f"{note.upper()}{accidental} {scale}"


def time_signature(text: str) -> str:
    """'4', '4/4', '6/8' -> the beats per bar the model was trained with ('4', '6')."""
    beats = text.strip().split("/", 1)[0].strip()
    if beats not in ("2", "3", "4", "6"):
        raise UsageError(f"--time-signature {text!r}: use 2, 3, 4 or 6 beats per bar (or 3/4...)")
    return beats


# Shared with ACE-Step v1 (one --scheduler option for both).
SCHEDULER_PARAM = Param(
    "scheduler",
    str,
    "flow-matching sampler (default euler)",
    "--scheduler",
    default="euler",
    choices=SCHEDULERS,
)

PARAMS = (
    Param("lyrics", str, "song lyrics (default: instrumental)", "--lyrics", "TEXT", multiline=True),
    Param("bpm", int, "tempo in beats per minute", "--bpm", "N", minimum=1, maximum=400),
    Param(
        "keyscale",
        str,
        "key and scale, e.g. 'A minor' or 'F# major'",
        "--key",
        "KEY",
        normalise=key_scale,
    ),
    Param(
        "timesignature",
        str,
        "beats per bar: 2, 3, 4 or 6 (4/4 and 6/8 work too)",
        "--time-signature",
        "N",
        normalise=time_signature,
    ),
    Param(
        "steps",
        int,
        "diffusion steps (turbo default 8, base 32)",
        "--steps",
        "N",
        minimum=1,
        maximum=200,
    ),
    Param(
        "shift",
        float,
        "schedule shift (default 3)",
        "--shift",
        "S",
        default=3.0,
        minimum=0.01,
        maximum=100,
    ),
    SCHEDULER_PARAM,
    Param(
        "guidance",
        float,
        "guidance scale (base default 7; turbo ignores it)",
        "--guidance",
        "G",
        minimum=0,
        maximum=100,
    ),
    Param("language", str, "lyrics language code (default en)", default="en"),
    Param("guidance_mode", str, "how guidance mixes", default="apg", choices=GUIDANCE_MODES),
    Param("cfg_start", float, "where guidance starts (0-1)", default=0.0, minimum=0, maximum=1),
    Param("cfg_end", float, "where guidance ends (0-1)", default=1.0, minimum=0, maximum=1),
)

IO = {
    "text_encoder": (
        ("text_input_ids", "lyric_input_ids"),
        ("text_hidden_states", "lyric_hidden_states"),
    ),
    "condition_encoder": (
        (
            "text_hidden_states",
            "text_attention_mask",
            "lyric_hidden_states",
            "lyric_attention_mask",
            "refer_audio_acoustic",
        ),
        ("encoder_hidden_states", "encoder_attention_mask"),
    ),
    "transformer": (
        ("hidden_states", "timestep", "timestep_r", "encoder_hidden_states", "context_latents"),
        ("velocity",),
    ),
    "vae_decoder": (("latents",), ("audio",)),
}


@dataclass(frozen=True)
class Conditioning:
    """The packed cross-attention sequence for one prompt: [1, S, D] float32 and [1, S] bool."""

    hidden_states: np.ndarray
    attention_mask: np.ndarray


@dataclass(frozen=True)
class AceStepSettings:
    """Everything one ACE-Step generation depends on, validated."""

    prompt: str
    duration_s: float
    seed: int = 0
    lyrics: str = ""
    language: str = "en"
    bpm: int | None = None
    keyscale: str | None = None
    timesignature: str | None = None
    steps: int = 8
    shift: float = 3.0
    guidance: float = 1.0
    guidance_mode: str = "apg"
    cfg_interval: tuple[float, float] = (0.0, 1.0)
    scheduler: str = "euler"

    @classmethod
    def from_request(cls, request: TrackRequest, defaults: dict[str, Any]) -> AceStepSettings:
        """Read the request's params (``lyrics``, ``bpm``, ``keyscale``, ``timesignature``,
        ``language``, ``steps``, ``shift``, ``guidance``, ``guidance_mode``, ``cfg_start``,
        ``cfg_end``, ``scheduler``); the model's defaults fill the gaps."""
        bpm = request.param("bpm", None)
        ts = request.param("timesignature", None)
        settings = cls(
            prompt=request.prompt,
            duration_s=float(request.duration_s),
            seed=int(request.seed),
            lyrics=str(request.param("lyrics", "")),
            language=str(request.param("language", "en")),
            bpm=_as_int("bpm", bpm) if bpm not in (None, "") else None,
            keyscale=str(request.param("keyscale", "")) or None,
            timesignature=str(ts) if ts not in (None, "") else None,
            steps=_as_int("steps", request.param("steps", defaults.get("steps", 8))),
            shift=_as_float("shift", request.param("shift", defaults.get("shift", 3.0))),
            guidance=_as_float(
                "guidance", request.param("guidance", defaults.get("guidance", 1.0))
            ),
            guidance_mode=str(request.param("guidance_mode", "apg")).lower(),
            cfg_interval=(
                _as_float("cfg_start", request.param("cfg_start", 0.0)),
                _as_float("cfg_end", request.param("cfg_end", 1.0)),
            ),
            scheduler=str(request.param("scheduler", "euler")).lower(),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.prompt.strip():
            raise UsageError("the prompt is empty: describe the music to generate")
        if not 1 <= self.steps <= 200:
            raise UsageError(f"steps must be between 1 and 200, got {self.steps}")
        if not 0 < self.shift <= 100:
            raise UsageError(f"shift must be > 0, got {self.shift}")
        if self.guidance < 0:
            raise UsageError(f"guidance must be >= 0, got {self.guidance}")
        if self.guidance_mode not in GUIDANCE_MODES:
            raise UsageError(
                f"unknown guidance mode {self.guidance_mode!r}: choose {', '.join(GUIDANCE_MODES)}"
            )
        if self.bpm is not None and not 0 <= self.bpm <= 400:
            raise UsageError(f"bpm must be between 1 and 400, got {self.bpm}")
        check_scheduler(self.scheduler)
        Guidance(self.guidance, self.guidance_mode, self.cfg_interval)  # validates the interval


def _as_int(name: str, value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a whole number, got {value!r}") from None
    if not number.is_integer():
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def _as_float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    return number


class AceStepEngine(EngineBase):
    """A loaded ACE-Step 1.5 model (turbo, base or SFT) that follows the Engine protocol."""

    name = ENGINE_NAME
    title = "ACE-Step (--engine ace-step; 5 to 240 s per track, 48 kHz stereo)"
    params = PARAMS
    channels = 2
    min_duration_s = MIN_DURATION_S
    max_duration_s = MAX_DURATION_S

    def __init__(
        self,
        model_dir: Path,
        config: dict[str, Any],
        sessions: dict[str, ort.InferenceSession],
        tokenizer: AceStepTokenizer,
        silence_latent: np.ndarray,
        null_condition: np.ndarray | None,
    ) -> None:
        self.model_dir = model_dir
        self.model_name = model_dir.name
        self.config = config
        self.sessions = sessions
        self.tokenizer = tokenizer
        self.silence_latent = silence_latent
        self.null_condition = null_condition
        self.sample_rate = int(config["sample_rate"])
        self.hop_length = int(config["hop_length"])
        self.latent_rate = float(config["latent_rate"])
        self.latent_channels = int(config["latent_channels"])
        self.timbre_frames = int(config.get("timbre_frames", 750))
        self.is_turbo = bool(config.get("is_turbo", False))
        self.model_defaults = dict(config.get("defaults", {}))

    @classmethod
    def load(cls, model_dir: Path, options: RuntimeOptions) -> AceStepEngine:
        model_dir = Path(model_dir)
        config = read_config(model_dir)
        files = config["files"]
        graphs = {name: model_dir / files[name] for name in IO}
        check_acestep(model_dir / ACESTEP_CONFIG_NAME, config, graphs)  # before any session
        sessions = {
            name: load_session(model_dir / files[name], options, inputs=ins, outputs=outs)
            for name, (ins, outs) in IO.items()
        }
        tokenizer = AceStepTokenizer(model_dir / files["tokenizer"])
        silence = _load_npy(model_dir / files["silence_latent"], ndim=3)
        null = None
        if "null_condition_emb" in files:
            null = _load_npy(model_dir / files["null_condition_emb"], ndim=3)
        if silence.shape[-1] != int(config["latent_channels"]):
            raise ModelError(
                f"{model_dir}: silence latent has {silence.shape[-1]} channels, "
                f"expected {config['latent_channels']}"
            )
        return cls(model_dir, config, sessions, tokenizer, silence, null)

    # -- Engine protocol ---------------------------------------------------------------------

    @classmethod
    def check(cls, request: TrackRequest) -> None:
        """The declared bounds, then every setting a generation reads (no weights needed)."""
        super().check(request)
        AceStepSettings.from_request(request, {})

    def defaults(self) -> dict[str, Any]:
        """The model's own defaults (turbo: 8 steps, no guidance; base: 32 steps, guidance 7)."""
        return dict(self.model_defaults)

    def describe(self) -> dict[str, Any]:
        """What ran, for sidecar metadata: engine, model, device, variant."""
        transformer = self.sessions["transformer"]
        return {
            "engine": self.name,
            "model": self.model_name,
            "device": active_device(transformer),
            "dtype": np.dtype(input_dtype(transformer, "hidden_states")).name,
            "turbo": self.is_turbo,
        }

    def validate(self, request: TrackRequest) -> AceStepSettings:
        """Check the request before any work; returns the settings ``generate`` will use."""
        duration = float(request.duration_s)
        if not (math.isfinite(duration) and self.min_duration_s <= duration <= self.max_duration_s):
            raise UsageError(
                f"ACE-Step generates {self.min_duration_s:g} to {self.max_duration_s:g} seconds "
                f"(got a duration of {duration:g})"
            )
        return AceStepSettings.from_request(request, self.model_defaults)

    def stream(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        *,
        chunk_s: float | None = None,
    ) -> Iterator[Audio]:
        """Yield the track one VAE tile at a time (``TILE_FRAMES`` latent frames, ~5 s),
        whatever ``chunk_s`` asks.

        Cancellation raises :class:`~lofitui.errors.Cancelled` between steps and tiles.
        """
        settings = self.validate(request)
        return self.render_stream(settings, on_progress=on_progress, cancel=cancel)

    # -- the pipeline, step by step (public for tests and tools) ----------------------------

    def latent_length(self, duration_s: float) -> int:
        return math.ceil(duration_s * self.latent_rate)

    def render(
        self,
        settings: AceStepSettings,
        noise: np.ndarray | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        tile_frames: int | None = TILE_FRAMES,
    ) -> Audio:
        """The whole pipeline without the duration limits; ``noise`` [1, L, C] overrides seed."""
        stream = self.render_stream(settings, noise, on_progress, cancel, tile_frames)
        return Audio.join(stream)

    def render_stream(
        self,
        settings: AceStepSettings,
        noise: np.ndarray | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        tile_frames: int | None = TILE_FRAMES,
    ) -> Iterator[Audio]:
        """:meth:`render` tile by tile: one chunk per VAE tile, each as it is decoded
        (cancellable between steps and tiles)."""
        settings.validate()
        rng = np.random.default_rng(settings.seed)
        length = self.latent_length(settings.duration_s)
        if noise is None:
            noise = rng.standard_normal((1, length, self.latent_channels), dtype=np.float32)
        elif noise.shape != (1, length, self.latent_channels):
            raise ValueError(
                f"noise must be {(1, length, self.latent_channels)}, got {noise.shape}"
            )
        guidance = self.guidance(settings)
        return self._render_tiles(settings, noise, guidance, rng, on_progress, cancel, tile_frames)

    def _render_tiles(
        self,
        settings: AceStepSettings,
        noise: np.ndarray,
        guidance: Guidance,
        rng: np.random.Generator,
        on_progress: ProgressCallback | None,
        cancel: CancelToken | None,
        tile_frames: int | None,
    ) -> Iterator[Audio]:
        meter = ProgressMeter(evaluations(settings.scheduler, settings.steps), "step", on_progress)
        check_cancelled(cancel)
        cond = self.encode(
            settings.prompt,
            settings.duration_s,
            lyrics=settings.lyrics,
            language=settings.language,
            bpm=settings.bpm,
            keyscale=settings.keyscale,
            timesignature=settings.timesignature,
        )
        latents = self.denoise(
            noise,
            cond,
            steps=settings.steps,
            shift=settings.shift,
            guidance=guidance,
            scheduler=settings.scheduler,
            rng=rng,
            meter=meter,
            cancel=cancel,
        )
        for tile in self.decode_tiles(latents, tile_frames=tile_frames, cancel=cancel):
            check_cancelled(cancel)
            yield Audio(tile.T.copy(), self.sample_rate)

    def guidance(self, settings: AceStepSettings) -> Guidance:
        """Turbo models have guidance distilled in: the scale is forced to 1, as diffusers does."""
        scale = 1.0 if self.is_turbo else settings.guidance
        guidance = Guidance(scale, settings.guidance_mode, settings.cfg_interval)
        if guidance.enabled and self.null_condition is None:
            raise ModelError(f"{self.model_dir} has no null condition embedding: set guidance to 1")
        return guidance

    def encode(
        self,
        prompt: str,
        duration_s: float,
        lyrics: str = "",
        language: str = "en",
        bpm: int | None = None,
        keyscale: str | None = None,
        timesignature: str | None = None,
    ) -> Conditioning:
        """Caption + lyrics + silence timbre -> the packed condition sequence (batch 1)."""
        caption = self.tokenizer.caption(
            caption_text(
                prompt, duration_s, bpm=bpm, keyscale=keyscale, timesignature=timesignature
            )
        )
        lyric = self.tokenizer.lyrics(lyric_text(lyrics, language))
        text_hidden, lyric_hidden = self._run(
            "text_encoder", text_input_ids=caption.ids, lyric_input_ids=lyric.ids
        )
        refer = self.silence_latent[:, : self.timbre_frames]
        hidden, mask = self._run(
            "condition_encoder",
            text_hidden_states=text_hidden,
            text_attention_mask=caption.mask,
            lyric_hidden_states=lyric_hidden,
            lyric_attention_mask=lyric.mask,
            refer_audio_acoustic=refer,
        )
        return Conditioning(hidden.astype(np.float32), mask.astype(np.bool_))

    def context_latents(self, length: int) -> np.ndarray:
        """Source latents (the silence latent, tiled past its end) + an all-ones chunk mask."""
        silence = self.silence_latent
        repeats = -(-length // silence.shape[1])
        src = np.tile(silence, (1, repeats, 1))[:, :length] if repeats > 1 else silence[:, :length]
        mask = np.ones((1, length, self.latent_channels), dtype=np.float32)
        return np.concatenate([src.astype(np.float32), mask], axis=-1)

    def velocity(
        self,
        x: np.ndarray,
        t: float,
        cond: Conditioning,
        context: np.ndarray,
        guidance: Guidance,
    ) -> np.ndarray:
        """One DiT evaluation at t; batched [cond; null] and combined where guidance applies."""
        length = x.shape[1]
        pad = length % 2
        if pad:  # the DiT patchifies pairs of frames: zero-pad like diffusers does inside
            x = np.pad(x, ((0, 0), (0, 1), (0, 0)))
            context = np.pad(context, ((0, 0), (0, 1), (0, 0)))
        guided = guidance.applies(t)
        enc = cond.hidden_states
        if guided:
            null = np.broadcast_to(self.null_condition, enc.shape)
            x = np.concatenate([x, x])
            context = np.concatenate([context, context])
            enc = np.concatenate([enc, null])
        ts = np.full((x.shape[0],), t, dtype=np.float32)
        (v,) = self._run(
            "transformer",
            hidden_states=x,
            timestep=ts,
            timestep_r=ts,
            encoder_hidden_states=enc,
            context_latents=context,
        )
        v = v[:, :length].astype(np.float32)
        if guided:
            return guidance.combine(v[:1], v[1:])
        return v

    def denoise(
        self,
        noise: np.ndarray,
        cond: Conditioning,
        steps: int,
        shift: float,
        guidance: Guidance,
        scheduler: str = "euler",
        rng: np.random.Generator | None = None,
        meter: ProgressMeter | None = None,
        cancel: CancelToken | None = None,
        on_velocity: Any = None,
    ) -> np.ndarray:
        """Integrate the flow from noise [1, L, C] to clean latents [1, L, C]."""
        context = self.context_latents(noise.shape[1])
        schedule = shifted_schedule(steps, shift)

        def velocity(x: np.ndarray, t: float) -> np.ndarray:
            check_cancelled(cancel)
            v = self.velocity(x, t, cond, context, guidance)
            if on_velocity is not None:
                on_velocity(x, t, v)
            if meter is not None:
                meter.advance()
            return v

        return sample(noise.astype(np.float32), schedule, velocity, scheduler, rng)

    def decode(
        self,
        latents: np.ndarray,
        tile_frames: int | None = TILE_FRAMES,
        overlap: int = TILE_OVERLAP,
        cancel: CancelToken | None = None,
    ) -> np.ndarray:
        """Latents [1, L, C] -> audio [channels, L * hop]: :meth:`decode_tiles` joined."""
        tiles = self.decode_tiles(latents, tile_frames, overlap, cancel)
        return np.concatenate(list(tiles), axis=1)

    def decode_tiles(
        self,
        latents: np.ndarray,
        tile_frames: int | None = TILE_FRAMES,
        overlap: int = TILE_OVERLAP,
        cancel: CancelToken | None = None,
    ) -> Iterator[np.ndarray]:
        """Latents [1, L, C] -> audio [channels, tile_frames * hop] per tile, in order.

        Each tile decodes ``tile_frames`` frames plus ``overlap`` frames of context on each side
        and keeps only its core, so no tensor grows with the track's length; ``tile_frames=None``
        decodes in one pass (one piece).
        """
        z = np.ascontiguousarray(latents[0].T[None])  # [1, C, L]
        length = z.shape[-1]
        hop = self.hop_length
        if tile_frames is None or length <= tile_frames:
            check_cancelled(cancel)
            (audio,) = self._run("vae_decoder", latents=z)
            yield audio[0].astype(np.float32)
            return
        if tile_frames < 1 or overlap < 0:
            raise ValueError("tile_frames must be >= 1 and overlap >= 0")
        for core_start in range(0, length, tile_frames):
            check_cancelled(cancel)
            core_end = min(core_start + tile_frames, length)
            start, end = max(0, core_start - overlap), min(length, core_end + overlap)
            (tile,) = self._run("vae_decoder", latents=z[:, :, start:end])
            keep = tile[0, :, (core_start - start) * hop : (core_end - start) * hop]
            yield np.ascontiguousarray(keep, dtype=np.float32)

    def _run(self, component: str, **inputs: np.ndarray) -> list[np.ndarray]:
        return run_session(self.sessions[component], IO[component][1], **inputs)


def _load_npy(path: Path, ndim: int) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if array.ndim != ndim:
        raise ModelError(f"{path} has shape {array.shape}, expected {ndim} dimensions")
    return array.astype(np.float32)


def read_config(model_dir: Path) -> dict[str, Any]:
    """The exporter's ``acestep.json``, checked for the fields the runtime needs."""
    path = Path(model_dir) / ACESTEP_CONFIG_NAME
    if not path.is_file():
        raise ModelError(
            f"{model_dir} is not an exported ACE-Step model (no {ACESTEP_CONFIG_NAME}); "
            "export one with `lofi models export ace-step`"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if config.get("format") != ACESTEP_FORMAT:
        raise ModelError(f"{path} is not a lofi ACE-Step config")
    if config.get("format_version") not in SUPPORTED_FORMAT_VERSIONS:
        raise ModelError(
            f"{path} has format version {config.get('format_version')}; this lofi reads "
            f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}: re-export the model"
        )
    missing = [
        k
        for k in ("sample_rate", "hop_length", "latent_rate", "latent_channels", "files")
        if k not in config
    ]
    missing += [k for k in (*IO, "tokenizer", "silence_latent") if k not in config.get("files", {})]
    if missing:
        raise ModelError(f"{path} lacks {', '.join(missing)}")
    return config
