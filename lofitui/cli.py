"""The ``lofi`` command: the terminal app, ``lofi --render`` and ``lofi models ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from lofitui import __version__
from lofitui.engines.runtime import DEVICE_CHOICES
from lofitui.errors import LofiError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_MODEL = "musicgen-small"


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
        help=f"catalog name or model directory (default {DEFAULT_MODEL})",
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
        help="classifier-free guidance scale (default 3; 1 disables)",
    )
    models = parser.add_argument_group("models")
    models.add_argument(
        "--yes", "-y", action="store_true", help="download a missing model without asking"
    )
    models.add_argument("--offline", action="store_true", help="never use the network")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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

    given = {"top_k": args.top_k, "temperature": args.temperature, "guidance": args.guidance}
    job = RenderJob(
        prompt=args.render,
        duration_s=args.duration,
        count=args.count,
        seed=args.seed,
        out_dir=args.out,
        format=args.format,
        params={k: v for k, v in given.items() if v is not None},
    )
    # Everything checkable without the model is checked before loading it (which takes seconds).
    job.validate()
    cls = engine_class(args.engine)
    if not cls.min_duration_s <= job.duration_s <= cls.max_duration_s:
        raise UsageError(
            f"duration must be between {cls.min_duration_s:g} and {cls.max_duration_s:g} "
            f"seconds for {args.engine} (got {job.duration_s:g})"
        )
    if args.threads < 0:
        raise UsageError(f"threads must be >= 0 (got {args.threads})")
    check_writable(job.out_dir)
    options = RuntimeOptions(device=args.device, threads=args.threads)
    resolve_providers(options.device)
    model = args.model or DEFAULT_MODEL
    model_dir = ensure_model(model, engine=args.engine, assume_yes=args.yes, offline=args.offline)
    ensure_fast_decoder(
        model_dir,
        args.engine,
        options.providers()[0] == "CPUExecutionProvider",
        on_stage=lambda msg: print(f"lofi: {msg}...", file=sys.stderr),
    )
    engine = load_engine(args.engine, model_dir, options, model_name=model)
    defaults = getattr(engine, "default_params", dict)()
    job = RenderJob(**{**job.__dict__, "params": {**defaults, **job.params}})
    paths = render(job, engine, engine_name=args.engine, model_name=model)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
