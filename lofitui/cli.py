"""The ``lofi`` command: the terminal app, ``lofi --render`` and ``lofi models ...``."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from lofitui import __version__
from lofitui.engines.runtime import DEVICE_CHOICES
from lofitui.errors import LofiError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_MODEL = "musicgen-small"
DEFAULT_ACESTEP_MODEL = "ace-step-turbo"
ACESTEP_SCHEDULERS = ("euler", "heun", "pingpong")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line and exit code 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        print(f"lofi: error: {message} (see lofi --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lofi",
        description="A terminal music player that never runs out of music. "
        "Run without arguments for the player; --render writes files headless; "
        "'lofi models --help' manages models.",
    )
    parser.add_argument("--version", action="version", version=f"lofi {__version__}")
    parser.add_argument("--render", metavar="PROMPT", help="generate tracks to files and exit")
    parser.add_argument(
        "--duration", type=float, default=10.0, metavar="S", help="seconds per track (default 10)"
    )
    parser.add_argument("--count", type=int, default=1, metavar="N", help="tracks to render")
    parser.add_argument(
        "--seed", type=int, metavar="N", help="first seed (track i uses N+i); random if omitted"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="output directory (default: current directory)",
    )
    parser.add_argument("--format", default="wav", choices=["wav"], help="output format")
    parser.add_argument("--engine", default="musicgen", help="musicgen or ace-step")
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME|DIR",
        help=f"catalog name or model directory (default {DEFAULT_MODEL}; "
        f"{DEFAULT_ACESTEP_MODEL} with --engine ace-step)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICE_CHOICES,
        help="execution provider (default: best available)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="CPU threads for inference (0 = onnxruntime default)",
    )
    sampling = parser.add_argument_group("sampling (MusicGen)")
    sampling.add_argument("--top-k", type=int, metavar="K", help="top-k (1 = greedy; default 250)")
    sampling.add_argument("--temperature", type=float, metavar="T", help="default 1.0")
    sampling.add_argument(
        "--guidance",
        type=float,
        metavar="G",
        help="guidance scale, both engines (MusicGen: default 3, 1 disables; ACE-Step base: "
        "default 7; turbo ignores it)",
    )
    ace = parser.add_argument_group(
        "ACE-Step (--engine ace-step; 5 to 240 s per track, 48 kHz stereo)"
    )
    ace.add_argument("--lyrics", metavar="TEXT", help="song lyrics (default: instrumental)")
    ace.add_argument("--bpm", type=int, metavar="N", help="tempo in beats per minute")
    ace.add_argument("--key", metavar="KEY", help="key and scale, e.g. 'A minor' or 'F# major'")
    ace.add_argument(
        "--time-signature", metavar="N", help="beats per bar: 2, 3, 4 or 6 (4/4 and 6/8 work too)"
    )
    ace.add_argument(
        "--steps", type=int, metavar="N", help="diffusion steps (turbo default 8, base 32)"
    )
    ace.add_argument("--shift", type=float, metavar="S", help="schedule shift (default 3)")
    ace.add_argument(
        "--scheduler",
        choices=ACESTEP_SCHEDULERS,
        help="flow-matching sampler (default euler)",
    )
    models = parser.add_argument_group("models")
    models.add_argument(
        "--yes", "-y", action="store_true", help="download a missing model without asking"
    )
    models.add_argument("--offline", action="store_true", help="never use the network")
    return parser


def setup_logging() -> None:
    """Warnings and errors of lofi's threads go to a small rotating file, never the terminal."""
    import logging
    from logging.handlers import RotatingFileHandler

    from lofitui import paths

    try:
        paths.log_dir().mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingFileHandler(
            paths.log_dir() / "lofi.log", maxBytes=1_000_000, backupCount=2, encoding="utf-8"
        )
    except OSError:
        handler = logging.NullHandler()  # an unwritable log dir must not stop the music
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("lofitui")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    try:
        if argv and argv[0] == "models":
            from lofitui.models.commands import main as models_main

            return models_main(argv[1:])
        args = build_parser().parse_args(argv)
        if args.render is not None:
            return _render(args)
        from lofitui.tui.app import run_app

        return run_app(args)
    except LofiError as exc:
        print(f"lofi: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lofi: interrupted; no partial file was left behind", file=sys.stderr)
        return EXIT_INTERRUPTED


