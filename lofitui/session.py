"""Starting an engine, the one way every front-end does it: locate or download the model,
prepare it, load it, read its defaults.

``lofi --render``, the player's backend and ``lofi models optimize`` call this; none of them
repeats the sequence. Consent to download and download progress are callbacks from the
front-end (a terminal prompt and bar, or the app's dialog), so nothing here talks to a person.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lofitui.engines.base import BUILTIN_MODEL, Engine, ParamValue, StageCallback
from lofitui.engines.registry import engine_class
from lofitui.engines.runtime import RuntimeOptions, resolve_providers
from lofitui.errors import UsageError
from lofitui.models import ConsentCallback, ensure_model

if TYPE_CHECKING:
    from lofitui.models.download import ProgressCallback


def _quiet(_message: str) -> None:
    """An ``on_stage`` that shows nothing."""


@dataclass(frozen=True)
class OpenEngine:
    """A loaded engine, the model it runs (as named and on disk) and that model's defaults."""

    engine: Engine
    engine_name: str
    model: str
    model_dir: Path
    defaults: Mapping[str, ParamValue]


def runtime_options(device: str, threads: int) -> RuntimeOptions:
    """Session options, the device checked now (one clear error before any download)."""
    resolve_providers(device)
    return RuntimeOptions(device=device, threads=threads)


def locate(
    engine_name: str,
    model: str,
    *,
    offline: bool,
    consent: ConsentCallback | None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """``model``'s directory for ``engine_name``, downloaded first if missing and consented to.

    An engine that needs no files (``synth``) has one model, ``builtin``: its own package, found
    without looking anywhere.
    """
    cls = engine_class(engine_name)  # an unknown engine is refused before anything else
    if getattr(cls, "model_free", False):
        if model != BUILTIN_MODEL:
            raise UsageError(
                f"the {engine_name} engine is built in and takes no model (got --model {model})"
            )
        return Path(inspect.getfile(cls)).parent
    return ensure_model(
        model,
        engine=engine_name,
        offline=offline,
        consent=consent,
        progress=progress,
        cancel=cancel,
    )


def prepare(
    engine_name: str,
    model_dir: Path,
    options: RuntimeOptions,
    on_stage: StageCallback = _quiet,
    **how: str,
) -> Path | None:
    """The engine's prepare step (MusicGen: its fast CPU decoder); ``how``: engine-specific
    choices such as ``quant`` for ``lofi models optimize``."""
    return engine_class(engine_name).prepare(model_dir, options, on_stage, **how)


def setup(
    engine_name: str,
    model_dir: Path,
    options: RuntimeOptions,
    params: Mapping[str, ParamValue] | None,
) -> dict[str, object]:
    """The engine's setup choices for ``model_dir``: its setup params from ``params``, and for an
    engine that builds files from its model (MusicGen's fast decoder, a CPU build), where they
    go: the model directory when lofi owns it, else lofi's cache (``models.derived``)."""
    from lofitui.models.derived import derived_dir

    cls = engine_class(engine_name)
    given = params or {}
    how: dict[str, object] = {
        name: given[name] for name in cls.setup_params if given.get(name) is not None
    }
    if cls.derives and options.providers()[0] == "CPUExecutionProvider":
        how["derived"] = derived_dir(model_dir)
    return how


def open_engine(
    engine_name: str,
    model: str,
    *,
    device: str,
    threads: int,
    offline: bool = False,
    consent: ConsentCallback | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    on_stage: StageCallback = _quiet,
    params: Mapping[str, ParamValue] | None = None,
) -> OpenEngine:
    """Locate (or download), prepare and load ``model`` with ``engine_name``; read its defaults.

    ``model`` is a catalog name or a directory. ``consent`` is asked before any download (None:
    no one can be asked, so a missing model is an error that says how to get it). ``params``:
    the run's engine parameters; those the engine sets up with (MusicGen's compute type) go to
    its prepare and load steps.
    """
    cls = engine_class(engine_name)
    options = runtime_options(device, threads)
    model_dir = locate(
        engine_name, model, offline=offline, consent=consent, progress=progress, cancel=cancel
    )
    how = setup(engine_name, model_dir, options, params)
    cls.prepare(model_dir, options, on_stage, **how)
    engine = cls.load(model_dir, options, **how)
    engine.model_name = model
    return OpenEngine(engine, engine_name, model, model_dir, dict(engine.defaults()))


__all__ = ["OpenEngine", "locate", "open_engine", "prepare", "runtime_options", "setup"]
