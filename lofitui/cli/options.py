"""``lofi``'s command line, built from declarations: general options, then one group per engine
from the parameters the engines declare, then the models options and the ``models`` subcommand.

Nothing has a default here: an option that was not given is absent from the parsed namespace,
and :func:`lofitui.config.build_settings` lays what was given over config.toml.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from lofitui import __version__
from lofitui.config import THREADS_PER_CORE
from lofitui.devices import DEVICE_CHOICES
from lofitui.engines.registry import ENGINES, engine_class
from lofitui.errors import UsageError
from lofitui.models.catalog import DEFAULT_MODELS

RENDER_DURATION_S = 10.0  # --render's own track length; config.toml's duration is the player's


_EXPECTED_VALUE = re.compile(r"^argument ([^/:]+)(?:/[^:]+)?: expected one argument$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with its control characters (newlines, escapes, NUL...) written as escapes."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class _Parser(argparse.ArgumentParser):
    """argparse whose bad input is a one-line :class:`UsageError` (no usage dump); the CLI
    prints it and exits 2. ``--help`` and ``--version`` still print and exit 0."""

    def error(self, message: str) -> NoReturn:
        dash = _EXPECTED_VALUE.match(message)
        if dash is not None:  # "--render -x" reads -x as an option
            hint = f"a value that starts with - is written {dash.group(1)}=VALUE; see lofi --help"
        else:
            hint = "see lofi --help"
        raise UsageError(f"{one_line(message)} ({hint})")


def _number(kind: type) -> Callable[[str], int | float]:
    """An argparse type for ``kind`` (int or float) that refuses nan and infinities."""

    def convert(text: str) -> int | float:
        value = kind(text)  # a ValueError reads "invalid <kind> value: '...'"
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        return value

    convert.__name__ = kind.__name__
    return convert


def _text(text: str) -> str:
    """Text from the command line: undecodable bytes (not UTF-8) are refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not valid UTF-8 text (check the terminal's encoding)"
        ) from None
    return text


def _name(text: str) -> str:
    """A model name or directory: not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty: give a name or a directory")
    return text


def _directory(text: str) -> Path:
    """An output directory, or ``-``: not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty: give a directory, or - for stdout")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    """The ``lofi`` parser; parsing gives only the options that were given."""
    parser = _Parser(
        prog="lofi",
        description="A terminal music player that never runs out of music. "
        "Run without arguments for the player; --render writes files headless; "
        "'lofi models --help' manages models.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"lofi {__version__}")
    parser.add_argument(
        "--render", type=_text, metavar="PROMPT", help="generate tracks to files and exit"
    )
    parser.add_argument(
        "--duration",
        type=_number(float),
        metavar="S",
        help=f"seconds per track (--render: default {RENDER_DURATION_S:g}; the player: "
        "config.toml's duration, default 30)",
    )
    parser.add_argument(
        "--count", type=_number(int), metavar="N", help="tracks to render (default 1)"
    )
    parser.add_argument(
        "--seed",
        type=_number(int),
        metavar="N",
        help="first seed (track i uses N+i); random if omitted",
    )
    parser.add_argument(
        "--out",
        type=_directory,
        metavar="DIR|-",
        help="output directory (default: current directory); '-' writes one 16-bit WAV stream "
        "to stdout as it is generated, all --count tracks back to back, no sidecar JSON "
        "(lofi --render ... --out - | aplay)",
    )
    parser.add_argument("--format", choices=["wav"], help="output format (default wav)")
    parser.add_argument("--engine", type=_text, help=" or ".join(ENGINES))
    defaults = "; ".join(
        f"{model} with --engine {engine}" for engine, model in DEFAULT_MODELS.items()
    )
    parser.add_argument(
        "--model",
        type=_name,
        metavar="NAME|DIR",
        help=f"catalog name or model directory (default: {defaults})",
    )
    parser.add_argument(
        "--device", choices=DEVICE_CHOICES, help="execution provider (default: best available)"
    )
    parser.add_argument(
        "--threads",
        type=_number(int),
        metavar="N",
        help=f"CPU threads for inference (0 = onnxruntime default; at most "
        f"{THREADS_PER_CORE} x the CPU cores)",
    )
    parser.add_argument(
        "--loudness",
        type=_text,
        metavar="LUFS|off",
        help="bring every track to this integrated loudness (-40 to -5 LUFS; default: "
        "config.toml's loudness, -14), peaks under -1 dBTP; off: the engine's own level",
    )
    _add_engine_groups(parser)
    models = parser.add_argument_group("models")
    models.add_argument(
        "--yes", "-y", action="store_true", help="download a missing model without asking"
    )
    models.add_argument("--offline", action="store_true", help="never use the network")
    from lofitui.cli.models import add_parser as add_models

    commands = parser.add_subparsers(dest="command", metavar="{models}")
    add_models(commands)
    return parser


def _add_engine_groups(parser: argparse.ArgumentParser) -> None:
    """One option group per engine, from its declared params; a shared flag appears once."""
    seen: set[str] = set()
    for name in ENGINES:
        cls = engine_class(name)
        group = parser.add_argument_group(cls.title)
        for param in cls.params:
            if param.flag is None or param.flag in seen:
                continue
            seen.add(param.flag)
            kwargs: dict = {"dest": param.name, "help": param.help}
            if param.choices is not None:
                kwargs["choices"] = param.choices
            else:
                kwargs["metavar"] = param.metavar
            kwargs["type"] = _text if param.type is str else _number(param.type)
            group.add_argument(param.flag, **kwargs)
