"""Theme files (TOML) → Textual themes: lofi's own in ``themes/``, the user's beside the config.

A theme file holds the fields of :class:`textual.theme.Theme` (``name``, ``primary``, ``dark``,
``background``...) and an optional ``[variables]`` table. A broken file is reported and skipped.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from lofitui import paths

DEFAULT_THEME = "lofi"
# The themes "t" cycles through, in order (user themes are appended).
BUILTIN_ORDER = ("lofi", "midnight", "paper")
_COLOR_FIELDS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)


def builtin_themes_dir() -> Path:
    """The ``themes/`` directory shipped with lofi (next to the package in a checkout)."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "themes", here.parents[2] / "themes"):
        if candidate.is_dir():
            return candidate
    return here.parents[2] / "themes"


def user_themes_dir() -> Path:
    return paths.config_dir() / "themes"


@dataclass(frozen=True)
class LoadedThemes:
    themes: tuple[Theme, ...]
    warnings: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.themes)


def load_theme_file(path: Path) -> Theme:
    """Parse one theme file; ValueError with a one-line reason if it is unusable."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(str(exc)) from None
    allowed = {f.name for f in fields(Theme)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}")
    name = data.get("name") or path.stem
    if not isinstance(data.get("primary"), str):
        raise ValueError('needs a primary color, e.g. primary = "#E8A87C"')
    for key in _COLOR_FIELDS:
        value = data.get(key)
        if value is None:
            continue
        try:
            Color.parse(value)
        except (ColorParseError, TypeError):
            raise ValueError(f"{key} = {value!r} is not a color") from None
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ValueError("[variables] must map names to strings")
    return Theme(**{**data, "name": str(name), "variables": dict(variables)})


def load_themes(*dirs: Path) -> LoadedThemes:
    """Every ``*.toml`` theme in ``dirs`` (default: built-in, then the user's), ordered for "t"."""
    dirs = dirs or (builtin_themes_dir(), user_themes_dir())
    found: dict[str, Theme] = {}
    warnings: list[str] = []
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ValueError as exc:
                warnings.append(f"theme {path}: {exc} (skipped)")
                continue
            found[theme.name] = theme  # a user file may replace a built-in one
    order = [n for n in BUILTIN_ORDER if n in found] + [n for n in found if n not in BUILTIN_ORDER]
    return LoadedThemes(tuple(found[n] for n in order), tuple(warnings))


def next_theme(current: str, cycle: tuple[str, ...]) -> str:
    """The theme after ``current`` in ``cycle`` (the first one if ``current`` is elsewhere)."""
    if not cycle:
        return current
    try:
        return cycle[(cycle.index(current) + 1) % len(cycle)]
    except ValueError:
        return cycle[0]
