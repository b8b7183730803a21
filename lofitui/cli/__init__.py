"""The ``lofi`` command: the terminal app, ``lofi --render`` and ``lofi models ...``.

Parse (:mod:`lofitui.cli.options`: only what was given), build the settings once over
config.toml (:func:`lofitui.config.build_settings`), hand them to the app or the renderer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from lofitui.cli.exits import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE
from lofitui.cli.options import RENDER_DURATION_S, build_parser
from lofitui.config import LoadedConfig, Settings, build_settings, load_config
from lofitui.errors import LofiError, UsageError


def setup_logging() -> Path | None:
    """Warnings and errors of lofi's threads go to a small rotating file, never the terminal;
    returns that file (None when the log dir is unwritable)."""
    import logging
    from logging.handlers import RotatingFileHandler

    from lofitui import paths

    log_file: Path | None = paths.log_dir() / "lofi.log"
    try:
        paths.log_dir().mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingFileHandler(
            paths.log_dir() / "lofi.log", maxBytes=1_000_000, backupCount=2, encoding="utf-8"
        )
    except OSError:
        handler = logging.NullHandler()  # an unwritable log dir must not stop the music
        log_file = None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("lofitui")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    return log_file


def main(argv: list[str] | None = None) -> int:
    """Run ``lofi ARGV``; the exit code.

    The last line of defence: an unexpected exception (a bug, not the user's error) is logged
    with its traceback and reported as one line naming it and the log file, exit 1.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    log_file = setup_logging()
    try:
        code = _run(argv)
    except Exception as exc:
        return _report_crash(exc, log_file)
    problem = emit([])  # what is still buffered: a full or closed stdout is reported here
    if problem is not None and code == 0:  # a failed run has said why already
        print(f"lofi: error: cannot write to stdout ({problem})", file=sys.stderr)
        return EXIT_USAGE
    return code


def emit(lines: list[str]) -> str | None:
    """Print ``lines`` to stdout and flush; None, or why stdout took none of it (closed, full,
    a reader gone). After a failure stdout is pointed at the null device, so the interpreter's
    own final flush cannot fail again with a traceback."""
    if sys.stdout is None:  # started with file descriptor 1 closed
        return "stdout is closed"
    try:
        for line in lines:
            try:
                print(line)
            except UnicodeEncodeError:  # a path the terminal's encoding cannot spell: its bytes
                sys.stdout.flush()
                sys.stdout.buffer.write(os.fsencode(line) + b"\n")
        sys.stdout.flush()
    except (OSError, ValueError) as exc:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
        return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    return None


def _report_crash(exc: Exception, log_file: Path | None) -> int:
    """Log ``exc`` with its traceback; one line on stderr; :data:`EXIT_INTERNAL`."""
    import logging

    logging.getLogger("lofitui").error("unexpected error", exc_info=exc)
    where = f"full traceback in {log_file}" if log_file else "the log dir is unwritable"
    message = str(exc).splitlines()[0] if str(exc).strip() else ""
    problem = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    with contextlib.suppress(OSError, ValueError):  # stderr itself may be gone
        print(f"lofi: internal error: {problem} ({where})", file=sys.stderr)
    return EXIT_INTERNAL


def _run(argv: list[str]) -> int:
    """:func:`main` without its last line of defence."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help/--version, already printed
        return int(exc.code or 0)
    except UsageError as exc:
        print(f"lofi: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    given = vars(args)
    if given.pop("command", None) == "models":
        from lofitui.cli.models import run

        return run(args)
    try:
        settings, loaded = load_settings(given)
        if "render" in given:
            for warning in loaded.warnings:
                print(f"lofi: warning: {warning}", file=sys.stderr)
            return render_files(settings, given)
        from lofitui.tui.app import run_app

        return run_app(settings, warnings=loaded.warnings, config_path=loaded.path)
    except LofiError as exc:
        print(f"lofi: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print("lofi: interrupted; no partial file was left behind", file=sys.stderr)
        return _interrupted_code(exc)


def load_settings(given: Mapping[str, Any]) -> tuple[Settings, LoadedConfig]:
    """The run's settings: the options ``given`` over config.toml (and the loaded file).

    The player creates the commented config file on first run; ``--render`` only reads it, and
    keeps its own track length (:data:`RENDER_DURATION_S`) unless ``--duration`` is given:
    config.toml's ``duration`` is the player's.
    """
    render = "render" in given
    loaded = load_config(create=not render)
    defaults = {"duration": RENDER_DURATION_S} if render else None
    return build_settings(loaded.config, given, defaults=defaults), loaded


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP during ``--render``: taken as Ctrl-C is (cancel, remove the partial
    file), exiting 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def _interrupted_code(exc: KeyboardInterrupt) -> int:
    return 128 + exc.signum if isinstance(exc, Terminated) else EXIT_INTERRUPTED


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` meanwhile; the old handlers come back."""
    saved: dict[int, Any] = {}
    try:
        for name in ("SIGTERM", "SIGHUP"):  # Windows has no SIGHUP
            if hasattr(signal, name):
                signum = getattr(signal, name)
                saved[signum] = signal.signal(signum, _raise_terminated)
    except ValueError:  # only the main thread may set handlers
        pass
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def render_files(settings: Settings, given: Mapping[str, Any]) -> int:
    """``lofi --render``: check everything the model is not needed for, open the engine,
    write the tracks; prints each written path. ``--out -``: one WAV stream on stdout.

    SIGTERM and SIGHUP take the Ctrl-C path (see :class:`Terminated`)."""
    with _terminate_as_interrupt():
        return _render_files(settings, given)


def _render_files(settings: Settings, given: Mapping[str, Any]) -> int:
    """:func:`render_files` within its signal handlers."""
    from lofitui import session
    from lofitui.audio.loudness import Loudness
    from lofitui.cli import prompts
    from lofitui.engines.base import TrackRequest
    from lofitui.engines.registry import engine_class
    from lofitui.render import RenderJob, check_writable, render, render_stream

    job = RenderJob(
        prompt=given["render"],
        duration_s=settings.duration,
        count=given.get("count", 1),
        seed=given.get("seed"),
        out_dir=given.get("out", Path(".")),
        format=given.get("format", "wav"),
        params=dict(settings.params),
        loudness=Loudness(settings.loudness),
    )
    # Everything checkable without the model is checked before loading it (which takes seconds).
    job.validate()
    engine_class(settings.engine).check(
        TrackRequest(job.prompt, job.duration_s, 0, settings.engine, settings.model, job.params)
    )
    if job.to_stdout:
        if sys.stdout is None:
            raise UsageError("--out - writes WAV audio to stdout, but stdout is closed")
        if os.isatty(1):
            raise UsageError("--out - writes WAV audio to stdout: pipe it (| aplay) or give a DIR")
    else:
        check_writable(job.out_dir)
    with _audio_stdout() if job.to_stdout else contextlib.nullcontext() as audio:
        with prompts.terminal(settings.assume_yes) as downloads:
            opened = session.open_engine(
                settings.engine,
                settings.model,
                device=settings.device,
                threads=settings.threads,
                offline=settings.offline,
                consent=downloads.consent,
                progress=downloads.progress,
                on_stage=lambda msg: print(f"lofi: {msg}...", file=sys.stderr),
                params=settings.params,
            )
        # The sidecar records every parameter the track used: the model's defaults fill the gaps.
        job = RenderJob(**{**job.__dict__, "params": {**opened.defaults, **job.params}})
        names = {"engine_name": settings.engine, "model_name": settings.model}
        if audio is None:
            paths = render(job, opened.engine, **names)
            problem = emit([str(path) for path in paths])
            if problem is not None:
                print(
                    f"lofi: error: cannot print to stdout ({problem}); the {len(paths)} "
                    f"track(s) were written to {job.out_dir}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            return 0
        try:
            render_stream(job, opened.engine, audio, **names)
        except BrokenPipeError:
            pass  # the reader had enough (| head): generation is cancelled, a quiet exit
        except OSError as exc:  # stdout is a file on a full disk, or a device that fails
            from lofitui.library.space import is_disk_full

            where = "the disk stdout writes to" if is_disk_full(exc) else "stdout"
            problem = "no space left on" if is_disk_full(exc) else "cannot write to"
            reason = exc.strerror or exc
            raise UsageError(f"{problem} {where} ({reason}): the WAV is cut short") from None
        except KeyboardInterrupt as exc:
            print("lofi: interrupted", file=sys.stderr)
            return _interrupted_code(exc)
    return 0


@contextlib.contextmanager
def _audio_stdout() -> Iterator[Callable[[bytes], None]]:
    """Stdout kept for the WAV stream alone: yields the function that writes to it, while file
    descriptor 1 points at stderr, so a stray print (ours, a library's, native code's) can never
    corrupt the audio."""
    sys.stdout.flush()
    audio_fd = os.dup(1)
    os.dup2(2, 1)

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(audio_fd, view) :]

    try:
        yield write
    finally:
        sys.stdout.flush()  # what was printed meanwhile belongs to stderr
        os.dup2(audio_fd, 1)
        os.close(audio_fd)


__all__ = [
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "build_parser",
    "load_settings",
    "main",
    "render_files",
]
