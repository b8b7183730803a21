"""A real ONNX Runtime session that counts its runs: to see when an engine decodes what."""

from __future__ import annotations

from typing import Any


class CountingSession:
    """Delegates everything to ``session``; ``runs`` counts the calls to ``run``."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.runs = 0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.runs += 1
        return self.session.run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)
