"""ACE-Step v1 latents -> 44.1 kHz stereo: the DCAE decoder in overlapping windows, the vocoder.

The published ``dcae_decoder.onnx`` takes exactly 128 latent frames. lofi.nvim decodes
butt-joined 128-frame windows, so every window edge is a seam. Here each window keeps only its
core: ``DCAE_CONTEXT`` frames of real neighbours on each inner side are decoded and trimmed away
(the first and last windows end where the track does, so no window is padded unless the whole
track is shorter than one). A decoder with a dynamic time axis decodes the track in one pass,
as the original does. The DCAE's attention spans a whole window, so windowed mels differ from a
single pass by a small amount that the test on the tiny fixture measures.

The vocoder (dynamic time axis) runs on each mel channel (stereo; a one-channel DCAE gives dual
mono) as the mel arrives, with ``VOCODER_CONTEXT`` mel frames of context either side trimmed
the same way, so audio is ready tile by tile and the joined tiles are one signal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import onnxruntime as ort

from lofitui.engines.acestep_v1_graph import Folding
from lofitui.engines.runtime import run_session
from lofitui.errors import ModelError

DCAE_CONTEXT = 16  # latent frames (128 mel frames, ~1.5 s) of context per inner window side
VOCODER_CONTEXT = 32  # mel frames (~0.37 s) of context per inner vocoder side

Check = Callable[[], None]


def _run(session: ort.InferenceSession, value: np.ndarray) -> np.ndarray:
    """A one-input graph (fed by position) -> its first output, float32."""
    name = session.get_inputs()[0].name
    return np.asarray(run_session(session, None, **{name: value})[0], dtype=np.float32)


def window_cores(length: int, window: int, context: int) -> list[tuple[int, int, int]]:
    """(window start, core start, core end) for each window over ``length`` latent frames.

    Windows are ``window`` frames long and lie inside the track; each core starts where the
    previous one ended and leaves ``context`` frames before the window's end unless the track
    ends there. One window (start 0) when the track fits in one.
    """
    if window <= 2 * context:
        raise ValueError(f"a {window}-frame window cannot keep {context} frames each side")
    if length <= window:
        return [(0, 0, length)]
    cores = []
    core_start = 0
    while core_start < length:
        start = max(0, core_start - context)
        if start + window >= length:
            start = length - window
            cores.append((start, core_start, length))
            break
        core_end = start + window - context
        cores.append((start, core_start, core_end))
        core_start = core_end
    return cores


class MelDecoder:
    """DCAE + vocoder sessions with what the graphs fold; latents [1, 8, 16, F] -> audio."""

    def __init__(
        self,
        dcae: ort.InferenceSession,
        vocoder: ort.InferenceSession,
        folding: Folding,
        context: int = DCAE_CONTEXT,
        mel_context: int = VOCODER_CONTEXT,
    ) -> None:
        self.dcae = dcae
        self.vocoder = vocoder
        self.folding = folding
        self.context = context
        self.mel_context = mel_context
        frames = dcae.get_inputs()[0].shape[-1]
        # A fixed axis is an int; a dynamic one a name (or None).
        self.window = frames if isinstance(frames, int) and frames > 0 else None

    def mels(self, latents: np.ndarray, check: Check) -> Iterator[np.ndarray]:
        """The mel spectrogram [channels, bins, frames] in [-11, 3], one piece per DCAE window."""
        z = self.folding.latents_in(np.asarray(latents, dtype=np.float32))
        length = z.shape[-1]
        if self.window is None:
            check()
            yield self._mel(z, length)
            return
        for start, core_start, core_end in window_cores(length, self.window, self.context):
            check()
            piece = z[..., start : start + self.window]
            real = piece.shape[-1]
            if real < self.window:  # the whole track is shorter than one window
                piece = np.pad(piece, ((0, 0),) * 3 + ((0, self.window - real),))
            mel = self._mel(piece, self.window)
            stride = mel.shape[-1] // self.window
            yield mel[..., (core_start - start) * stride : (core_end - start) * stride]

    def _mel(self, z: np.ndarray, frames: int) -> np.ndarray:
        mel = _run(self.dcae, np.ascontiguousarray(z))
        if mel.ndim == 3:  # [1, bins, T]: one channel
            mel = mel[:, None]
        if mel.ndim != 4 or mel.shape[-1] % frames:
            raise ModelError(
                f"the DCAE decoder gave a mel of shape {mel.shape} for {frames} frames"
            )
        return self.folding.mel_out(mel[0])

    def audio(self, latents: np.ndarray, check: Check) -> Iterator[np.ndarray]:
        """44.1 kHz audio [2, samples], one piece per DCAE window, as each is vocoded.

        Each piece is vocoded once the mel after it is known ``mel_context`` frames ahead (the
        last with the track's end), so the pieces join into one seamless signal.
        """
        mel = np.zeros((0, 0, 0), np.float32)
        done = 0  # mel frames vocoded so far
        pieces = self.mels(latents, check)
        piece = next(pieces)
        while piece is not None:
            mel = piece if mel.size == 0 else np.concatenate([mel, piece], axis=-1)
            piece = next(pieces, None)
            end = mel.shape[-1] if piece is None else mel.shape[-1] - self.mel_context
            if end > done:
                check()
                yield self._vocode(mel, done, end)
                done = end

    def _vocode(self, mel: np.ndarray, start: int, end: int) -> np.ndarray:
        lo = max(0, start - self.mel_context)
        hi = min(mel.shape[-1], end + self.mel_context)
        channels = []
        for channel in mel[:, :, lo:hi]:
            wave = _run(self.vocoder, channel[None]).reshape(-1)
            hop = wave.shape[0] // (hi - lo)
            channels.append(wave[(start - lo) * hop : (end - lo) * hop])
        if len(channels) == 1:  # a one-channel DCAE: dual mono
            channels *= 2
        return np.stack(channels[:2])
