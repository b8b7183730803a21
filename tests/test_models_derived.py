"""``--model DIR`` gets the fast path too: what lofi builds from a directory it does not own goes
to its own cache, keyed by the model files' hashes; the directory is never written to."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import run_lofi
from musicgen_fixture import META_FILES, require_fixture

from lofitui import paths, session
from lofitui.errors import UsageError
from lofitui.models import derived


def user_dir(root: Path) -> Path:
    """A MusicGen fp16 export the user keeps somewhere of their own (flat layout)."""
    src = require_fixture()
    root.mkdir(parents=True)
    for name in META_FILES:
        shutil.copy(src / name, root / name)
    for graph in (src / "fp16").glob("*.onnx"):
        shutil.copy(graph, root / graph.name)
    return root


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (names, recursively) and its SHA-256."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_a_users_directory_is_built_for_in_the_cache_and_left_alone(models_env, tmp_path):
    mine = user_dir(tmp_path / "my-models" / "musicgen")
    before = snapshot(mine)
    said: list[str] = []
    opened = session.open_engine(
        "musicgen",
        str(mine),
        device="cpu",
        threads=1,
        on_stage=said.append,
        params={"compute_type": "int4"},
    )
    assert opened.engine.describe()["decoder"] == "fast-q4kv"
    assert snapshot(mine) == before  # nothing written, nothing changed
    cache = derived.cache_root()
    assert cache == paths.models_dir() / ".derived"
    (entry,) = [p for p in cache.iterdir() if p.is_dir()]
    assert {"decoder_fast_q4kv.onnx", "decoder_cross_kv.onnx"} <= {p.name for p in entry.iterdir()}
    notices = [m for m in said if "not written to" in m]
    assert len(notices) == 1 and str(entry) in notices[0] and "not written to" in notices[0]
    source = json.loads((entry / derived.SOURCE_NAME).read_text())
    assert source["model_dir"] == str(mine)
    assert {f["name"] for f in source["files"]} == {"decoder_model.onnx", "config.json"}

    # The same files elsewhere find the same build: keyed by content, not by path.
    copy = shutil.copytree(mine, tmp_path / "elsewhere")
    said.clear()
    again = session.open_engine(
        "musicgen",
        str(copy),
        device="cpu",
        threads=1,
        on_stage=said.append,
        params={"compute_type": "int4"},
    )
    assert again.engine.describe()["decoder"] == "fast-q4kv" and not said
    assert derived.derived_dir(copy) == entry
    # A changed weights file is another model: another entry.
    graph = copy / "decoder_model.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 1
    graph.write_bytes(bytes(data))
    assert derived.derived_dir(copy) != entry


def test_compute_types_from_the_command_line_for_a_directory(tmp_path, cli_env):
    mine = user_dir(tmp_path / "mine")
    before = snapshot(mine)
    out = tmp_path / "out"
    # None: the option left out (auto). Each build says where it goes; int8 reuses auto's.
    builds = {None: True, "float32": True, "int8": False, "int4": True}
    for kind, builds_now in builds.items():
        chosen = [] if kind is None else ["--compute-type", kind]
        args = ["--render", "rain", "--model", str(mine), "--duration", "1", "--top-k", "1"]
        result = run_lofi(*args, *chosen, "--out", str(out), env=cli_env)
        assert result.returncode == 0, result.stderr
        (wav,) = [Path(p) for p in result.stdout.split()]
        sidecar = json.loads(wav.with_suffix(".json").read_text())
        assert sidecar["params"]["compute_type"] == (kind or "int8"), sidecar
        assert ("is not written to" in result.stderr) == builds_now, result.stderr
    assert snapshot(mine) == before
    bad = run_lofi("--render", "rain", "--compute-type", "int3", env=cli_env)
    assert bad.returncode == 2 and "compute-type" in bad.stderr and "int4" in bad.stderr


def test_config_sets_the_compute_type(tmp_path):
    from lofitui.config import build_settings, load_config

    file = tmp_path / "config.toml"
    file.write_text('[musicgen]\ncompute_type = "int4"\n')
    loaded = load_config(file, create=False)
    assert loaded.warnings == ()
    config = loaded.config
    assert build_settings(config, {}).params["compute_type"] == "int4"
    given = build_settings(config, {"compute_type": "float32"})
    assert given.params["compute_type"] == "float32"
    with pytest.raises(UsageError, match="compute-type must be one of auto, float32, int8, int4"):
        build_settings(config, {"compute_type": "fp8"})
