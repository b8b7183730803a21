"""Engine names → engine classes, imported lazily so one engine's deps never slow another."""

from __future__ import annotations

import importlib
from pathlib import Path

from lofitui.engines.base import Engine
from lofitui.engines.runtime import RuntimeOptions
from lofitui.errors import UsageError

ENGINES: dict[str, str] = {
    "musicgen": "lofitui.engines.musicgen:MusicGenEngine",
    "ace-step": "lofitui.engines.acestep:AceStepEngine",
}


def engine_class(name: str) -> type:
    try:
        module, _, attr = ENGINES[name].partition(":")
    except KeyError:
        raise UsageError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}") from None
    return getattr(importlib.import_module(module), attr)


def load_engine(
    name: str,
    model_dir: Path,
    options: RuntimeOptions | None = None,
    *,
    model_name: str | None = None,
) -> Engine:
    """Load ``model_dir`` with the engine called ``name`` (sessions are created here)."""
    cls = engine_class(name)
    engine = cls.load(Path(model_dir), options or RuntimeOptions())
    if model_name:
        engine.model_name = model_name
    return engine
