"""Engine names → engine classes, imported lazily so one engine's deps never slow another.

The one list of engines: the CLI builds its option groups and config.toml its per-engine tables
from the classes' declared ``params``; adding an engine is one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from lofitui.engines.base import Engine, Param
from lofitui.errors import UsageError

if TYPE_CHECKING:
    pass

BUILTIN_ENGINE = "synth"  # needs no model files: what plays while a model downloads

ENGINES: dict[str, str] = {
    "musicgen": "lofitui.engines.musicgen:MusicGenEngine",
    "ace-step": "lofitui.engines.acestep:AceStepEngine",
    "ace-step-v1": "lofitui.engines.acestep_v1:AceStepV1Engine",
    "synth": "lofitui.engines.synth:SynthEngine",
}


def engine_class(name: str) -> type[Engine]:
    """The class of the engine called ``name`` (UsageError naming the choices if unknown)."""
    try:
        module, _, attr = ENGINES[name].partition(":")
    except KeyError:
        raise UsageError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}") from None
    return getattr(importlib.import_module(module), attr)


def engine_params() -> dict[str, tuple[Param, ...]]:
    """Every engine's declared parameters, by engine name, in registry order."""
    return {name: engine_class(name).params for name in ENGINES}
