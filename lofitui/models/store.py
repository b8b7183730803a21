"""Model directories on disk: the manifest, installed state, sizes, removal. Never any network.

``lofi-model.json`` (written by the downloader after every verified file)::

    {"format": 1, "name": "musicgen-small", "engine": "musicgen",
     "repo": "gabotechs/music_gen", "revision": "main", "commit": "<40 hex>",
     "complete": true,
     "files": {"text_encoder.onnx": {"remote": "small_fp32/text_encoder.onnx",
                                     "size": 439000000, "sha256": "<64 hex>"},
               "config.json": {..., "git_sha1": "<40 hex>"}}}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from lofitui import paths
from lofitui.atomic import write_json_atomic
from lofitui.errors import ModelError
from lofitui.models.catalog import MANIFEST_NAME, ModelEntry
from lofitui.models.derived import derived_files

PARTIAL_SUFFIX = ".incomplete"
LOCK_NAME = ".lofi-download.lock"
MANIFEST_FORMAT = 1


class State(Enum):
    MISSING = "not installed"
    PARTIAL = "partial"  # some files (or resumable partial downloads) present
    INSTALLED = "installed"  # downloaded by lofi, every file verified against the hub's hash
    MANUAL = "installed (manual)"  # files placed by hand: present, never checked against the hub
    DAMAGED = "damaged"  # a file listed in the manifest is missing or has the wrong size

    @property
    def usable(self) -> bool:
        return self in (State.INSTALLED, State.MANUAL)


@dataclass
class FileRecord:
    remote: str
    size: int
    sha256: str
    git_sha1: str | None = None  # for files the hub keeps in plain git (it records no sha256)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"remote": self.remote, "size": self.size, "sha256": self.sha256}
        if self.git_sha1 is not None:
            data["git_sha1"] = self.git_sha1
        return data


@dataclass
class Manifest:
    name: str
    engine: str
    repo: str
    revision: str
    commit: str | None = None
    complete: bool = False
    files: dict[str, FileRecord] = field(default_factory=dict)

    @staticmethod
    def for_entry(entry: ModelEntry, revision: str, commit: str | None) -> Manifest:
        return Manifest(entry.name, entry.engine, entry.repo, revision, commit)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "engine": self.engine,
            "repo": self.repo,
            "revision": self.revision,
            "commit": self.commit,
            "complete": self.complete,
            "files": {local: rec.to_json() for local, rec in sorted(self.files.items())},
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Manifest:
        files = {
            local: FileRecord(
                str(rec["remote"]), int(rec["size"]), str(rec["sha256"]), rec.get("git_sha1")
            )
            for local, rec in dict(data.get("files") or {}).items()
        }
        return Manifest(
            name=str(data["name"]),
            engine=str(data.get("engine", "")),
            repo=str(data.get("repo", "")),
            revision=str(data.get("revision", "main")),
            commit=data.get("commit"),
            complete=bool(data.get("complete", False)),
            files=files,
        )


def model_dir(name: str) -> Path:
    """Where the catalog model ``name`` lives (it may not exist)."""
    return paths.models_dir() / name


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest in ``directory``; None when absent or unreadable (treated as a manual dir)."""
    try:
        data = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
        return Manifest.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Write atomically: a crash leaves the old manifest or the new one, never half of one."""
    write_json_atomic(directory / MANIFEST_NAME, manifest.to_json())


def partial_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(PARTIAL_SUFFIX))


def expected_files(entry: ModelEntry, manifest: Manifest | None) -> list[str]:
    """Local names a complete copy of ``entry`` has: the manifest's when lofi downloaded it
    (what the hub's listing held), else those of the first complete set placed by hand, else
    the catalog's."""
    if manifest is not None and manifest.complete:
        return list(manifest.files)
    return list(entry.local_names)


def _known_names(entry: ModelEntry) -> set[str]:
    names = set(entry.local_names)
    for complete in entry.complete_sets():
        names |= complete
    return names


def state_of(entry: ModelEntry, directory: Path | None = None) -> State:
    directory = directory or model_dir(entry.name)
    if not directory.is_dir():
        return State.MISSING
    manifest = read_manifest(directory)
    if manifest is not None and manifest.complete:
        for local, rec in manifest.files.items():
            path = directory / local
            if not path.is_file() or path.stat().st_size != rec.size:
                return State.DAMAGED
        return State.INSTALLED
    partials = partial_files(directory)
    placed = any(all((directory / n).is_file() for n in c) for c in entry.complete_sets())
    if placed and not partials:
        return State.MANUAL
    if partials or any((directory / n).is_file() for n in _known_names(entry)):
        return State.PARTIAL
    return State.MISSING


def size_on_disk(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    total = 0
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total


def free_space(directory: Path) -> int:
    """Free bytes on the file system that holds (or will hold) ``directory``."""
    probe = directory
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def file_hashes(path: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, read once in 8 MiB chunks."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            sha256.update(chunk)
            git.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return sha256.hexdigest(), git.hexdigest()


def removable_files(entry: ModelEntry, directory: Path) -> list[Path]:
    """Exactly the files lofi put (or would put) in a model directory, nothing else."""
    manifest = read_manifest(directory)
    names: set[str] = _known_names(entry)
    if manifest is not None:
        names |= set(manifest.files)
    found = [directory / n for n in sorted(names) if (directory / n).is_file()]
    found += partial_files(directory)
    found += [p for p in derived_files(directory) if p not in found]
    for extra in (MANIFEST_NAME, LOCK_NAME):
        if (directory / extra).is_file():
            found.append(directory / extra)
    found += sorted(directory.glob(f".{MANIFEST_NAME}.*.part"))  # a crash mid-write
    return found


def remove_files(files: Iterable[Path], directory: Path) -> list[Path]:
    """Delete ``files``, then the directory if that left it empty. Returns what is left over."""
    for path in files:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise ModelError(f"cannot delete {path}: {exc.strerror or exc}") from None
    leftover = sorted(directory.iterdir()) if directory.is_dir() else []
    if directory.is_dir() and not leftover:
        directory.rmdir()
    return leftover


def placement_hint(entry: ModelEntry, directory: Path) -> str:
    """How to install ``entry`` by hand: which files go where."""
    names = []
    for f in entry.files:
        base = f.remote.rsplit("/", 1)[-1]
        names.append(f.local if base == f.local else f"{f.local} (from {f.remote})")
    return f"put {', '.join(names)} in {directory}/ or pass --model DIR"


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop always returns
