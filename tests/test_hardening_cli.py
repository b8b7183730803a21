"""Hardening of the ``lofi`` command (issue #13): the last line of defence, absurd thread counts,
a closed stdout, simultaneous saves, signals during ``--render``. Real ``lofi`` subprocesses."""

from __future__ import annotations

import textwrap
from pathlib import Path

from cli_helpers import run_lofi


def _crashing_module(tmp_path: Path, fault: str) -> str:
    """A module that runs the real ``lofi`` main with one function replaced by ``fault``.

    A bug cannot be provoked through a real input (that would be a bug to fix), so the
    unexpected exception is injected at the first step of ``--render`` after parsing.
    """
    (tmp_path / "crashing_lofi.py").write_text(
        textwrap.dedent(
            f"""
            import lofitui.render

            def fault(*args, **kwargs):
                {fault}

            lofitui.render.check_writable = fault
            from lofitui.cli import main

            raise SystemExit(main())
            """
        )
    )
    return "crashing_lofi"


def test_unexpected_exception_is_one_line_and_logged(tmp_path: Path, cli_env: dict) -> None:
    module = _crashing_module(tmp_path, "raise RuntimeError('injected fault\\nsecond line')")
    result = run_lofi("--render", "piano", "--out", "out", cwd=tmp_path, env=cli_env, module=module)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lofi: internal error: RuntimeError: injected fault (")
    assert "full traceback in" in lines[0] and "lofi.log" in lines[0]
    logged_at = Path(lines[0].split("full traceback in ", 1)[1].rstrip(")"))
    text = logged_at.read_text()
    assert "Traceback" in text and "injected fault" in text and "def fault" not in text
    assert logged_at.is_relative_to(tmp_path / "state")  # the log file in the state dir


def test_unexpected_exception_without_message(tmp_path: Path, cli_env: dict) -> None:
    module = _crashing_module(tmp_path, "raise AssertionError()")
    result = run_lofi("--render", "piano", "--out", "out", cwd=tmp_path, env=cli_env, module=module)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("lofi: internal error: AssertionError (full traceback in ")


def test_user_errors_stay_exit_2(tmp_path: Path, cli_env: dict) -> None:
    module = _crashing_module(
        tmp_path, "from lofitui.errors import UsageError; raise UsageError('your fault')"
    )
    result = run_lofi("--render", "piano", "--out", "out", cwd=tmp_path, env=cli_env, module=module)
    assert result.returncode == 2
    assert result.stderr.strip() == "lofi: error: your fault"
