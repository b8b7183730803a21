"""The execution devices lofi knows, as plain data (no onnxruntime): config, CLI, runtime."""

from __future__ import annotations

from types import MappingProxyType

# Preference order for "auto": the fastest provider that the installed onnxruntime offers.
DEVICE_PROVIDERS = MappingProxyType(
    {
        "cuda": "CUDAExecutionProvider",
        "coreml": "CoreMLExecutionProvider",
        "cpu": "CPUExecutionProvider",
    }
)
DEVICE_CHOICES: tuple[str, ...] = ("auto", *DEVICE_PROVIDERS)
