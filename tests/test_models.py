"""Models: catalog, local state, locate (no network), ensure/download against a fake hub."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
from collections import namedtuple
from pathlib import Path

import pytest
from cli_helpers import ensure_model_asking as ensure_model
from hubserver import FakeHub
from rich.console import Console

from lofitui.cli import prompts as consent
from lofitui.errors import ModelError, UsageError
from lofitui.models import catalog, download, locate_model, store
from lofitui.models.catalog import (
    CATALOG,
    DEFAULT_MODELS,
    GABOTECHS_REVISION,
    MANIFEST_NAME,
    entries,
    get_entry,
)

REPO = "gabotechs/music_gen"
BIG = "small_fp32/decoder_model_merged.onnx"  # the file the fault tests break: 3 MB, several chunks


def repo_files(*names: str) -> dict[str, bytes]:
    """Fixture content for the catalog entries ``names`` (same repo), random but deterministic."""
    files: dict[str, bytes] = {}
    for name in names:
        for f in get_entry(name).files:
            if f.remote.endswith(".json"):
                files[f.remote] = json.dumps({"model": name, "file": f.remote}).encode()
            else:
                size = 3_000_000 if f.remote == BIG else 40_000 + len(f.remote) * 1000
                seed = hashlib.sha256(f.remote.encode()).digest()
                files[f.remote] = (seed * (size // len(seed) + 1))[:size]
    return files


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_repo(
        REPO, repo_files("musicgen-small", "musicgen-small-fp16"), commit=GABOTECHS_REVISION
    )
    return fake_hub


def fetch(name: str = "musicgen-small", **kwargs) -> Path:
    kwargs.setdefault("progress", lambda p: None)
    return ensure_model(name, engine="musicgen", assume_yes=True, offline=False, **kwargs)


def assert_installed(hub: FakeHub, name: str = "musicgen-small") -> Path:
    entry = get_entry(name)
    directory = store.model_dir(name)
    served = hub.repos[REPO].files
    for f in entry.files:
        assert (directory / f.local).read_bytes() == served[f.remote], f.local
    assert store.state_of(entry) is store.State.INSTALLED
    assert not store.partial_files(directory)
    return directory


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection now fails the test loudly."""

    monkeypatch.setattr(socket.socket, "connect", _refuse)


# -- catalog ------------------------------------------------------------------------------------


def test_catalog_entries_are_complete_and_consistent():
    assert DEFAULT_MODELS["musicgen"] in CATALOG
    assert {"musicgen-small", "musicgen-small-fp16", "musicgen-medium", "musicgen-large"} <= set(
        CATALOG
    )
    for entry in entries("musicgen"):
        locals_ = entry.local_names
        assert len(set(locals_)) == len(locals_), entry.name
        assert {"config.json", "tokenizer.json", "text_encoder.onnx", "encodec_decode.onnx"} <= set(
            locals_
        )
        split = {"decoder_model.onnx", "decoder_with_past_model.onnx"} <= set(locals_)
        merged = "decoder_model_merged.onnx" in locals_
        assert split != merged, f"{entry.name}: exactly one decoder form"
        assert entry.size > 0 and all(f.size > 0 for f in entry.files)
        assert entry.engine == "musicgen" and entry.layout is not None
        assert entry.params["guidance_scale"] == 3.0
        if entry.repo == REPO:
            assert entry.revision == GABOTECHS_REVISION
    unpinned = {
        catalog.XENOVA_MUSICGEN_SMALL_REVISION,
        catalog.RUNWARE_BASE_REVISION,
        catalog.LOFI_MODELS_REVISION,
    }
    sources = [*catalog.ACESTEP_SOURCES.values(), *catalog.ACESTEP_V1_SOURCES.values()]
    for entry in [*entries(), *sources]:
        pinned = re.fullmatch(r"[0-9a-f]{40}", entry.revision) is not None
        assert pinned or entry.revision in unpinned, entry.name  # branches only by constant
    assert entries(engine="acestep") == []  # the engine is called "ace-step"
    for entry in entries("ace-step"):  # made by `lofi models export`, never downloaded
        assert entry.is_export and entry.install_command.startswith("lofi models export ace-step")
        assert {"acestep.json", "tokenizer.json", "transformer.onnx"} <= set(entry.local_names)
        assert entry.size > 0 and all(f.size > 0 for f in entry.files)
    for entry in entries("ace-step-v1"):  # the published set as it is, or an export of the original
        if entry.is_export:
            assert entry.install_command.startswith("lofi models export ace-step-v1")
        else:
            assert entry.layout is not None
        assert "transformer_decoder_weights.bin" in entry.local_names
    assert {e.engine for e in entries()} == {"musicgen", "ace-step", "ace-step-v1"}
    with pytest.raises(UsageError, match="known models: musicgen-small"):
        get_entry("musicgen-tiny")


