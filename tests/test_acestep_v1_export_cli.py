"""`lofi models export ace-step-v1`: bad input is one line, and the CLI around the exporter.

Runs without torch: the missing extra is the real environment's; past that check, the torch step
is replaced in-process by a copy of the committed tiny export (tests/fixtures/acestep-v1-tiny), so
what lofi owns (the original code's check, the source, the name, the manifest) runs for real.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from cli_helpers import one_error_line, run_lofi
from hubserver import FakeHub

from lofitui.cli import export as export_cmd
from lofitui.cli import models as commands
from lofitui.convert.acestep_v1 import CHECKPOINT_FOLDERS, CODE_ENV
from lofitui.models import catalog, locate_model, store
from lofitui.models.layout import Listed

FIXTURE = Path(__file__).parent / "fixtures" / "acestep-v1-tiny"


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_export_without_the_extra_names_it(tmp_path: Path, cli_env: dict) -> None:
    checkpoint = tmp_path / "checkpoint"
    result = run_lofi(
        *("models", "export", "ace-step-v1", "--source", str(checkpoint), "--yes"),
        cwd=tmp_path,
        env=cli_env,
    )
    line = one_error_line(result)
    assert "ACE-Step v1 needs torch" in line and "pip install -e '.[export-acestep-v1]'" in line
    assert not Path(cli_env["LOFI_MODELS_DIR"]).exists()


@pytest.fixture
def fake_v1_exporter(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path, bool, str]]:
    """The extra taken as installed and the torch step replaced by a copy of the tiny export."""
    calls: list[tuple[Path, Path, bool, str]] = []

    def run_export(kind, source_dir: Path, dest: Path, fp16: bool, err: object, code) -> None:
        assert kind.engine == "ace-step-v1"
        calls.append((source_dir, dest, fp16, code))
        partial = dest.with_name(dest.name + ".partial")
        shutil.copytree(FIXTURE, partial, ignore=shutil.ignore_patterns("reference.*", "*.md"))
        partial.rename(dest)

    monkeypatch.setattr(export_cmd, "require_export_extra", lambda kind: None)
    monkeypatch.setattr(export_cmd, "run_export", run_export)
    monkeypatch.delenv(CODE_ENV, raising=False)
    return calls


def _code(tmp_path: Path) -> Path:
    """A directory laid out like a clone of the original code (nothing is imported from it)."""
    root = tmp_path / "ACE-Step"
    (root / "acestep" / "models").mkdir(parents=True)
    (root / "acestep" / "models" / "ace_step_transformer.py").write_text("")
    return root


def _checkpoint(tmp_path: Path) -> Path:
    root = tmp_path / "ACE-Step-v1-3.5B"
    for folder in CHECKPOINT_FOLDERS:
        (root / folder).mkdir(parents=True)
        (root / folder / "config.json").write_text("{}")
    return root


def test_bad_input_is_one_line_before_any_work(
    models_env: Path, tmp_path: Path, fake_v1_exporter: list, capsys: pytest.CaptureFixture
) -> None:
    code, checkpoint = _code(tmp_path), _checkpoint(tmp_path)
    partial = tmp_path / "partial"
    (partial / "umt5-base").mkdir(parents=True)
    cases = [
        ([], "original ACE-Step v1 code is not installed"),  # neither installed nor --code
        (["--code", str(tmp_path / "nowhere")], "holds no ACE-Step v1 code"),
        (["--code", str(code), "--source", str(tmp_path / "missing")], "no such directory"),
        (["--code", str(code), "--source", str(partial)], "no ace_step_transformer, music_dcae"),
        (["--code", str(code), "--source", "someone/ACE-Step-v2"], "hf download someone/"),
        (["--code", str(code), "--source", str(checkpoint), "--name", "../x"], "--name '../x'"),
        (["--code", str(code), "--source", str(checkpoint), "--name", "ace-step-turbo"], "catalog"),
    ]
    for args, message in cases:
        assert commands.main(["export", "ace-step-v1", *args]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("lofi: error: ") and message in line, line
    assert "ACE-Step@d612523" in _error(["export", "ace-step-v1"], capsys)
    assert "only for ace-step-v1" in _error(["export", "ace-step", "--code", str(code)], capsys)
    assert fake_v1_exporter == []
    assert not any(models_env.glob("*"))  # nothing written


def _error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert commands.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def test_export_of_a_local_checkpoint_installs_the_catalog_model(
    models_env: Path, tmp_path: Path, fake_v1_exporter: list, capsys: pytest.CaptureFixture
) -> None:
    code, checkpoint = _code(tmp_path), _checkpoint(tmp_path)
    argv = ["export", "ace-step-v1", "--source", str(checkpoint), "--fp16", "--code", str(code)]
    assert commands.main(argv) == 0
    ((source, dest, fp16, passed_code),) = fake_v1_exporter
    assert source == checkpoint.resolve() and fp16 and passed_code == str(code)
    assert dest.name == "ace-step-v1-export-fp16" and locate_model(dest.name) == dest
    manifest = store.read_manifest(dest)
    assert manifest is not None and manifest.engine == "ace-step-v1" and manifest.complete
    assert "transformer_decoder_weights.bin" in manifest.files
    out = capsys.readouterr().out
    assert "--engine ace-step-v1 --model ace-step-v1-export-fp16" in out
    entry = catalog.get_entry("ace-step-v1-export-fp16")
    assert entry.install_command == "lofi models export ace-step-v1 --fp16"
    assert store.state_of(entry, dest).usable


def test_the_hub_source_takes_the_four_folders_and_nothing_else() -> None:
    entry = catalog.find_source("ACE-Step/ACE-Step-v1-3.5B", catalog.ACESTEP_V1_SOURCES)
    assert entry is catalog.ACESTEP_V1_SOURCES["v1"] and entry.layout is not None
    assert catalog.export_name(entry, False) == "ace-step-v1-export"
    listing = {
        path: Listed(path, 10)
        for path in (
            "README.md",
            "ace_step_transformer/config.json",
            "ace_step_transformer/diffusion_pytorch_model.safetensors",
            "music_dcae_f8c8/config.json",
            "music_vocoder/config.json",
            "umt5-base/config.json",
            "umt5-base/tokenizer.json",
        )
    }
    chosen = entry.layout.choose(listing, entry.repo)
    assert [c.local for c in chosen] == sorted(set(listing) - {"README.md"})
    del listing["music_vocoder/config.json"]
    with pytest.raises(Exception, match="has no music_vocoder/ folder"):
        entry.layout.choose(listing, entry.repo)


def test_export_from_the_hub_downloads_the_four_folders_then_exports(
    fake_hub: FakeHub, tmp_path: Path, fake_v1_exporter: list, capsys: pytest.CaptureFixture
) -> None:
    source = catalog.ACESTEP_V1_SOURCES["v1"]
    files = {f.remote: (f.remote.encode() * 500)[:20_000] for f in source.files}
    files["README.md"] = b"# a model card"  # outside the four folders: stays on the hub
    fake_hub.add_repo_at(source.repo, files, source.revision)
    code = _code(tmp_path)

    assert commands.main(["export", "ace-step-v1", "--code", str(code)]) == 2  # no consent
    assert "without consent" in capsys.readouterr().err and fake_v1_exporter == []
    argv = ["export", "ace-step-v1", "--code", str(code), "--yes", "--keep-source"]
    assert commands.main(argv) == 0
    ((src_dir, dest, fp16, _),) = fake_v1_exporter
    assert src_dir == export_cmd.sources_dir() / source.name and not fp16
    fetched = {str(p.relative_to(src_dir)) for p in src_dir.rglob("*") if p.is_file()}
    assert fetched == {f.local for f in source.files} | {catalog.MANIFEST_NAME}
    assert store.state_of(source, src_dir) is store.State.INSTALLED  # verified, kept
    manifest = store.read_manifest(dest)
    assert (
        manifest is not None
        and manifest.repo == source.repo
        and dest.name == ("ace-step-v1-export")
    )
    assert store.state_of(catalog.get_entry("ace-step-v1-export")) is store.State.INSTALLED
