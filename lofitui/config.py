"""Settings: ``config.toml`` (defaults, per-key validation) and the command line merged over it.

The file is created on first run with every setting commented out (the defaults live here, in
code, so a newer lofi can improve them). A bad value never stops lofi: the key is named in a
warning and its default is used; everything else in the file still applies. Per-engine tables
(``[musicgen]``, ``[ace-step]``) take the parameters the engines declare.

Read once at start-up (:func:`load_config`); :func:`build_settings` then lays the options given
on the command line over it, and the one :class:`Settings` it returns is handed to the front-end.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from lofitui import paths
from lofitui.atomic import write_bytes_atomic
from lofitui.audio.loudness import DEFAULT_TARGET_LUFS, MAX_TARGET_LUFS, MIN_TARGET_LUFS
from lofitui.devices import DEVICE_CHOICES
from lofitui.engines.base import Param, ParamValue
from lofitui.engines.registry import ENGINES, engine_class, engine_params
from lofitui.errors import UsageError
from lofitui.models.catalog import default_model

THREADS_PER_CORE = 4  # each inference thread costs ~4 OS threads; past this it only thrashes
MAX_CACHE_GB = 1_000_000  # a petabyte: beyond it the byte count stops being a sane number
VISUALISERS = ("spectrum", "meter", "off")  # the now-playing visualiser, in the order "v" cycles

_log = logging.getLogger(__name__)


def max_threads() -> int:
    """The most inference threads lofi takes: :data:`THREADS_PER_CORE` × the CPU count."""
    return THREADS_PER_CORE * (os.cpu_count() or 1)


def _threads_limit_text() -> str:
    return f"{max_threads()} ({THREADS_PER_CORE} x {os.cpu_count() or 1} CPU cores)"


@dataclass(frozen=True)
class Config:
    """Every setting lofi reads from ``config.toml``."""

    prompts: tuple[str, ...] = (
        "lofi hip hop beat, mellow rhodes piano, vinyl crackle, rainy night",
        "warm jazzy lofi, soft saxophone, brushed drums, late evening",
        "ambient chillhop, dreamy guitar, tape hiss, slow tempo",
    )
    engine: str = "musicgen"
    model: str | None = None  # None: the engine's default model (catalog.DEFAULT_MODELS)
    device: str = "auto"
    threads: int = 0
    duration: float = 30.0
    lookahead: int = 2
    crossfade: float = 2.0
    flow: bool = False
    cache_max_gb: float = 2.0
    volume: float = 0.8
    loudness: float | None = DEFAULT_TARGET_LUFS  # LUFS every track is brought to; None: off
    theme: str = "lofi"
    visualiser: str = "spectrum"
    mpris: bool = True
    keymap: dict[str, str] = field(default_factory=dict)
    # Per-engine tables: engine name -> {param name: value}, checked against the declarations.
    engine_params: dict[str, dict[str, ParamValue]] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The station lofi starts on."""
        return self.prompts[0]


# (type check, human description) per key; ranges are checked in _check.
_KINDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "prompts": (list, "a list of strings"),
    "engine": (str, f"one of {', '.join(ENGINES)}"),
    "model": (str, "a string"),
    "device": (str, f"one of {', '.join(DEVICE_CHOICES)}"),
    "threads": (int, "an integer >= 0"),
    "duration": ((int, float), "a number of seconds between 1 and 300"),
    "lookahead": (int, "an integer between 1 and 8"),
    "crossfade": ((int, float), "a number of seconds between 0 and 10"),
    "flow": (bool, "true or false"),
    "cache_max_gb": ((int, float), f"a number of GB between 0 and {MAX_CACHE_GB}"),
    "volume": ((int, float), "a number between 0 and 1"),
    "theme": (str, "a theme name"),
    "visualiser": (str, f"one of {', '.join(VISUALISERS)}"),
    "mpris": (bool, "true or false"),
    "keymap": (dict, 'a table of binding id = "keys"'),
}