# -- download -----------------------------------------------------------------------------------


def test_first_download_verifies_every_file_and_writes_manifest(hub):
    seen: list[download.DownloadProgress] = []
    directory = fetch(progress=seen.append)

    assert directory == store.model_dir("musicgen-small") == assert_installed(hub)
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    assert manifest["name"] == "musicgen-small" and manifest["repo"] == REPO
    assert (
        manifest["revision"] == manifest["commit"] == hub.repos[REPO].commit == GABOTECHS_REVISION
    )
    assert manifest["complete"] is True
    served = hub.repos[REPO].files
    for f in get_entry("musicgen-small").files:
        rec = manifest["files"][f.local]
        assert rec["remote"] == f.remote and rec["size"] == len(served[f.remote])
        assert rec["sha256"] == hashlib.sha256(served[f.remote]).hexdigest()
    # progress: bytes only go up, every file is verified, the last report is the whole model
    total = sum(len(served[f.remote]) for f in get_entry("musicgen-small").files)
    assert seen[-1].done == seen[-1].total == total
    dones = [p.done for p in seen]
    assert dones == sorted(dones)
    assert {p.file for p in seen if p.phase == "verify"} == set(
        get_entry("musicgen-small").local_names
    )
    # downloads go to the pinned commit; weights come from the CDN without the token
    resolves = [r.path for r in hub.requests if "/resolve/" in r.path]
    assert all(f"/resolve/{hub.repos[REPO].commit}/" in p for p in resolves[1:])
    cdn = [r for r in hub.requests if r.path.startswith("/cdn/")]
    assert len(cdn) == 3 and all("authorization" not in r.headers for r in cdn)
    # the files came from the listing of the two folders at the pinned commit
    trees = [r.path for r in hub.requests if "/tree/" in r.path]
    assert trees == [
        f"/api/models/{REPO}/tree/{GABOTECHS_REVISION}/{folder}"
        for folder in ("small", "small_fp32")
    ]
    assert locate_model("musicgen-small") == directory


def test_installed_model_is_used_without_any_network(hub, monkeypatch):
    fetch()
    hub.stop()
    before = len(hub.requests)
    monkeypatch.setattr(socket.socket, "connect", _refuse)

    assert fetch() == store.model_dir("musicgen-small")
    assert locate_model("musicgen-small") == store.model_dir("musicgen-small")
    assert len(hub.requests) == before


def _refuse(sock, address):
    raise AssertionError(f"network used: connect to {address}")


