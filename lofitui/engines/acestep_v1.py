"""ACE-Step v1 (3.5B) on ONNX Runtime: the files lofi.nvim publishes, sampled as the original does.

Runs a directory holding ``tokenizer.json``, ``text_encoder.onnx`` (UMT5),
``transformer_encoder.onnx``, ``transformer_decoder.onnx`` (+ ``transformer_decoder_weights.bin``),
``dcae_decoder.onnx`` and ``vocoder.onnx`` as published (or as ``lofi models export ace-step-v1``
writes them). The computation is the original ``ACEStepPipeline.text2music_diffusion_process``
with ERG off:

1. the prompt -> UMT5 (at most 256 tokens) -> ``transformer_encoder`` with a zero speaker and,
   for instrumentals, the lyric ids/mask [[0]]/[[0]]; the unconditional sequence is the same call
   with zero text states, zero speaker and zero lyric ids, decoded with the conditional mask;
2. flow matching over the original FlowMatch schedule (:mod:`lofitui.engines.flow`): Euler and
   Heun with the omega mean-shift, or PingPong re-noised from the request's one generator; APG
   (or cfg / cfg_star) only inside the guidance interval, one conditional pass elsewhere;
3. the DCAE in overlapping windows and the vocoder per mel channel
   (:mod:`lofitui.engines.acestep_v1_decode`), then 44.1 -> 48 kHz with lofi's resampler.

ERG (the original's default "energy" guidance) scales attention queries inside the text encoder,
the lyric encoder and the transformer: it needs different graphs, so it is not offered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from lofitui.audio.resample import StreamResampler
from lofitui.audio.types import Audio
from lofitui.convert.formats import (
    ACESTEP_V1_DECODER_WEIGHTS,
    ACESTEP_V1_DEFAULTS,
    ACESTEP_V1_FILES,
)
from lofitui.engines.acestep import SCHEDULER_PARAM, Conditioning
from lofitui.engines.acestep_text import open_tokenizer, tokenize
from lofitui.engines.acestep_v1_decode import MelDecoder
from lofitui.engines.acestep_v1_graph import read_folding
from lofitui.engines.base import (
    CancelToken,
    EngineBase,
    Param,
    ParamValue,
    ProgressCallback,
    ProgressMeter,
    TrackRequest,
    check_cancelled,
)
from lofitui.engines.flow import (
    V1_GUIDANCE_MODES,
    Guidance,
    GuidanceWindow,
    Noise,
    evaluations,
    flowmatch_schedule,
    generator_noise,
    model_timestep,
    sample,
)
from lofitui.engines.runtime import (
    RuntimeOptions,
    active_device,
    input_dtype,
    load_session,
    run_session,
)
from lofitui.errors import ModelError, UsageError

ENGINE_NAME = "ace-step-v1"
NATIVE_RATE = 44_100
OUTPUT_RATE = 48_000
LATENT_HOP = 512 * 8  # audio samples per latent frame: 512 per mel frame, 8 mel frames per latent
MAX_TEXT_TOKENS = 256
SPEAKER_DIM = 512
APG_AXES = (-2, -1)  # the original's norm and projection: over (16, frames) per (batch, channel)
# The published file set (shared with the exporter); the decoder's weights are its external data.
FILES = {k: v for k, v in ACESTEP_V1_FILES.items() if k != "transformer_decoder_weights"}
DECODER_WEIGHTS = ACESTEP_V1_DECODER_WEIGHTS
# Named I/O the runtime relies on (text encoder and vocoder are fed by position, as lofi.nvim does).
IO = {
    "transformer_encoder": (
        (
            "encoder_text_hidden_states",
            "text_attention_mask",
            "speaker_embeds",
            "lyric_token_idx",
            "lyric_mask",
        ),
        ("encoder_hidden_states", "encoder_hidden_mask"),
    ),
    "transformer_decoder": (
        (
            "hidden_states",
            "attention_mask",
            "encoder_hidden_states",
            "encoder_hidden_mask",
            "timestep",
        ),
        ("sample",),
    ),
}
DEFAULTS: dict[str, ParamValue] = dict(ACESTEP_V1_DEFAULTS)  # the original ``__call__``'s

PARAMS = (
    Param("lyrics", str, "song lyrics (default: instrumental)", "--lyrics", "TEXT", multiline=True),
    Param("steps", int, "diffusion steps (default 60)", "--steps", "N", minimum=1, maximum=200),
    SCHEDULER_PARAM,
    Param("guidance", float, "guidance scale (default 15)", "--guidance", "G", 15.0, 0, 100),
    Param(
        "guidance_mode",
        str,
        "how guidance mixes: apg, cfg or cfg_star (default apg)",
        "--guidance-mode",
        default="apg",
        choices=V1_GUIDANCE_MODES,
    ),
    Param(
        "omega",
        float,
        "Euler/Heun mean-shift strength (default 10; 0: off)",
        "--omega",
        "W",
        default=10.0,
        minimum=-100,
        maximum=100,
    ),
    Param(
        "guidance_interval",
        float,
        "share of the steps, centred, that are guided (default 0.5)",
        "--guidance-interval",
        "F",
        default=0.5,
        minimum=0,
        maximum=1,
    ),
    Param(
        "guidance_decay",
        float,
        "how far guidance falls to --min-guidance across the interval (default 0)",
        "--guidance-decay",
        "F",
        default=0.0,
        minimum=0,
        maximum=1,
    ),
    Param(
        "min_guidance",
        float,
        "guidance scale the decay falls toward (default 3)",
        "--min-guidance",
        "G",
        default=3.0,
        minimum=0,
        maximum=100,
    ),
)

# (evaluation index, sigma, conditional v, unconditional v or None, the v the sampler used)
EvaluationHook = Callable[[int, float, np.ndarray, np.ndarray | None, np.ndarray], None]


@dataclass(frozen=True)
class AceStepV1Settings:
    """Everything one ACE-Step v1 generation depends on, checked against the declared params."""

    prompt: str
    duration_s: float
    seed: int = 0
    lyrics: str = ""
    steps: int = 60
    scheduler: str = "euler"
    guidance: float = 15.0
    guidance_mode: str = "apg"
    omega: float = 10.0
    guidance_interval: float = 0.5
    guidance_decay: float = 0.0
    min_guidance: float = 3.0

    @classmethod
    def from_request(cls, request: TrackRequest) -> AceStepV1Settings:
        values: dict[str, Any] = {}
        for param in PARAMS:
            value = request.params.get(param.name)
            if value is None:
                value = DEFAULTS.get(param.name, "")
            values[param.name] = param.convert(value) if value != "" else value
        settings = cls(
            prompt=request.prompt, duration_s=float(request.duration_s), seed=request.seed, **values
        )
        if not settings.prompt.strip():
            raise UsageError("the prompt is empty: describe the music to generate")
        return settings

    @property
    def guided(self) -> bool:
        """The original guides unless the scale is 0 or 1."""
        return self.guidance not in (0.0, 1.0)

    def window(self) -> GuidanceWindow:
        return GuidanceWindow(
            self.steps, self.guidance_interval, self.guidance_decay, self.min_guidance
        )


def frame_count(duration_s: float) -> int:
    """Latent frames for ``duration_s`` seconds, as the original: floor(d * 44100 / 512 / 8)."""
    return int(duration_s * NATIVE_RATE / 512 / 8)


class AceStepV1Engine(EngineBase):
    """A loaded ACE-Step v1 model directory that follows the Engine protocol."""

    name = ENGINE_NAME
    title = (
        "ACE-Step v1 (--engine ace-step-v1; 5 to 240 s per track, 48 kHz stereo; it also takes "
        "--steps (default 60), --scheduler and --guidance (default 15) from the group above)"
    )
    params = PARAMS
    channels = 2
    sample_rate = OUTPUT_RATE
    min_duration_s = 5.0
    max_duration_s = 240.0

    def __init__(
        self,
        model_dir: Path,
        sessions: dict[str, ort.InferenceSession],
        tokenizer: Tokenizer,
        decoder: MelDecoder,
    ) -> None:
        self.model_dir = model_dir
        self.model_name = model_dir.name
        self.sessions = sessions
        self.tokenizer = tokenizer
        self.decoder = decoder

    @classmethod
    def load(cls, model_dir: Path, options: RuntimeOptions) -> AceStepV1Engine:
        model_dir = Path(model_dir)
        missing = [
            name for name in (*FILES.values(), DECODER_WEIGHTS) if not (model_dir / name).is_file()
        ]
        if missing:
            raise ModelError(
                f"{model_dir} is not an ACE-Step v1 model directory: it lacks {', '.join(missing)}"
            )
        paths = {key: model_dir / name for key, name in FILES.items()}
        folding = read_folding(model_dir, paths["dcae_decoder"])
        sessions = {}
        for key in (
            "text_encoder",
            "transformer_encoder",
            "transformer_decoder",
            "dcae_decoder",
            "vocoder",
        ):
            ins, outs = IO.get(key, ((), ()))
            sessions[key] = load_session(paths[key], options, inputs=ins, outputs=outs)
        tokenizer = open_tokenizer(paths["tokenizer"], MAX_TEXT_TOKENS)
        decoder = MelDecoder(sessions["dcae_decoder"], sessions["vocoder"], folding)
        return cls(model_dir, sessions, tokenizer, decoder)

    # -- Engine protocol ---------------------------------------------------------------------

    @classmethod
    def check(cls, request: TrackRequest) -> None:
        """The declared bounds and a non-empty prompt (no weights needed)."""
        super().check(request)
        AceStepV1Settings.from_request(request)

    def defaults(self) -> dict[str, ParamValue]:
        """The original pipeline's defaults (60 Euler steps, APG 15 on the middle half...)."""
        return dict(DEFAULTS)

    def describe(self) -> dict[str, Any]:
        decoder = self.sessions["transformer_decoder"]
        return {
            "engine": self.name,
            "model": self.model_name,
            "device": active_device(decoder),
            "dtype": np.dtype(input_dtype(decoder, "hidden_states")).name,
            "dcae": f"{self.decoder.window}-frame windows" if self.decoder.window else "one pass",
            "dcae_scaling": self.decoder.folding.describe(),
        }

    def validate(self, request: TrackRequest) -> AceStepV1Settings:
        self.check(request)
        settings = AceStepV1Settings.from_request(request)
        if settings.lyrics.strip():
            raise UsageError(
                f"{self.model_name} has no lyric vocabulary (the published ACE-Step v1 files "
                "ship none): ace-step-v1 makes instrumentals only; drop --lyrics"
            )
        return settings

    def stream(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        *,
        chunk_s: float | None = None,
    ) -> Iterator[Audio]:
        """48 kHz stereo, one piece per DCAE window (~9 s), each as soon as it is vocoded (the
        scheduler plans on the longest piece it has seen). ``chunk_s`` is not used: the model
        fixes the pieces. Cancellable between evaluations and windows."""
        settings = self.validate(request)
        return self.render_stream(settings, on_progress=on_progress, cancel=cancel)

    # -- the pipeline, step by step (public for tests and tools) ----------------------------

    def render_stream(
        self,
        settings: AceStepV1Settings,
        noise: np.ndarray | None = None,
        step_noise: Noise | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        on_evaluation: EvaluationHook | None = None,
    ) -> Iterator[Audio]:
        """The track at 48 kHz, one piece per DCAE window as it is decoded. ``noise``
        [1, 8, 16, F] and ``step_noise`` (PingPong's draws) replace the seed's generator, which
        otherwise gives both in turn."""
        rng = np.random.default_rng(settings.seed)
        shape = (1, 8, 16, frame_count(settings.duration_s))
        if noise is None:
            noise = rng.standard_normal(shape, dtype=np.float32)
        elif noise.shape != shape:
            raise ValueError(f"noise must be {shape}, got {noise.shape}")
        waves = self.render_native(
            settings, noise, step_noise or generator_noise(rng), on_progress, cancel, on_evaluation
        )
        resampler = StreamResampler(NATIVE_RATE, OUTPUT_RATE, self.channels)
        written = 0
        for wave in waves:
            check_cancelled(cancel)
            piece = resampler.push(Audio(np.ascontiguousarray(wave.T), NATIVE_RATE))
            if piece.frames:
                written += piece.frames
                yield piece
        check_cancelled(cancel)
        tail = resampler.flush().samples
        # The original's floor(frames) ends up to 93 ms early: silence brings the track to the
        # length asked for, as every engine's tracks are.
        missing = round(settings.duration_s * OUTPUT_RATE) - written - tail.shape[0]
        if missing > 0:
            tail = np.concatenate([tail, np.zeros((missing, self.channels), np.float32)])
        yield Audio(tail, OUTPUT_RATE)

    def render_native(
        self,
        settings: AceStepV1Settings,
        noise: np.ndarray,
        step_noise: Noise,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        on_evaluation: EvaluationHook | None = None,
    ) -> Iterator[np.ndarray]:
        """44.1 kHz audio [2, samples] per DCAE window, each as it is vocoded, from ``noise``."""
        meter = ProgressMeter(evaluations(settings.scheduler, settings.steps), "step", on_progress)
        check_cancelled(cancel)
        cond, uncond = self.encode(settings.prompt)
        latents = self.denoise(
            noise, cond, uncond, settings, step_noise, meter, cancel, on_evaluation
        )
        yield from self.decoder.audio(latents, lambda: check_cancelled(cancel))

    def encode(self, prompt: str) -> tuple[Conditioning, Conditioning]:
        """The conditional and unconditional cross-attention sequences (batch 1), as the
        original builds them with ERG off."""
        tokens = tokenize(self.tokenizer, prompt)
        text_encoder = self.sessions["text_encoder"]
        ids_in, mask_in = (arg.name for arg in text_encoder.get_inputs()[:2])  # fed by position
        mask = tokens.mask.astype(np.int64)
        text = run_session(text_encoder, None, **{ids_in: tokens.ids, mask_in: mask})[0]
        speaker = np.zeros((1, SPEAKER_DIM), np.float32)
        lyric_ids = lyric_mask = np.zeros((1, 1), np.int64)  # no lyrics, as the original
        cond = self._encode(text, mask, speaker, lyric_ids, lyric_mask)
        uncond = self._encode(
            np.zeros_like(text), mask, speaker, np.zeros_like(lyric_ids), lyric_mask
        )
        return cond, Conditioning(uncond.hidden_states, cond.attention_mask)

    def _encode(self, text, mask, speaker, lyric_ids, lyric_mask) -> Conditioning:
        hidden, hidden_mask = self._run(
            "transformer_encoder",
            encoder_text_hidden_states=text,
            text_attention_mask=mask,
            speaker_embeds=speaker,
            lyric_token_idx=lyric_ids,
            lyric_mask=lyric_mask,
        )
        return Conditioning(hidden.astype(np.float32), hidden_mask.astype(np.float32))

    def velocity(self, x: np.ndarray, sigma: float, cond: Conditioning) -> np.ndarray:
        """One transformer evaluation at ``sigma`` (timestep sigma * 1000)."""
        (v,) = self._run(
            "transformer_decoder",
            hidden_states=x,
            attention_mask=np.ones((1, x.shape[-1]), np.float32),
            encoder_hidden_states=cond.hidden_states,
            encoder_hidden_mask=cond.attention_mask,
            timestep=np.asarray([model_timestep(sigma)], np.float32),
        )
        return v.astype(np.float32)

    def denoise(
        self,
        noise: np.ndarray,
        cond: Conditioning,
        uncond: Conditioning,
        settings: AceStepV1Settings,
        step_noise: Noise,
        meter: ProgressMeter | None = None,
        cancel: CancelToken | None = None,
        on_evaluation: EvaluationHook | None = None,
    ) -> np.ndarray:
        """Integrate the flow from ``noise`` to clean latents [1, 8, 16, F]."""
        guidance = Guidance(settings.guidance, settings.guidance_mode, axes=APG_AXES)
        window = settings.window()
        index = 0

        def velocity(x: np.ndarray, sigma: float) -> np.ndarray:
            nonlocal index
            check_cancelled(cancel)
            scale = window.scale(index, settings.guidance) if settings.guided else None
            v_cond = self.velocity(x, sigma, cond)
            v_uncond = None if scale is None else self.velocity(x, sigma, uncond)
            v = v_cond if v_uncond is None else guidance.combine(v_cond, v_uncond, scale, index)
            if on_evaluation is not None:
                on_evaluation(index, sigma, v_cond, v_uncond, v)
            index += 1
            if meter is not None:
                meter.advance()
            return v

        schedule = flowmatch_schedule(settings.steps)
        return sample(
            noise, schedule, velocity, settings.scheduler, noise=step_noise, omega=settings.omega
        )

    def _run(self, component: str, **inputs: np.ndarray) -> list[np.ndarray]:
        return run_session(self.sessions[component], IO[component][1], **inputs)