DEFAULT_CONFIG_TEXT = """\
# lofi settings. Every line below is commented out and shows the default:
# uncomment a line and change its value to override it.

# Stations: the first prompt is where lofi starts; the others are in the prompt history (Up/Down).
# prompts = [
#   "lofi hip hop beat, mellow rhodes piano, vinyl crackle, rainy night",
#   "warm jazzy lofi, soft saxophone, brushed drums, late evening",
#   "ambient chillhop, dreamy guitar, tape hiss, slow tempo",
# ]

# engine = "musicgen"        # musicgen or ace-step
# model = "musicgen-small"   # a catalog name (`lofi models list`) or a model directory;
#                            # unset: the engine's default (ace-step: ace-step-turbo)
# device = "auto"            # auto, cuda, coreml or cpu
# threads = 0                # CPU threads for inference (0 = ONNX Runtime decides)
# duration = 30.0            # seconds per track
# lookahead = 2              # tracks kept ready beyond the one playing
# crossfade = 2.0            # seconds of crossfade between tracks (0 = gapless)
# flow = false               # true: each track continues the last (MusicGen), no crossfade
# cache_max_gb = 2.0         # generated tracks kept on disk before the oldest are dropped
# volume = 0.8               # 0.0 - 1.0
# loudness = -14.0           # every track at this loudness (LUFS, -40 to -5), peaks under
#                            # -1 dBTP; "off": as the engine made it (peaks still limited)
# theme = "lofi"             # lofi, midnight, paper, any Textual theme, or a file you add
#                            # to the themes/ folder next to this file ("t" cycles and saves it)
# visualiser = "spectrum"    # spectrum, meter or off ("v" cycles and saves it)
# mpris = true               # media keys and desktop player controls (Linux, session D-Bus)

# Keys, by binding id (see "?" in the app). Several keys: "n,right".
[keymap]
# "lofi.pause" = "space"
# "lofi.skip" = "n"
# "lofi.regenerate" = "r"
# "lofi.save" = "s"
# "lofi.like" = "l"
# "lofi.dislike" = "x"
# "lofi.likes" = "L"
# "lofi.volume-up" = "plus,equals_sign"
# "lofi.volume-down" = "minus"
# "lofi.mute" = "m"
# "lofi.prompt" = "slash,i"
# "lofi.theme" = "t"
# "lofi.visualiser" = "v"
# "lofi.help" = "question_mark"
# "lofi.quit" = "q"

# Generation parameters per engine: the options of `lofi --help` in snake case (--top-k: top_k),
# except keyscale (--key) and timesignature (--time-signature).
[musicgen]
# top_k = 250
# temperature = 1.0
# guidance = 3.0

[ace-step]
# steps = 8                  # the model's own default: turbo 8, base 32
# guidance = 7.0             # base models; turbo ignores it
# shift = 3.0
# scheduler = "euler"        # euler, heun or pingpong
# bpm = 90
# keyscale = "A minor"
# timesignature = "4"
"""


@dataclass(frozen=True)
class LoadedConfig:
    """The settings, where they came from, and one line per problem found in the file."""

    config: Config
    path: Path
    warnings: tuple[str, ...] = ()
    created: bool = False


def ensure_config_file(path: Path | None = None) -> bool:
    """Write the commented default file if there is none; True if it was created."""
    path = path or paths.config_file()
    if path.exists():
        return False
    try:
        write_bytes_atomic(path, DEFAULT_CONFIG_TEXT.encode())
    except OSError:
        return False  # a read-only home still runs, on defaults
    return True


def load_config(path: Path | None = None, *, create: bool = True) -> LoadedConfig:
    """Read ``path`` (default: ``paths.config_file()``), creating it first if ``create``.

    Every warning is also logged (the log file in the state dir): a screenful of them would
    otherwise be gone with the notices that showed them.
    """
    path = path or paths.config_file()
    created = ensure_config_file(path) if create else False
    loaded = _read_config(path, created)
    for warning in loaded.warnings:
        _log.warning("%s", warning)
    return loaded


def _read_config(path: Path, created: bool) -> LoadedConfig:
    if not path.exists():
        return LoadedConfig(Config(), path, (), created)
    if not path.is_file():  # a directory, or a FIFO that would block the read forever
        return LoadedConfig(Config(), path, (f"{path} is not a file; using the defaults",))
    try:
        text = path.read_text(encoding="utf-8-sig")  # an editor's byte-order mark is fine
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return LoadedConfig(Config(), path, (f"{path}: {exc}; using the defaults",), created)
    except (OSError, UnicodeDecodeError) as exc:
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "not UTF-8 text"
        return LoadedConfig(Config(), path, (f"cannot read {path}: {reason}; using the defaults",))
    config, warnings = parse_config(data, source=path.name)
    return LoadedConfig(config, path, tuple(warnings), created)


