"""The tiny MusicGen fixture (tests/fixtures/musicgen-tiny) and the public layouts built from it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np

from lofitui.audio.types import Audio
from lofitui.engines.base import CancelToken, ProgressCallback, TrackRequest
from lofitui.engines.musicgen import MusicGenEngine
from lofitui.engines.runtime import RuntimeOptions

FIXTURE = Path(__file__).parent / "fixtures" / "musicgen-tiny"
ONNX_FILES = (
    "text_encoder.onnx",
    "decoder_model.onnx",
    "decoder_with_past_model.onnx",
    "decoder_model_merged.onnx",
    "encodec_decode.onnx",
)
META_FILES = ("config.json", "generation_config.json", "tokenizer.json")


def require_fixture() -> Path:
    """The fixture directory; a missing fixture is an error, never a skip."""
    missing = [
        f for f in (*META_FILES, *ONNX_FILES, "reference.npz") if not (FIXTURE / f).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"tiny MusicGen fixture incomplete ({', '.join(missing)} missing in {FIXTURE}); "
            "regenerate with tests/fixtures/make_musicgen.py"
        )
    return FIXTURE


@cache
def reference() -> dict[str, np.ndarray]:
    with np.load(require_fixture() / "reference.npz") as data:
        return {k: data[k] for k in data.files}


def gabotechs_layout(root: Path) -> Path:
    """gabotechs/music_gen: tiny/{config,tokenizer}.json beside tiny_fp32/ and tiny_fp16/."""
    src = require_fixture()
    (root / "tiny").mkdir(parents=True)
    for name in META_FILES:
        shutil.copy(src / name, root / "tiny" / name)
    for variant, from_dir in (("fp32", src), ("fp16", src / "fp16")):
        dest = root / f"tiny_{variant}"
        dest.mkdir()
        for name in ONNX_FILES:
            shutil.copy(from_dir / name, dest / name)
    return root


def xenova_layout(root: Path) -> Path:
    """Xenova/musicgen-small: configs at the root, onnx/ with merged decoder and _fp16 copies."""
    src = require_fixture()
    root.mkdir(parents=True, exist_ok=True)
    for name in META_FILES:
        shutil.copy(src / name, root / name)
    (root / "onnx").mkdir()
    for stem in ("text_encoder", "decoder_model_merged", "encodec_decode"):
        shutil.copy(src / f"{stem}.onnx", root / "onnx" / f"{stem}.onnx")
        shutil.copy(src / "fp16" / f"{stem}.onnx", root / "onnx" / f"{stem}_fp16.onnx")
    return root


def flat_copy(root: Path) -> Path:
    """A private copy of the flat fp32 layout (for tests that damage files)."""
    src = require_fixture()
    root.mkdir(parents=True, exist_ok=True)
    for name in (*META_FILES, *ONNX_FILES):
        shutil.copy(src / name, root / name)
    return root


class Throttled(MusicGenEngine):
    """The real tiny engine, its chunks delayed: ``delay_s`` per second of audio before each
    (``stall`` maps a chunk index to another delay). Slower than real time when ``delay_s`` > 1;
    ``stall={0: 0.5}`` holds the first chunk back, so a job reports progress before it can play."""

    delay_s = 0.0
    stall: dict[int, float]

    def stream(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        *,
        chunk_s: float | None = None,
    ) -> Iterator[Audio]:
        stall = getattr(self, "stall", {})
        for i, chunk in enumerate(super().stream(request, on_progress, cancel, chunk_s=chunk_s)):
            deadline = time.monotonic() + stall.get(i, self.delay_s * chunk.duration_s)
            while time.monotonic() < deadline:
                if cancel is not None:
                    cancel.check()
                time.sleep(0.01)
            yield chunk


def load_throttled(delay_s: float, stall: dict[int, float] | None = None) -> Throttled:
    """The tiny fixture as a :class:`Throttled` engine (one CPU thread)."""
    engine = Throttled.load(require_fixture(), RuntimeOptions("cpu", 1), model_name="tiny")
    engine.delay_s, engine.stall = delay_s, dict(stall or {})
    return engine
