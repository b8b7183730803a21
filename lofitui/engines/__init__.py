"""Music generation engines: each turns a TrackRequest into audio through ONNX Runtime."""

from lofitui.engines.base import (
    CancelToken,
    Engine,
    Progress,
    ProgressCallback,
    TrackRequest,
)

__all__ = ["CancelToken", "Engine", "Progress", "ProgressCallback", "TrackRequest"]
