"""Settings: a TOML file in the platformdirs config dir, with defaults and per-key validation.

The file is created on first run with every setting commented out (the defaults live here, in
code, so a newer lofi can improve them). A bad value never stops lofi: the key is named in a
warning and its default is used; everything else in the file still applies.

Read once at start-up (:func:`load_config`) and reached through :data:`CONFIG` afterwards.
"""

from __future__ import annotations

import re
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from lofitui import paths
from lofitui.atomic import write_bytes_atomic

DEVICES = ("auto", "cuda", "coreml", "cpu")


@dataclass(frozen=True)
class Config:
    """Every setting lofi reads from ``config.toml``."""

    prompts: tuple[str, ...] = (
        "lofi hip hop beat, mellow rhodes piano, vinyl crackle, rainy night",
        "warm jazzy lofi, soft saxophone, brushed drums, late evening",
        "ambient chillhop, dreamy guitar, tape hiss, slow tempo",
    )
    engine: str = "musicgen"
    model: str = "musicgen-small"
    device: str = "auto"
    threads: int = 0
    duration: float = 30.0
    lookahead: int = 2
    crossfade: float = 2.0
    cache_max_gb: float = 2.0
    volume: float = 0.8
    theme: str = "lofi"
    keymap: dict[str, str] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The station lofi starts on."""
        return self.prompts[0]


# (type check, human description) per key; ranges are checked in _check.
_KINDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "prompts": (list, "a list of strings"),
    "engine": (str, "a string"),
    "model": (str, "a string"),
    "device": (str, f"one of {', '.join(DEVICES)}"),
    "threads": (int, "an integer >= 0"),
    "duration": ((int, float), "a number of seconds between 1 and 300"),
    "lookahead": (int, "an integer between 1 and 8"),
    "crossfade": ((int, float), "a number of seconds between 0 and 10"),
    "cache_max_gb": ((int, float), "a number of GB >= 0"),
    "volume": ((int, float), "a number between 0 and 1"),
    "theme": (str, "a theme name"),
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
# model = "musicgen-small"   # a catalog name (`lofi models list`) or a model directory
# device = "auto"            # auto, cuda, coreml or cpu
# threads = 0                # CPU threads for inference (0 = ONNX Runtime decides)
# duration = 30.0            # seconds per track
# lookahead = 2              # tracks kept ready beyond the one playing
# crossfade = 2.0            # seconds of crossfade between tracks (0 = gapless)
# cache_max_gb = 2.0         # generated tracks kept on disk before the oldest are dropped
# volume = 0.8               # 0.0 - 1.0
# theme = "lofi"             # lofi, midnight, paper, any Textual theme, or a file you add
#                            # to the themes/ folder next to this file ("t" cycles and saves it)

# Keys, by binding id (see "?" in the app). Several keys: "n,right".
[keymap]
# "lofi.pause" = "space"
# "lofi.skip" = "n"
# "lofi.regenerate" = "r"
# "lofi.save" = "s"
# "lofi.volume-up" = "plus,equals_sign"
# "lofi.volume-down" = "minus"
# "lofi.mute" = "m"
# "lofi.prompt" = "slash,i"
# "lofi.theme" = "t"
# "lofi.help" = "question_mark"
# "lofi.quit" = "q"
"""

CONFIG: ContextVar[Config | None] = ContextVar("lofi_config", default=None)


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
    """Read ``path`` (default: ``paths.config_file()``), creating it first if ``create``."""
    path = path or paths.config_file()
    created = ensure_config_file(path) if create else False
    if not path.exists():
        return LoadedConfig(Config(), path, (), created)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        return LoadedConfig(Config(), path, (f"{path}: {exc}; using the defaults",), created)
    except (OSError, UnicodeDecodeError) as exc:
        return LoadedConfig(Config(), path, (f"cannot read {path}: {exc}; using the defaults",))
    config, warnings = parse_config(data, source=path.name)
    return LoadedConfig(config, path, tuple(warnings), created)


