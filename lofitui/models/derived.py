"""Files lofi derives on the user's machine from a model (the fast MusicGen decoder), and where.

- A model in lofi's models directory keeps them next to its files: they belong to it, are listed
  with it, counted in its size and removed with it (:func:`derived_files`).
- Any other directory (``--model DIR``) is never written to: its derived files go to lofi's own
  cache, ``<models dir>/.derived/<key>/``, where ``key`` is a hash of the files they are built
  from (their names, sizes and SHA-256). A copy of the same model elsewhere finds the same
  build; a changed file gets a new one. Hashes are remembered by path, size and modification
  time (``.derived/hashes.json``), so a multi-GB graph is read once, not on every start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from lofitui import paths
from lofitui.atomic import write_json_atomic
from lofitui.convert.formats import CROSS_KV, FAST_QUANTS, fast_file_name
from lofitui.engines.musicgen_files import MusicGenFiles

DERIVED_DIR = ".derived"
HASHES_NAME = "hashes.json"
SOURCE_NAME = "source.json"


def derived_files(directory: Path) -> list[Path]:
    """Files lofi built itself in a model directory (removed with the model)."""
    names = [CROSS_KV, *(fast_file_name(q) for q in FAST_QUANTS)]
    found = []
    for name in names:
        for path in (directory / name, directory / f"{name}.data"):
            if path.is_file():
                found.append(path)
    return found


def cache_root() -> Path:
    """lofi's cache of files derived from directories it does not own."""
    return paths.models_dir() / DERIVED_DIR


def owns(model_dir: Path) -> bool:
    """Whether ``model_dir`` is one of lofi's own model directories (written to freely)."""
    root = paths.models_dir().resolve()
    resolved = Path(model_dir).resolve()
    return root in resolved.parents and cache_root().resolve() not in resolved.parents


def source_files(model_dir: Path) -> list[Path]:
    """The files the derived ones are built from: the decoder graph lofi rebuilds, its external
    weights, and the config that gives its shape."""
    files = MusicGenFiles.find(model_dir)
    graph = files.exact_source
    sidecars = [p for p in (Path(f"{graph}_data"), Path(f"{graph}.data")) if p.is_file()]
    return [graph, *sidecars, files.config]


def file_sha256(path: Path) -> str:
    """SHA-256 of ``path``, read once per (path, size, mtime) and remembered in the cache."""
    stat = path.stat()
    record = [stat.st_size, stat.st_mtime_ns]
    index_path = cache_root() / HASHES_NAME
    index: dict[str, list] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(index_path.read_text(encoding="utf-8"))
        index = loaded if isinstance(loaded, dict) else {}
    key = str(path.resolve())
    known = index.get(key)
    if isinstance(known, list) and len(known) == 3 and known[:2] == record:
        return str(known[2])
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    index[key] = [*record, digest.hexdigest()]
    index_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(index_path, index)
    return digest.hexdigest()


def derived_dir(model_dir: Path) -> Path:
    """Where the files lofi derives from the model in ``model_dir`` live: the directory itself
    when lofi owns it, else a cache entry keyed by the hashes of the files they are built from
    (created with a ``source.json`` saying which directory and files it was made from)."""
    model_dir = Path(model_dir)
    if owns(model_dir):
        return model_dir
    sources = source_files(model_dir)
    described = [
        {"name": p.name, "size": p.stat().st_size, "sha256": file_sha256(p)} for p in sources
    ]
    blob = json.dumps(described, sort_keys=True, separators=(",", ":")).encode()
    target = cache_root() / hashlib.sha256(blob).hexdigest()[:32]
    if not (target / SOURCE_NAME).is_file():
        target.mkdir(parents=True, exist_ok=True)
        write_json_atomic(target / SOURCE_NAME, {"model_dir": str(model_dir), "files": described})
    return target
