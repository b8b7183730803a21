"""The station editor's form as data: the fields an engine shows, the models it can pick, and the
one check that turns what was typed into a :class:`~lofitui.events.Station`.

Nothing here has bounds of its own: engine parameters are checked by their declarations
(:meth:`Param.convert`, as the command line and config.toml check them), the duration by the
engine's own range, the prompt by :meth:`Station.validate`, the model by the model store, and
a station saved as the default by config.toml's own checks (:func:`~lofitui.config.parse_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lofitui.config import SettingValue, parse_config
from lofitui.engines.base import BUILTIN_MODEL, Param, ParamValue
from lofitui.engines.registry import engine_class
from lofitui.errors import LofiError
from lofitui.events import Station
from lofitui.models import catalog, store

GENERAL_FIELDS = ("prompt", "engine", "model", "duration")


@dataclass(frozen=True)
class StationEdit:
    """What the editor's Apply asks for: play ``station`` from now on, and maybe also make it
    the default in config.toml."""

    station: Station
    save_as_default: bool = False


@dataclass(frozen=True)
class ModelChoice:
    """One model the form offers for an engine, and whether it can be chosen."""

    name: str
    installed: bool
    note: str  # "current", "installed", "downloading", "not installed"
    install: str | None = None  # the command that installs it, when it is not installed

    @property
    def label(self) -> str:
        shown = Path(self.name).name if "/" in self.name else self.name
        return f"{shown} · {self.note}"


def form_params(engine: str) -> tuple[Param, ...]:
    """The parameters the form shows for ``engine``: those ``lofi --help`` offers."""
    return tuple(p for p in engine_class(engine).params if p.flag is not None)


def duration_param(engine: str) -> Param:
    """The track length as a parameter bounded by ``engine``'s own range (its ``check``'s)."""
    cls = engine_class(engine)
    return Param(
        "duration",
        float,
        f"seconds per track ({cls.min_duration_s:g} to {cls.max_duration_s:g})",
        minimum=cls.min_duration_s,
        maximum=cls.max_duration_s,
    )


def model_choices(
    engine: str, current: Station | None = None, downloading: str | None = None
) -> list[ModelChoice]:
    """The models ``engine`` can play: the station's own first (it is loaded), then the catalog's,
    each as installed or not (``downloading``: the one the background download is fetching)."""
    choices: list[ModelChoice] = []
    if current is not None and current.engine == engine:
        choices.append(ModelChoice(current.model, True, "current"))
    if getattr(engine_class(engine), "model_free", False):
        if not choices:
            choices.append(ModelChoice(BUILTIN_MODEL, True, "built in"))
        return choices
    taken = {c.name for c in choices}
    for entry in catalog.entries(engine):
        if entry.name in taken:
            continue
        if store.state_of(entry).usable:
            choices.append(ModelChoice(entry.name, True, "installed"))
        elif entry.name == downloading:
            choices.append(ModelChoice(entry.name, False, "downloading"))
        else:
            choices.append(ModelChoice(entry.name, False, "not installed", entry.install_command))
    return choices


def value_text(value: ParamValue) -> str:
    """A parameter's value as the form shows it ("" when unset)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def model_problem(choice: ModelChoice | None, model: str) -> str | None:
    """Why ``model`` cannot be played now, or None."""
    if choice is None:
        return f"{model} is not a model of this engine"
    if choice.installed:
        return None
    if choice.note == "downloading":
        return f"{model} is downloading: the station moves to it once it is ready"
    return f"{model} is not installed: {choice.install}"


def build_station(
    values: Mapping[str, str | None],
    choices: list[ModelChoice],
    base: Station | None = None,
) -> tuple[Station | None, dict[str, str]]:
    """The station the form describes, or None and one line per field that is wrong.

    ``values``: the form's text by field (``prompt``, ``engine``, ``model``, ``duration`` and
    the engine's parameter names); an empty or None parameter is left to the model's default.
    Parameters of ``base`` (same engine) that the form does not show are kept (and those it
    shows as unset stay unset), so applying an unchanged form gives ``base`` again.
    """
    errors: dict[str, str] = {}  # in the form's order: the first is the one to look at
    prompt = str(values.get("prompt") or "").strip()
    try:
        Station(prompt).validate()  # the prompt's check (the duration's is the engine's, below)
    except LofiError as exc:
        errors["prompt"] = str(exc)
    engine = str(values.get("engine") or "")
    model = str(values.get("model") or "")
    try:
        engine_class(engine)
    except LofiError as exc:
        return None, {**errors, "engine": str(exc)}
    problem = model_problem(next((c for c in choices if c.name == model), None), model)
    if problem is not None:
        errors["model"] = problem
    duration: float = 0.0
    try:
        duration = float(duration_param(engine).convert(values.get("duration") or ""))
    except LofiError as exc:
        errors["duration"] = str(exc)
    params: dict[str, ParamValue] = {}
    if base is not None and base.engine == engine:  # what the form does not show, or shows unset
        shown = {p.name for p in form_params(engine)}
        params.update({k: v for k, v in base.params.items() if k not in shown or v is None})
    for param in form_params(engine):
        text = values.get(param.name)
        if text is None or not text.strip():
            continue
        try:
            params[param.name] = param.convert(text if param.multiline else text.strip())
        except LofiError as exc:
            errors[param.name] = str(exc)
    if errors:
        return None, errors
    return Station(prompt, engine, model, duration, params), {}


Defaults = tuple[dict[str, SettingValue], dict[str, dict[str, SettingValue | None]]]


def default_settings(station: Station) -> Defaults:
    """config.toml's keys for ``station`` as the default: engine, model and duration at the top,
    the form's parameters in the engine's table (None: left to the model, commented out).
    The prompt is not one of them: config.toml's prompts seed the prompt history."""
    top: dict[str, SettingValue] = {
        "engine": station.engine,
        "model": station.model,
        "duration": station.duration_s,
    }
    table = {p.name: station.params.get(p.name) for p in form_params(station.engine)}
    return top, {station.engine: table}


def default_problem(station: Station) -> str | None:
    """Why config.toml would not take ``station`` as its default (its own checks), or None."""
    top, tables = default_settings(station)
    data: dict[str, object] = dict(top)
    for table, values in tables.items():
        data[table] = {k: v for k, v in values.items() if v is not None}
    _, warnings = parse_config(data)
    return warnings[0].removesuffix("; using the default") if warnings else None