def parse_config(data: dict[str, Any], *, source: str = "config.toml") -> tuple[Config, list[str]]:
    """Validate a parsed TOML table key by key: bad keys are reported and left at default."""
    known = {f.name for f in fields(Config)}
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for key, value in data.items():
        if key not in known:
            warnings.append(f"{source}: unknown key {key!r} (ignored)")
            continue
        problem = _check(key, value)
        if problem is not None:
            warnings.append(f"{source}: {key} must be {problem}; using the default")
            continue
        values[key] = _normalise(key, value)
    if "keymap" in values:
        keymap, problems = _check_keymap(values["keymap"])
        values["keymap"] = keymap
        warnings.extend(f"{source}: {p}" for p in problems)
    return replace(Config(), **values), warnings


def _check(key: str, value: Any) -> str | None:
    """None if ``value`` is acceptable for ``key``, else what it must be."""
    kind, describe = _KINDS[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        return describe
    ok = True
    if key == "prompts":
        ok = bool(value) and all(isinstance(p, str) and p.strip() for p in value)
        describe = "a non-empty list of non-empty strings"
    elif key == "device":
        ok = value.lower() in DEVICES
    elif key in ("engine", "model", "theme"):
        ok = bool(value.strip())
    elif key == "threads":
        ok = value >= 0
    elif key == "duration":
        ok = 1 <= value <= 300
    elif key == "lookahead":
        ok = 1 <= value <= 8
    elif key == "crossfade":
        ok = 0 <= value <= 10
    elif key == "cache_max_gb":
        ok = value >= 0
    elif key == "volume":
        ok = 0 <= value <= 1
    return None if ok else describe


def _normalise(key: str, value: Any) -> Any:
    if key == "prompts":
        return tuple(p.strip() for p in value)
    if key in ("duration", "crossfade", "cache_max_gb", "volume"):
        return float(value)
    if key == "device":
        return value.lower()
    if isinstance(value, str):
        return value.strip()
    return value


_KEY_RE = re.compile(r"^[a-z0-9_+]+(,[a-z0-9_+]+)*$")


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


def save_setting(key: str, value: str | float | int, path: Path | None = None) -> None:
    """Set one top-level ``key`` in the config file, keeping every comment and other line.

    Replaces an active ``key = ...`` line, else uncomments the commented default, else adds the
    line before the first table. Used to persist the theme chosen in the app.
    """
    path = path or paths.config_file()
    ensure_config_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    line = f"{key} = {_toml_value(value)}"
    top, sep, tables = _split_top_level(text)
    active = re.compile(rf"^{re.escape(key)}\s*=.*$", re.M)
    commented = re.compile(rf"^#\s*{re.escape(key)}\s*=.*$", re.M)
    if active.search(top):
        top = active.sub(lambda m: _keep_comment(m.group(0), line), top, count=1)
    elif commented.search(top):
        top = commented.sub(lambda m: _keep_comment(m.group(0), line), top, count=1)
    else:
        top = top.rstrip("\n") + ("\n" if top.strip() else "") + line + "\n\n"
    write_bytes_atomic(path, (top + sep + tables).encode())


def _split_top_level(text: str) -> tuple[str, str, str]:
    match = re.search(r"^\[", text, re.M)
    if match is None:
        return text, "", ""
    return text[: match.start()], "", text[match.start() :]


def _keep_comment(old: str, new: str) -> str:
    """``new`` plus the trailing ``# comment`` of ``old``, aligned where it was."""
    stripped = old.lstrip("#").lstrip()
    if "#" in stripped:
        comment = stripped[stripped.index("#") :]
        width = len(old) - len(comment)
        return f"{new:<{width}}{comment}" if len(new) < width else f"{new}  {comment}"
    return new


def _toml_value(value: str | float | int) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