def test_dropped_connection_resumes_with_a_range_request(hub):
    hub.drop_after(REPO, BIG, 1_500_000)
    fetch()
    assert_installed(hub)
    sha = hub.sha256(REPO, BIG)
    gets = [r for r in hub.requests if r.method == "GET" and r.path == f"/cdn/{sha}"]
    assert len(gets) == 2
    assert "Range" not in gets[0].headers
    start = int(gets[1].headers["Range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= 1_500_000


def test_interrupted_download_resumes_on_the_next_run(hub):
    def interrupt(p: download.DownloadProgress) -> None:
        if (
            p.file == "decoder_model_merged.onnx"
            and p.phase == "download"
            and p.file_done >= 1 << 20
        ):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch(progress=interrupt)
    directory = store.model_dir("musicgen-small")
    (partial,) = store.partial_files(directory)
    kept = partial.stat().st_size
    assert partial.name.startswith("decoder_model_merged.onnx.") and kept >= 1 << 20
    assert store.state_of(get_entry("musicgen-small")) is store.State.PARTIAL
    with pytest.raises(ModelError, match="partial"):
        locate_model("musicgen-small")

    fetch()
    assert_installed(hub)
    sha = hub.sha256(REPO, BIG)
    ranges = [r.headers.get("Range") for r in hub.requests if r.path == f"/cdn/{sha}"]
    assert ranges == [None, f"bytes={kept}-"]


def test_corrupted_file_is_rejected_and_deleted(hub):
    bad_path = "small_fp32/encodec_decode.onnx"
    good = hub.repos[REPO].files[bad_path]
    bad = bytes(b ^ 0xFF for b in good[:10]) + good[10:]
    hub.corrupt(REPO, bad_path, bad)

    with pytest.raises(ModelError) as err:
        fetch()
    message = str(err.value)
    assert "checksum mismatch for encodec_decode.onnx" in message
    assert hashlib.sha256(good).hexdigest() in message
    assert hashlib.sha256(bad).hexdigest() in message
    assert "deleted" in message
    directory = store.model_dir("musicgen-small")
    assert not (directory / "encodec_decode.onnx").exists()
    assert not store.partial_files(directory)
    assert not store.state_of(get_entry("musicgen-small")).usable

    hub._corrupt.clear()  # the hub is fixed: the next run fetches only the missing file
    cdn_before = len([r for r in hub.requests if r.path.startswith("/cdn/")])
    fetch()
    assert_installed(hub)
    assert len([r for r in hub.requests if r.path.startswith("/cdn/")]) == cdn_before + 1


def test_external_data_next_to_a_graph_is_fetched_too(fake_hub):
    files = repo_files("musicgen-small")
    files["small_fp32/decoder_model_merged.onnx_data"] = b"\x01" * 50_000
    files["small_fp32/decoder_model.onnx_data"] = b"\x02" * 50_000  # not the chosen graph's
    fake_hub.add_repo(REPO, files, commit=GABOTECHS_REVISION)
    directory = fetch()
    assert (directory / "decoder_model_merged.onnx_data").read_bytes() == b"\x01" * 50_000
    assert not (directory / "decoder_model.onnx_data").exists()
    manifest = store.read_manifest(directory)
    assert manifest is not None and "decoder_model_merged.onnx_data" in manifest.files
    (directory / "decoder_model_merged.onnx_data").unlink()
    assert store.state_of(get_entry("musicgen-small")) is store.State.DAMAGED


def test_not_enough_disk_space_stops_before_downloading(hub, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ModelError, match=r"not enough disk space for musicgen-small: needs 3\.\d"):
        fetch()
    assert not [r for r in hub.requests if r.path.startswith("/cdn/")]


def test_offline_mode_names_model_url_and_alternatives(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as err:
        fetch()
    message = str(err.value)
    assert "'musicgen-small'" in message and "offline" in message
    assert (
        f"{hub.url}/{REPO}/resolve/{GABOTECHS_REVISION}/small_fp32/encodec_decode.onnx" in message
    )
    assert str(store.model_dir("musicgen-small")) in message and "--model DIR" in message
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ModelError, match=r"offline mode is on \(--offline\)"):
        ensure_model("musicgen-small", engine=None, assume_yes=True, offline=True)
    assert hub.requests == []


def test_unreachable_hub_gives_a_clear_message(hub):
    hub.stop()
    with pytest.raises(ModelError) as err:
        fetch()
    message = str(err.value)
    assert message.startswith("cannot download model 'musicgen-small': cannot reach 127.0.0.1:")
    assert f"{hub.url}/{REPO}/resolve/{GABOTECHS_REVISION}/" in message
    assert "put config.json, tokenizer.json, text_encoder.onnx" in message


def test_no_download_without_consent_when_no_one_can_be_asked(hub, monkeypatch):
    monkeypatch.setattr(consent, "can_ask", lambda: False)
    with pytest.raises(ModelError, match=r"downloads nothing without consent.*--yes"):
        ensure_model("musicgen-small", engine="musicgen", assume_yes=False, offline=False)
    assert hub.requests == []
    assert not store.model_dir("musicgen-small").exists()


def test_interactive_consent_names_model_size_and_destination(hub, monkeypatch):
    answers = iter([False, True])
    prompts: list[str] = []
    monkeypatch.setattr(consent, "can_ask", lambda: True)
    monkeypatch.setattr(
        consent.Confirm, "ask", lambda prompt, **kw: prompts.append(prompt) or next(answers)
    )
    shown = io.StringIO()
    monkeypatch.setattr(
        consent, "Console", lambda **kw: Console(file=shown, width=300, highlight=False)
    )

    with pytest.raises(ModelError, match="no consent"):
        ensure_model("musicgen-small", engine=None, assume_yes=False, offline=False)
    assert not [r for r in hub.requests if r.path.startswith("/cdn/")]
    text = shown.getvalue()
    assert "musicgen-small" in text and "3.1 MB" in text
    assert str(store.model_dir("musicgen-small")) in text and REPO in text

    ensure_model(
        "musicgen-small", engine=None, assume_yes=False, offline=False, progress=lambda p: None
    )
    assert_installed(hub)
    assert len(prompts) == 2


def test_pinned_revision_and_unknown_revision(hub):
    commit = hub.repos[REPO].commit
    directory = fetch(revision=commit)
    manifest = store.read_manifest(directory)
    assert manifest is not None and manifest.revision == manifest.commit == commit
    with pytest.raises(ModelError, match="revision 'no-such-tag' not found in gabotechs/music_gen"):
        fetch("musicgen-small-fp16", revision="no-such-tag")


def test_wrong_engine_is_a_usage_error(hub):
    with pytest.raises(UsageError, match="is a musicgen model, not acestep"):
        ensure_model("musicgen-small", engine="acestep", assume_yes=True, offline=False)


# -- manual placement and locate (no network) ---------------------------------------------------


def place_by_hand(name: str = "musicgen-small", files: dict[str, bytes] | None = None) -> Path:
    directory = store.model_dir(name)
    directory.mkdir(parents=True)
    for remote, data in (files or repo_files(name)).items():
        local = next(f.local for f in get_entry(name).files if f.remote == remote)
        (directory / local).write_bytes(data)
    return directory


def test_manually_placed_model_is_used_without_network(models_env, no_network, tmp_path):
    directory = place_by_hand()
    assert store.state_of(get_entry("musicgen-small")) is store.State.MANUAL
    assert locate_model("musicgen-small") == directory
    assert ensure_model("musicgen-small", engine=None, assume_yes=False, offline=True) == directory
    elsewhere = tmp_path / "my-model"
    elsewhere.mkdir()
    assert locate_model(str(elsewhere)) == elsewhere.resolve()
    assert ensure_model(str(elsewhere), engine=None, assume_yes=False, offline=False) == elsewhere
    custom = store.model_dir("my-finetune")
    custom.mkdir()
    assert locate_model("my-finetune") == custom


def test_locate_explains_what_is_missing(models_env, no_network):
    with pytest.raises(ModelError) as err:
        locate_model("musicgen-small")
    message = str(err.value)
    assert "'musicgen-small' is not installed" in message
    assert "lofi models download musicgen-small" in message
    assert str(store.model_dir("musicgen-small")) in message
    with pytest.raises(ModelError, match="not a directory and not a known model"):
        locate_model("musicgen-huge")
    with pytest.raises(ModelError, match="no such directory"):
        locate_model("./nowhere/model")


def test_download_adopts_correct_files_placed_by_hand(hub):
    served = repo_files("musicgen-small", "musicgen-small-fp16")
    directory = place_by_hand(
        files={f.remote: served[f.remote] for f in get_entry("musicgen-small").files}
    )
    good = (directory / "text_encoder.onnx").read_bytes()
    (directory / "text_encoder.onnx").write_bytes(bytes([good[0] ^ 1]) + good[1:])  # same size
    assert fetch() == directory  # used as placed: ensure_model never second-guesses by hand
    assert hub.requests == []

    download.download(download.plan_download(get_entry("musicgen-small")))  # explicit download
    assert_installed(hub)
    fetched = {r.path for r in hub.requests if r.path.startswith("/cdn/")}
    assert fetched == {f"/cdn/{hub.sha256(REPO, 'small_fp32/text_encoder.onnx')}"}


def test_state_of_partial_and_damaged(hub):
    entry = get_entry("musicgen-small")
    directory = store.model_dir(entry.name)
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}")
    assert store.state_of(entry) is store.State.PARTIAL
    fetch()
    os.truncate(directory / "decoder_model_merged.onnx", 10)
    assert store.state_of(entry) is store.State.DAMAGED
    assert not store.state_of(entry).usable


def test_default_progress_is_a_rich_bar_on_stderr(hub, capsys):
    ensure_model("musicgen-small", engine=None, assume_yes=True, offline=False)
    assert_installed(hub)
    assert "decoder_model_merged.onnx" in capsys.readouterr().err


def test_two_downloads_of_one_model_do_not_interleave(hub):
    import filelock

    directory = store.model_dir("musicgen-small")
    directory.mkdir(parents=True)
    with (
        filelock.FileLock(str(directory / store.LOCK_NAME)),
        pytest.raises(ModelError, match="another lofi process is downloading musicgen-small"),
    ):
        fetch()


def test_verify_finds_and_deletes_a_damaged_file(hub, capsys):
    from lofitui.cli.models import main

    directory = fetch()
    assert main(["verify", "musicgen-small"]) == 0
    data = bytearray((directory / "text_encoder.onnx").read_bytes())
    data[100] ^= 0xFF
    (directory / "text_encoder.onnx").write_bytes(bytes(data))
    assert main(["verify", "musicgen-small"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lofi: error: musicgen-small is damaged: text_encoder.onnx (sha256")
    assert not (directory / "text_encoder.onnx").exists()
    fetch()  # not usable any more, so ensure_model fetches the one missing file
    assert_installed(hub)
