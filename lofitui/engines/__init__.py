"""Music generation engines: each turns a TrackRequest into Audio through ONNX Runtime."""

from lofitui.engines.base import (
    Audio,
    CancelToken,
    Engine,
    Progress,
    ProgressCallback,
    TrackRequest,
)

__all__ = ["Audio", "CancelToken", "Engine", "Progress", "ProgressCallback", "TrackRequest"]
