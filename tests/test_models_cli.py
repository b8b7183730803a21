"""`lofi models ...` end to end: a real subprocess against the fake hub (never the internet)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cli_helpers import one_error_line, run_lofi
from hubserver import FakeHub
from test_models import REPO, repo_files

from lofitui.models import store
from lofitui.models.catalog import GABOTECHS_REVISION, MANIFEST_NAME, get_entry

ROOT = Path(__file__).resolve().parent.parent


def lofi_models(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `lofi models ARGS` with stdin not a terminal (a pipe, or /dev/null)."""
    # models_env already pointed everything into tmp_path. Belt and braces: anything not
    # addressed to 127.0.0.1 goes to a dead proxy, not the internet.
    proxy = "http://127.0.0.1:9"
    env = {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "ALL_PROXY": proxy}
    return run_lofi("models", *args, env={**env, "HF_HUB_DISABLE_TELEMETRY": "1"}, stdin=stdin)


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_repo(
        REPO, repo_files("musicgen-small", "musicgen-small-fp16"), commit=GABOTECHS_REVISION
    )
    return fake_hub


def test_download_then_everything_works_with_the_hub_gone(hub):
    result = lofi_models("download", "musicgen-small", "--yes")
    assert result.returncode == 0, result.stderr
    directory = store.model_dir("musicgen-small")
    assert "musicgen-small: downloaded and verified (5 files" in result.stdout
    assert str(directory) in result.stdout
    assert (directory / MANIFEST_NAME).is_file()
    for f in get_entry("musicgen-small").files:
        assert (directory / f.local).read_bytes() == hub.repos[REPO].files[f.remote]

    hub.stop()
    asked = len(hub.requests)
    listing = lofi_models("list")
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if line.startswith("musicgen-small "))
    assert "installed" in row and "3.1 MB" in row
    assert "not installed" in next(  # the default (*)
        line for line in listing.stdout.splitlines() if line.startswith("musicgen-small-fp16 *")
    )
    path = lofi_models("path", "musicgen-small")
    assert path.returncode == 0 and path.stdout.strip() == str(directory)
    assert lofi_models("verify", "musicgen-small").returncode == 0
    again = lofi_models("download", "musicgen-small", "--yes")
    assert (
        again.returncode == 0 and "installed" in again.stdout and "could not check" in again.stdout
    )
    offline = lofi_models("download", "musicgen-small", "--offline")
    assert offline.returncode == 0 and "installed" in offline.stdout
    assert len(hub.requests) == asked


def test_headless_download_without_yes_is_refused(hub):
    line = one_error_line(lofi_models("download", "musicgen-small"))
    assert "'musicgen-small'" in line and "without consent" in line and "--yes" in line
    assert hub.requests == []
    assert not store.model_dir("musicgen-small").exists()
    # an answer on a pipe is not a terminal either: still no
    line = one_error_line(lofi_models("download", "musicgen-small", stdin="y\n"))
    assert hub.requests == []


@pytest.mark.parametrize("how", ["flag", "env"])
def test_offline_without_the_model_names_model_and_url(hub, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ("--offline",) if how == "flag" else ()
    line = one_error_line(lofi_models("download", "musicgen-small-fp16", "--yes", *args))
    assert "'musicgen-small-fp16'" in line and "offline mode is on" in line
    assert f"{hub.url}/{REPO}/resolve/{GABOTECHS_REVISION}/small_fp16/encodec_decode.onnx" in line
    assert str(store.model_dir("musicgen-small-fp16")) in line
    assert hub.requests == []


def test_unreachable_hub(hub):
    hub.stop()
    line = one_error_line(lofi_models("download", "musicgen-small", "--yes"))
    assert "cannot reach 127.0.0.1" in line and f"/resolve/{GABOTECHS_REVISION}/small_fp32/" in line


def test_remove_deletes_only_that_model(hub):
    assert lofi_models("download", "musicgen-small", "--yes").returncode == 0
    assert lofi_models("download", "musicgen-small-fp16", "--yes").returncode == 0
    small = store.model_dir("musicgen-small")
    (small / "my-notes.txt").write_text("mine")

    line = one_error_line(lofi_models("remove", "musicgen-small"))
    assert "--yes" in line
    assert (small / "decoder_model_merged.onnx").is_file()

    result = lofi_models("remove", "musicgen-small", "--yes")
    assert result.returncode == 0, result.stderr
    assert "removed musicgen-small: 6 files" in result.stdout  # 5 + the manifest
    assert "my-notes.txt" in result.stdout
    assert sorted(p.name for p in small.iterdir()) == ["my-notes.txt"]
    fp16 = get_entry("musicgen-small-fp16")
    assert store.state_of(fp16) is store.State.INSTALLED
    assert lofi_models("remove", "musicgen-small", "--yes").stdout.startswith(
        "musicgen-small is not installed"
    )


def test_list_shows_every_state_and_free_space(hub, models_env):
    assert lofi_models("download", "musicgen-small-fp16", "--yes").returncode == 0
    partial = store.model_dir("musicgen-small")
    partial.mkdir(parents=True)
    (partial / "config.json").write_text("{}")
    (models_env / "my-finetune").mkdir()
    result = lofi_models("list")
    assert result.returncode == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "partial" in rows["musicgen-small"]
    assert "installed" in rows["musicgen-small-fp16"]
    assert "not installed" in rows["musicgen-large"] and "~13.8 GB" in rows["musicgen-large"]
    assert "custom directory" in rows["my-finetune"]
    assert f"models directory: {models_env} (" in result.stdout and "free)" in result.stdout


def test_show_lists_urls_and_local_names(hub):
    result = lofi_models("show", "musicgen-small-q8")
    assert result.returncode == 0
    assert (
        "https://" not in result.stdout
        and f"{hub.url}/Xenova/musicgen-small/resolve/main/onnx/decoder_model_merged_quantized.onnx"
        " -> decoder_model_merged.onnx"
        in result.stdout
    )


def test_usage_errors_exit_2_with_one_line(hub):
    line = one_error_line(lofi_models("download", "musicgen-enormous", "--yes"))
    assert "unknown model 'musicgen-enormous'" in line and "musicgen-small" in line
    line = one_error_line(lofi_models("download", "musicgen-small", "--yes", "--revision", "v9"))
    assert "revision 'v9' not found" in line
    assert lofi_models("frobnicate").returncode == 2
    assert lofi_models("--help").returncode == 0
