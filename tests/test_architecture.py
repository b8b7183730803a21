"""The import contracts in pyproject.toml (``[tool.importlinter]``) hold: layers only point down.

Run in-process through import-linter's own API on the lofitui this test imports, so CI (which
runs pytest) enforces them; ``lint-imports`` by hand gives the same report.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="needs the test extra: pip install -e '.[test]'")

from importlinter.application import output, use_cases
from importlinter.configuration import configure

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
SUMMARY = re.compile(r"Contracts: (\d+) kept, (\d+) broken\.")

configure()


def lint(config: Path) -> tuple[bool, str, int]:
    """Check every contract in ``config``: (all kept, the report, how many contracts ran)."""
    with output.console.capture() as captured:
        kept = use_cases.lint_imports(config_filename=str(config), cache_dir=None, no_logo=True)
    report = captured.get()
    summary = SUMMARY.search(report)
    ran = int(summary[1]) + int(summary[2]) if summary else 0
    return kept, report, ran


def contract_count(config: Path) -> int:
    return len(tomllib.loads(config.read_text())["tool"]["importlinter"]["contracts"])


def test_the_graph_is_built_from_this_checkout() -> None:
    spec = importlib.util.find_spec("lofitui")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve().is_relative_to(ROOT)


def test_import_contracts_are_kept() -> None:
    kept, report, ran = lint(PYPROJECT)
    assert kept, report
    assert ran == contract_count(PYPROJECT) >= 7, report  # every contract ran


def test_a_broken_rule_is_reported(tmp_path: Path) -> None:
    """The check can fail: the same settings and a rule lofitui really breaks."""
    settings = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    config = tmp_path / "pyproject.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [tool.importlinter]
            root_package = "{settings["root_package"]}"
            include_external_packages = {str(settings["include_external_packages"]).lower()}

            [[tool.importlinter.contracts]]
            name = "engines may not import errors (deliberately false)"
            type = "forbidden"
            source_modules = ["lofitui.engines"]
            forbidden_modules = ["lofitui.errors", "textual"]
            """
        )
    )
    kept, report, ran = lint(config)
    assert not kept
    assert ran == 1, report
    assert "engines may not import errors (deliberately false) BROKEN" in report
    assert "lofitui.engines is not allowed to import lofitui.errors" in report
    assert "not allowed to import textual" not in report  # engines really import no textual


def test_a_cycle_and_an_upward_import_are_reported(tmp_path: Path, monkeypatch) -> None:
    """The cycle and layer rules catch what they promise, on a two-module package."""
    package = tmp_path / "archdemo"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("from archdemo import high\n")
    (package / "high.py").write_text("from archdemo import low\n")
    config = tmp_path / "setup.toml"
    config.write_text(
        textwrap.dedent(
            """
            [tool.importlinter]
            root_package = "archdemo"

            [[tool.importlinter.contracts]]
            name = "acyclic"
            type = "acyclic_siblings"
            ancestors = ["archdemo"]

            [[tool.importlinter.contracts]]
            name = "layers"
            type = "layers"
            layers = ["archdemo.high", "archdemo.low"]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    kept, report, ran = lint(config)
    assert not kept
    assert ran == 2, report
    assert "acyclic BROKEN" in report and "layers BROKEN" in report
    assert "archdemo.low is not allowed to import archdemo.high" in report


def test_runtime_imports_stay_light() -> None:
    """Lazy imports the contracts cannot see: loading the runtime layers pulls no converter,
    no onnx or torch (only the converters need them) and no UI toolkit."""
    probe = textwrap.dedent(
        """
        import sys
        import lofitui.config, lofitui.engines.acestep, lofitui.engines.musicgen
        import lofitui.library, lofitui.models.store
        heavy = ("onnx", "torch", "textual", "rich", "lofitui.convert.musicgen_fast",
                 "lofitui.convert.acestep", "lofitui.tui", "lofitui.render")
        print(" ".join(m for m in heavy if m in sys.modules))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