def parse_config(data: dict[str, Any], *, source: str = "config.toml") -> tuple[Config, list[str]]:
    """Validate a parsed TOML table key by key: bad keys are reported and left at default."""
    known = {f.name for f in fields(Config)}
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for key, value in data.items():
        if key in ENGINES:
            if not isinstance(value, dict):
                warnings.append(f"{source}: {key} must be a table ([{key}]); ignored")
                continue
            table, problems = _check_engine_table(key, value)
            if table:
                values.setdefault("engine_params", {})[key] = table
            warnings.extend(f"{source}: [{key}] {p}" for p in problems)
            continue
        if key not in known or key == "engine_params":
            warnings.append(f"{source}: unknown key {key!r} (ignored)")
            continue
        problem = _check(key, value)
        if problem is not None:
            warnings.append(f"{source}: {key} must be {problem}; using the default")
            continue
        if key == "threads" and value > max_threads():
            warnings.append(
                f"{source}: threads = {value} is more than {_threads_limit_text()}; "
                f"using {max_threads()}"
            )
            value = max_threads()
        values[key] = _normalise(key, value)
    if "keymap" in values:
        keymap, problems = _check_keymap(values["keymap"])
        values["keymap"] = keymap
        warnings.extend(f"{source}: {p}" for p in problems)
    return replace(Config(), **values), warnings


def loudness_target(value: object) -> float | None:
    """A loudness setting (config.toml or ``--loudness``): a number of LUFS, or off (None:
    ``"off"`` or ``false``)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text is False or text == "off":
        return None
    number = None
    if isinstance(text, (int, float, str)) and not isinstance(text, bool):
        with contextlib.suppress(ValueError):
            number = float(text)
    if number is None or not MIN_TARGET_LUFS <= number <= MAX_TARGET_LUFS:
        raise UsageError(
            f"loudness must be a number of LUFS between {MIN_TARGET_LUFS:g} and "
            f'{MAX_TARGET_LUFS:g}, or "off" (got {value!r})'
        )
    return number


def _check(key: str, value: Any) -> str | None:
    """None if ``value`` is acceptable for ``key``, else what it must be."""
    if key == "loudness":
        try:
            loudness_target(value)
        except UsageError as exc:
            return str(exc).removeprefix("loudness must be ").rsplit(" (got", 1)[0]
        return None
    kind, describe = _KINDS[key]
    if kind is bool:
        return None if isinstance(value, bool) else describe
    if isinstance(value, bool) or not isinstance(value, kind):
        return describe
    if isinstance(value, float) and not math.isfinite(value):
        return describe
    ok = True
    if key == "prompts":
        ok = bool(value) and all(isinstance(p, str) and p.strip() for p in value)
        describe = "a non-empty list of non-empty strings"
    elif key == "device":
        ok = value.lower() in DEVICE_CHOICES
    elif key == "engine":
        ok = value.strip() in ENGINES
    elif key in ("model", "theme"):
        ok = bool(value.strip())
    elif key == "visualiser":
        ok = value.strip() in VISUALISERS
    elif key == "threads":
        ok = value >= 0
    elif key == "duration":
        ok = 1 <= value <= 300
    elif key == "lookahead":
        ok = 1 <= value <= 8
    elif key == "crossfade":
        ok = 0 <= value <= 10
    elif key == "cache_max_gb":
        ok = 0 <= value <= MAX_CACHE_GB
    elif key == "volume":
        ok = 0 <= value <= 1
    return None if ok else describe


def _normalise(key: str, value: Any) -> Any:
    if key == "prompts":
        return tuple(p.strip() for p in value)
    if key == "loudness":
        return loudness_target(value)
    if key in ("duration", "crossfade", "cache_max_gb", "volume"):
        return float(value)
    if key == "device":
        return value.lower()
    if isinstance(value, str):
        return value.strip()
    return value


def _check_engine_table(engine: str, table: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Keep the entries of an engine's table that it declares and that pass its checks."""
    declared = {p.name: p for p in engine_class(engine).params}
    kept: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in table.items():
        param = declared.get(name)
        if param is None:
            problems.append(f"unknown key {name!r} (known: {', '.join(declared)}; ignored)")
            continue
        try:
            kept[name] = param.convert(value)
        except UsageError as exc:
            problems.append(f"{exc}; using the default")
    return kept, problems


_KEY_RE = re.compile(r"^[A-Za-z0-9_+]+(,[A-Za-z0-9_+]+)*$")  # "L": shift+l


