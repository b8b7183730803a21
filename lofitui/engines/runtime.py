"""ONNX Runtime sessions: execution-provider choice, threads, and clear load errors."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lofitui.convert.formats import DEFAULT_FAST_QUANT, FAST_FALLBACKS, NBITS_MIN_ORT
from lofitui.devices import DEVICE_CHOICES, DEVICE_PROVIDERS
from lofitui.errors import DeviceError, ModelError

_INSTALL_HINT = {
    "cuda": "install the CUDA build: pip uninstall onnxruntime && pip install 'lofitui[cuda]'",
    "coreml": "CoreML needs macOS with onnxruntime's own macOS wheel",
}

_NUMPY_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class RuntimeOptions:
    """How sessions are created: ``device`` is auto/cuda/coreml/cpu; ``threads`` 0 = ORT default."""

    device: str = "auto"
    threads: int = 0

    def providers(self) -> list[str]:
        return resolve_providers(self.device)


def ort_version() -> tuple[int, int]:
    """The installed onnxruntime's (major, minor)."""
    major, minor = ort.__version__.split(".")[:2]
    return int(major), int(minor)


def default_fast_quant() -> str:
    """The fast decoder's quantization to build unasked: the first of the default and its
    fallbacks that this onnxruntime's CPU kernels run (int8 runs everywhere)."""
    have = ort_version()
    return next(
        q for q in (DEFAULT_FAST_QUANT, *FAST_FALLBACKS) if have >= NBITS_MIN_ORT.get(q, (0, 0))
    )


def available_devices() -> list[str]:
    offered = set(ort.get_available_providers())
    return [name for name, provider in DEVICE_PROVIDERS.items() if provider in offered]


def resolve_providers(device: str = "auto") -> list[str]:
    """Providers to hand to ONNX Runtime, best first; CPU is always the fallback."""
    device = device.lower()
    if device not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device {device!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    offered = ort.get_available_providers()
    if device == "auto":
        chosen = [p for p in DEVICE_PROVIDERS.values() if p in offered]
        return chosen or ["CPUExecutionProvider"]
    provider = DEVICE_PROVIDERS[device]
    if provider not in offered:
        hint = _INSTALL_HINT.get(device, "")
        raise DeviceError(
            f"device {device!r} is not available in this onnxruntime "
            f"(offers: {', '.join(available_devices()) or 'none'})" + (f"; {hint}" if hint else "")
        )
    return [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]


def session_options(threads: int = 0, *, arena: bool = True) -> ort.SessionOptions:
    """``arena=False`` for graphs run once per track: their peak activations are given back."""
    opts = ort.SessionOptions()
    opts.enable_cpu_mem_arena = arena
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: ORT warnings are not the user's problem
    # Worker threads spin between operators instead of sleeping: a MusicGen step is ~40 short
    # operators, and waking sleeping threads for each cost 2-3 ms of a 15-20 ms step (the
    # player fell below real time on 2 cores). Measured with the player on 2 cores: no output
    # underflow, no gap, keypress-to-screen median 36 ms (tests/bench/bench_gaps.py,
    # bench_tui_latency.py); the threads block again when a run ends.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    return opts


def load_session(
    path: Path,
    options: RuntimeOptions,
    *,
    inputs: Iterable[str] = (),
    outputs: Iterable[str] = (),
    arena: bool = True,
) -> ort.InferenceSession:
    """Open one ONNX file, failing with one line that names the file when it is unusable.

    ``inputs``/``outputs`` are names the caller relies on; a file lacking them is refused here
    rather than failing obscurely at the first run.
    """
    if not path.is_file():
        raise ModelError(f"missing model file: {path}")
    try:
        session = ort.InferenceSession(
            os.fspath(path),
            sess_options=session_options(options.threads, arena=arena),
            providers=options.providers(),
        )
    except DeviceError:
        raise
    except Exception as exc:  # ORT raises several unrelated types for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load {path}: {reason[:300]}") from exc
    have_in = {i.name for i in session.get_inputs()}
    have_out = {o.name for o in session.get_outputs()}
    missing = [n for n in inputs if n not in have_in] + [n for n in outputs if n not in have_out]
    if missing:
        raise ModelError(
            f"{path} does not have the expected inputs/outputs (missing: {', '.join(missing[:4])}"
            + (", ..." if len(missing) > 4 else "")
            + ")"
        )
    return session


def input_dtype(session: ort.InferenceSession, name: str) -> np.dtype:
    """The numpy dtype of one session input (fp32 and fp16 exports differ here)."""
    for arg in session.get_inputs():
        if arg.name == name:
            return np.dtype(_NUMPY_DTYPES.get(arg.type, np.float32))
    raise KeyError(name)


def run_session(
    session: ort.InferenceSession, outputs: Sequence[str] | None, **inputs: np.ndarray
) -> list[np.ndarray]:
    """Run ``session``: float and integer inputs in the float or integer type the graph
    declares (fp32 and fp16 exports, int32 and int64 ids are fed alike), float16 outputs back
    as float32."""
    declared = {arg.name: arg.type for arg in session.get_inputs()}
    feed = {}
    for name, value in inputs.items():
        value = np.asarray(value)
        want = np.dtype(_NUMPY_DTYPES.get(declared.get(name, ""), value.dtype))
        if value.dtype.kind == want.kind or {value.dtype.kind, want.kind} <= {"i", "u"}:
            value = value.astype(want, copy=False)
        feed[name] = np.ascontiguousarray(value)
    results = session.run(None if outputs is None else list(outputs), feed)
    return [o.astype(np.float32) if o.dtype == np.float16 else o for o in results]


def active_device(session: ort.InferenceSession) -> str:
    provider = session.get_providers()[0]
    return next((name for name, p in DEVICE_PROVIDERS.items() if p == provider), provider)
