"""Running the real `lofi` command in a subprocess, and checking its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lofitui.cli import prompts
from lofitui.models import ensure_model

ROOT = Path(__file__).resolve().parent.parent


def run_lofi(
    *args: str,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    module: str = "lofitui",
) -> subprocess.CompletedProcess:
    """``python -m lofitui ARGS`` with stdin not a terminal; never a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single ``lofi: error: ...`` line of a run that exited 2."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    # Stage notes before it end in "..." (a first run of a model directory builds its fast
    # decoder in lofi's cache and says so); the error is the one other line.
    lines = [line for line in result.stderr.strip().splitlines() if not line.endswith("...")]
    assert len(lines) == 1 and lines[0].startswith("lofi: error: "), result.stderr
    return lines[0]


def ensure_model_asking(
    name_or_dir: str, *, engine: str | None, assume_yes: bool, offline: bool, **kwargs
) -> Path:
    """``ensure_model`` as a ``lofi`` command calls it: consent from ``--yes`` or the terminal
    prompt, progress as the rich bar on stderr unless ``progress`` is given."""
    with prompts.terminal(assume_yes) as downloads:
        kwargs.setdefault("progress", downloads.progress)
        return ensure_model(
            name_or_dir, engine=engine, offline=offline, consent=downloads.consent, **kwargs
        )