def _check_keymap(table: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Keep well-formed ``id = "keys"`` entries whose keys are not taken by another entry."""
    from lofitui.keymap import BINDING_IDS, DEFAULT_KEYS

    keymap: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, keys in table.items():
        if binding_id not in BINDING_IDS:
            problems.append(
                f"keymap: unknown binding id {binding_id!r} (known: {', '.join(BINDING_IDS)})"
            )
        elif not isinstance(keys, str) or not _KEY_RE.match(keys.replace(" ", "")):
            problems.append(f'keymap: {binding_id} must be keys like "n" or "n,right"')
        else:
            keymap[binding_id] = keys.replace(" ", "")
    # Conflicts: a key may trigger only one binding. Keys of ids left at their defaults are
    # taken first; remapped ids are then checked in order against them and each other.
    owner = {
        key: binding_id
        for binding_id in BINDING_IDS
        if binding_id not in keymap
        for key in DEFAULT_KEYS[binding_id].split(",")
    }
    for binding_id in list(keymap):
        keys = keymap[binding_id].split(",")
        clash = next((k for k in keys if owner.get(k, binding_id) != binding_id), None)
        if clash is not None:
            problems.append(
                f"keymap: {binding_id} = {clash!r} conflicts with {owner[clash]}; "
                f"keeping the default for {binding_id}"
            )
            del keymap[binding_id]
            keys = DEFAULT_KEYS[binding_id].split(",")
        for key in keys:
            owner.setdefault(key, binding_id)
    return keymap, problems


@dataclass(frozen=True)
class Settings:
    """What this run uses: config.toml with the options given on the command line laid over it."""

    prompt: str
    prompts: tuple[str, ...]
    engine: str
    model: str
    # No defaults here: Config holds them and build_settings copies every one.
    device: str
    threads: int
    duration: float
    lookahead: int
    crossfade: float
    cache_max_gb: float
    volume: float
    theme: str
    visualiser: str
    keymap: Mapping[str, str]
    loudness: float | None  # target LUFS; None: off
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    flow: bool = False
    offline: bool = False
    assume_yes: bool = False
    mpris: bool = True


def build_settings(
    config: Config,
    given: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
) -> Settings:
    """The run's settings: ``given`` (options on the command line, absent when not given) over
    ``defaults`` (a front-end's own, e.g. --render's track length) over ``config``.

    ``given`` holds general options by name (engine, model, device, threads, duration, offline,
    yes) and engine parameters by their declared names. A parameter the chosen engine does not
    take, or a bad value, is a UsageError naming the option.
    """
    laid = {**(defaults or {}), **given}
    engine = str(laid.get("engine", config.engine))
    cls = engine_class(engine)  # an unknown engine is refused here, naming the choices
    if "model" in laid:
        model = str(laid["model"])
    elif config.model and engine == config.engine:
        model = config.model
    else:
        model = default_model(engine)
    params = {**config.engine_params.get(engine, {}), **_given_params(cls.params, given)}
    values: dict[str, Any] = {
        "prompt": config.prompt,
        "prompts": config.prompts,
        "engine": engine,
        "model": model,
        "device": str(laid.get("device", config.device)),
        "threads": int(laid.get("threads", config.threads)),
        "duration": float(laid.get("duration", config.duration)),
        "lookahead": config.lookahead,
        "crossfade": config.crossfade,
        "flow": config.flow,
        "cache_max_gb": config.cache_max_gb,
        "volume": config.volume,
        "loudness": loudness_target(laid["loudness"]) if "loudness" in laid else config.loudness,
        "theme": config.theme,
        "visualiser": config.visualiser,
        "mpris": config.mpris,
        "keymap": dict(config.keymap),
        "params": params,
        "offline": bool(laid.get("offline", False)),
        "assume_yes": bool(laid.get("yes", False)),
    }
    if values["threads"] < 0:
        raise UsageError(f"threads must be >= 0 (got {values['threads']})")
    if values["threads"] > max_threads():
        raise UsageError(
            f"threads must be at most {_threads_limit_text()} (got {values['threads']})"
        )
    return Settings(**values)


def _given_params(declared: tuple[Param, ...], given: Mapping[str, Any]) -> dict[str, ParamValue]:
    """The engine parameters in ``given``, normalised; another engine's are refused."""
    own = {p.name: p for p in declared}
    foreign: list[str] = []
    owners: list[str] = []
    for other, params in engine_params().items():
        for p in params:
            if p.name in given and p.name not in own and p.flag and p.flag not in foreign:
                foreign.append(p.flag)
                if other not in owners:
                    owners.append(other)
    if foreign:
        verb = "applies" if len(foreign) == 1 else "apply"
        where = " or ".join(f"--engine {name}" for name in owners)
        raise UsageError(f"{', '.join(foreign)} only {verb} to {where}")
    return {
        name: param.convert(given[name])
        for name, param in own.items()
        if name in given and given[name] is not None
    }


SettingValue = str | float | int | bool


def save_setting(key: str, value: SettingValue, path: Path | None = None) -> None:
    """Set one top-level ``key`` in the config file, keeping every comment and other line.
    Used to persist the theme chosen in the app (:func:`save_settings` for several)."""
    save_settings({key: value}, path=path)


def save_settings(
    top: Mapping[str, SettingValue],
    tables: Mapping[str, Mapping[str, SettingValue | None]] | None = None,
    path: Path | None = None,
) -> None:
    """Set top-level keys and keys of tables (``[musicgen]``...) in one atomic write, keeping
    every comment and other line.

    Each key replaces its active ``key = ...`` line, else uncomments its commented default, else
    is added (top-level keys before the first table; a table missing from the file is added at
    the end). A table key set to None has its active line commented out: back to the default.
    """
    path = path or paths.config_file()
    ensure_config_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    first_table = re.search(r"^\[", text, re.M)
    split = first_table.start() if first_table else len(text)
    head, rest = text[:split], text[split:]
    for key, value in top.items():
        head = _set_key(head, key, value, in_table=False)
    text = head + rest
    for table, values in (tables or {}).items():
        text = _set_table_keys(text, table, values)
    write_bytes_atomic(path, text.encode())


def _set_table_keys(text: str, table: str, values: Mapping[str, SettingValue | None]) -> str:
    header = re.compile(rf"^\[{re.escape(table)}\][ \t]*(#.*)?$", re.M)
    match = header.search(text)
    if match is None:
        if all(value is None for value in values.values()):
            return text
        text = text.rstrip("\n") + f"\n\n[{table}]\n"
        match = header.search(text)
        assert match is not None
    start = match.end()
    following = re.compile(r"^\[", re.M).search(text, start)
    end = following.start() if following else len(text)
    body = text[start:end]
    for key, value in values.items():
        body = _set_key(body, key, value, in_table=True)
    return text[:start] + body + text[end:]


def _set_key(section: str, key: str, value: SettingValue | None, *, in_table: bool) -> str:
    """``section`` (the top level, or a table's lines) with ``key`` set to ``value``."""
    active = re.compile(rf"^{re.escape(key)}\s*=.*$", re.M)
    if value is None:
        return active.sub(lambda m: f"# {m.group(0)}", section, count=1)
    line = f"{key} = {_toml_value(value)}"
    commented = re.compile(rf"^#\s*{re.escape(key)}\s*=.*$", re.M)
    if active.search(section):
        return active.sub(lambda m: _keep_comment(m.group(0), line), section, count=1)
    if commented.search(section):
        return commented.sub(lambda m: _keep_comment(m.group(0), line), section, count=1)
    if in_table:  # after the table's last line, keeping the blank line before the next table
        tail = "\n\n" if section.endswith("\n\n") else "\n"
        return section.rstrip("\n") + "\n" + line + tail
    return section.rstrip("\n") + ("\n" if section.strip() else "") + line + "\n\n"


def _keep_comment(old: str, new: str) -> str:
    """``new`` plus the trailing ``# comment`` of ``old``, aligned where it was."""
    stripped = old.lstrip("#").lstrip()
    at = _comment_start(stripped)
    if at is not None:
        comment = stripped[at:]
        width = len(old) - len(comment)
        return f"{new:<{width}}{comment}" if len(new) < width else f"{new}  {comment}"
    return new


def _comment_start(line: str) -> int | None:
    """Where the ``#`` comment of a ``key = value`` line starts (not a ``#`` inside a string)."""
    quote: str | None = None
    escaped = False
    for i, char in enumerate(line):
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return i
    return None


_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_value(value: str | float | int) -> str:
    """``value`` as a TOML value: a basic string escapes quotes, backslashes and every control
    character (a raw one would make the whole file unreadable)."""
    if isinstance(value, str):
        return '"' + "".join(_toml_char(c) for c in value) + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _toml_char(char: str) -> str:
    if char in _TOML_ESCAPES:
        return _TOML_ESCAPES[char]
    return f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