def _render(args: argparse.Namespace) -> int:
    from lofitui.engines.registry import engine_class, load_engine
    from lofitui.engines.runtime import RuntimeOptions, resolve_providers
    from lofitui.errors import UsageError
    from lofitui.models import ensure_model
    from lofitui.models.optimize import ensure_fast_decoder
    from lofitui.render import RenderJob, check_writable, render

    job = RenderJob(
        prompt=args.render,
        duration_s=args.duration,
        count=args.count,
        seed=args.seed,
        out_dir=args.out,
        format=args.format,
        params=_render_params(args),
    )
    # Everything checkable without the model is checked before loading it (which takes seconds).
    job.validate()
    cls = engine_class(args.engine)
    if not cls.min_duration_s <= job.duration_s <= cls.max_duration_s:
        raise UsageError(
            f"duration must be between {cls.min_duration_s:g} and {cls.max_duration_s:g} "
            f"seconds for {args.engine} (got {job.duration_s:g})"
        )
    _check_engine_params(args.engine, job)
    if args.threads < 0:
        raise UsageError(f"threads must be >= 0 (got {args.threads})")
    check_writable(job.out_dir)
    options = RuntimeOptions(device=args.device, threads=args.threads)
    resolve_providers(options.device)
    model = args.model or _default_model(args.engine)
    model_dir = ensure_model(model, engine=args.engine, assume_yes=args.yes, offline=args.offline)
    ensure_fast_decoder(
        model_dir,
        args.engine,
        options.providers()[0] == "CPUExecutionProvider",
        on_stage=lambda msg: print(f"lofi: {msg}...", file=sys.stderr),
    )
    engine = load_engine(args.engine, model_dir, options, model_name=model)
    # The sidecar records every parameter the track used: the model's defaults fill the gaps.
    defaults = getattr(engine, "default_params", None)
    defaults = defaults() if callable(defaults) else dict(getattr(engine, "defaults", None) or {})
    job = RenderJob(**{**job.__dict__, "params": {**defaults, **job.params}})
    paths = render(job, engine, engine_name=args.engine, model_name=model)
    for path in paths:
        print(path)
    return 0


_MUSICGEN_ONLY = {"top_k": "--top-k", "temperature": "--temperature"}
_ACESTEP_ONLY = {
    "lyrics": "--lyrics",
    "bpm": "--bpm",
    "keyscale": "--key",
    "timesignature": "--time-signature",
    "steps": "--steps",
    "shift": "--shift",
    "scheduler": "--scheduler",
}
_KEY_RE = re.compile(r"^([A-Ga-g])\s*([#♯b♭]?)\s*(major|minor|maj|min)$", re.IGNORECASE)


def _default_model(engine: str) -> str:
    return DEFAULT_ACESTEP_MODEL if engine == "ace-step" else DEFAULT_MODEL


def _render_params(args: argparse.Namespace) -> dict[str, Any]:
    """The request params from the command line: only what was given, under the engines' names."""
    given = {
        "top_k": args.top_k,
        "temperature": args.temperature,
        "guidance": args.guidance,
        "lyrics": args.lyrics,
        "bpm": args.bpm,
        "keyscale": _key(args.key) if args.key is not None else None,
        "timesignature": (
            _time_signature(args.time_signature) if args.time_signature is not None else None
        ),
        "steps": args.steps,
        "shift": args.shift,
        "scheduler": args.scheduler,
    }
    return {k: v for k, v in given.items() if v is not None}


def _key(text: str) -> str:
    """'a minor', 'F#maj', 'Bb Major' -> 'A minor', 'F# major', 'Bb major' (the model's form)."""
    from lofitui.errors import UsageError

    match = _KEY_RE.match(text.strip())
    if match is None:
        raise UsageError(f"--key {text!r}: use a note A-G, an optional # or b, and major or minor")
    note, accidental, scale = match.groups()
    accidental = {"♯": "#", "♭": "b"}.get(accidental, accidental)
    scale = "major" if scale.lower().startswith("maj") else "minor"
    return f"{note.upper()}{accidental} {scale}"


def _time_signature(text: str) -> str:
    """'4', '4/4', '6/8' -> the beats per bar the model was trained with ('4', '6')."""
    from lofitui.errors import UsageError

    beats = text.strip().split("/", 1)[0].strip()
    if beats not in ("2", "3", "4", "6"):
        raise UsageError(f"--time-signature {text!r}: use 2, 3, 4 or 6 beats per bar (or 3/4...)")
    return beats


def _check_engine_params(engine: str, job: Any) -> None:
    """Options of the other engine are refused; ACE-Step params are checked without the model."""
    from lofitui.errors import UsageError

    foreign = _MUSICGEN_ONLY if engine == "ace-step" else _ACESTEP_ONLY
    given = [flag for name, flag in foreign.items() if name in job.params]
    if given:
        other = "musicgen" if engine == "ace-step" else "ace-step"
        verb = "applies" if len(given) == 1 else "apply"
        raise UsageError(f"{', '.join(given)} only {verb} to --engine {other}")
    if engine == "ace-step":
        from lofitui.engines.acestep import AceStepSettings
        from lofitui.engines.base import TrackRequest

        probe = TrackRequest(job.prompt, job.duration_s, 0, engine, "", job.params)
        AceStepSettings.from_request(probe, {})


if __name__ == "__main__":
    raise SystemExit(main())
