"""``lofi models export ace-step | ace-step-v1``: a checkpoint -> an ONNX model directory.

Two exporters share every step here; an :class:`ExportKind` says what differs between them.

- ``ace-step``: a diffusers-format ACE-Step 1.5 checkpoint (``lofitui.convert.acestep``);
- ``ace-step-v1``: the original ACE-Step v1 checkpoint, four sub-folders, into the file set
  lofi.nvim publishes (``lofitui.convert.acestep_v1``; also needs the original ``acestep`` code).

1. The source: a local checkpoint directory (used as is, no network), or a known hub checkpoint
   (``catalog.ACESTEP_SOURCES`` / ``catalog.ACESTEP_V1_SOURCES``) fetched into
   ``<models dir>/.sources/<name>/`` with the same consent, disk check, resume and SHA-256
   verification as any catalog download.
2. The export (torch only here) into ``<models dir>/<name>.partial``, renamed to
   ``<models dir>/<name>`` when complete.
3. A manifest (``lofi-model.json``) with every file's size and SHA-256: ``lofi models list``
   shows the model as installed and ``lofi models verify`` can check it later.

Every problem is a LofiError (one line, exit 2); the torch extra is checked before anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import re
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.prompt import Confirm

from lofitui import paths
from lofitui.cli.exits import EXIT_INTERRUPTED
from lofitui.convert import acestep, acestep_v1
from lofitui.convert.formats import EXPORT_EXTRA_HINT, EXPORT_V1_EXTRA_HINT
from lofitui.errors import LofiError, ModelError, UsageError
from lofitui.models import catalog, store
from lofitui.models.catalog import MANIFEST_NAME, ModelEntry

SOURCES_DIR = ".sources"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
OnMessage = Callable[[str], None]


@dataclass(frozen=True)
class ExportKind:
    """What one exporter needs from the shared steps."""

    engine: str  # the catalog engine of the models it makes
    label: str  # in messages: "ACE-Step 1.5"
    required: tuple[str, ...]  # modules of its extra
    extra_hint: str
    sources: Mapping[str, ModelEntry]
    default_source: str
    components: tuple[str, ...]  # the progress bar's steps
    check_local: Callable[[Path], object]  # UsageError: the directory is no such checkpoint
    local_name: Callable[[Path], str]  # the default model name of a local checkpoint
    export: Callable[[Path, Path, bool, OnMessage, str | None], object]
    memory: str  # RAM a full-size export needs


def require_export_extra(kind: ExportKind) -> None:
    """A one-line LofiError naming the extra when any exporter dependency is missing."""
    missing = [m for m in kind.required if importlib.util.find_spec(m) is None]
    if missing:
        raise LofiError(
            f"exporting {kind.label} needs {', '.join(missing)} (not installed in this "
            f"environment): {kind.extra_hint}"
        )


def sources_dir() -> Path:
    """Where downloaded diffusers checkpoints wait for (or are kept after) an export."""
    return paths.models_dir() / SOURCES_DIR


def resolve_source(kind: ExportKind, source: str) -> tuple[ModelEntry | None, Path | None]:
    """``(hub entry, None)`` for a known checkpoint, ``(None, directory)`` for a local one."""
    path = Path(source).expanduser()
    if path.is_dir():
        kind.check_local(path)
        return None, path.resolve()
    entry = catalog.find_source(source, kind.sources)
    if entry is not None:
        return entry, None
    known = ", ".join(f"{k} ({e.repo})" for k, e in kind.sources.items())
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        raise UsageError(
            f"unknown checkpoint {source!r}: lofi downloads {known}; for another repo, "
            f"download it yourself (`hf download {source} --local-dir DIR`) and pass --source DIR"
        )
    raise UsageError(f"--source {source!r}: no such directory, and not one of {known}")


def _check_diffusers(path: Path) -> None:
    if not (path / "model_index.json").is_file():
        raise UsageError(
            f"{path} is not a diffusers checkpoint (no model_index.json): pass the directory "
            "that AceStepPipeline.from_pretrained loads"
        )


def _local_variant(directory: Path) -> str:
    """``ace-step-turbo``, ``-base``, ``-sft``... from the checkpoint's transformer config
    (``xl-`` prefix for DiTs wider than the 2B models)."""
    try:
        config = json.loads((directory / "transformer" / "config.json").read_text())
    except (OSError, ValueError):
        raise UsageError(
            f"{directory} has no readable transformer/config.json: not an ACE-Step 1.5 checkpoint"
        ) from None
    variant = "turbo" if config.get("is_turbo") else str(config.get("model_version") or "base")
    variant = re.sub(r"[^a-z0-9]+", "-", variant.lower()).strip("-") or "base"
    if int(config.get("hidden_size") or 0) > 2048:
        variant = f"xl-{variant}"
    return f"ace-step-{variant}"


def default_name(
    kind: ExportKind, entry: ModelEntry | None, directory: Path | None, fp16: bool
) -> str:
    if entry is not None:
        name = catalog.export_name(entry, fp16)
        if name is not None:
            return name
    assert directory is not None
    return kind.local_name(directory) + ("-fp16" if fp16 else "")


def check_name(kind: ExportKind, name: str) -> str:
    if not _NAME_RE.match(name) or name.endswith(".partial"):
        raise UsageError(
            f"--name {name!r}: use letters, digits, '.', '_' and '-' (a directory name, not a path)"
        )
    entry = catalog.find_entry(name)
    if entry is not None and entry.engine != kind.engine:
        raise UsageError(f"--name {name!r} is the catalog's {entry.engine} model: choose another")
    return name


# -- the source checkpoint ------------------------------------------------------------------------


def fetch_source(entry: ModelEntry, yes: bool, offline: bool, err: Console) -> Path:
    """The local copy of a hub checkpoint, downloaded (after consent) when not complete yet."""
    from lofitui.cli import prompts as consent
    from lofitui.models import download

    directory = sources_dir() / entry.name
    if store.state_of(entry, directory).usable:
        return directory
    if offline or download.offline_requested():
        reason = "offline mode is on (--offline)" if offline else "offline mode is on"
        raise ModelError(
            f"cannot download the checkpoint {entry.repo}: {reason}; it needs "
            f"{download.file_url(entry, '').rsplit('/resolve/', 1)[0]}. Without network: download "
            f"it elsewhere (`hf download {entry.repo} --local-dir DIR`), copy DIR here and pass "
            "--source DIR"
        )
    if not yes and not consent.can_ask():
        raise UsageError(
            f"exporting first downloads the checkpoint {entry.repo} (about "
            f"{store.human_size(entry.size)}) into {directory}, and lofi downloads nothing "
            "without consent: run the command in a terminal, or pass --yes"
        )
    plan = download.plan_download(entry, entry.revision, directory)
    if plan.remaining() and not yes and not consent.ask_download(plan, err):
        raise UsageError(f"not downloading {entry.repo}: no consent")
    with consent.download_bar(err) as bar:
        download.download(plan, bar)
    return directory


def _source_weights(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*.safetensors") if p.is_file())


def check_export_space(name: str, source_dir: Path, fp16: bool) -> None:
    """Refuse an export that cannot fit: the catalog's size, or a bf16 -> fp32 estimate."""
    entry = catalog.find_entry(name)
    if entry is not None and entry.is_export:
        needed = entry.size
    else:
        needed = _source_weights(source_dir) * (1 if fp16 else 2)
    free = store.free_space(paths.models_dir())
    if needed > free:
        raise ModelError(
            f"not enough disk space to export {name}: needs about {store.human_size(needed)}, "
            f"{store.human_size(free)} free in {paths.models_dir()}; free some space or set "
            "LOFI_MODELS_DIR to a bigger disk"
        )


# -- the export ------------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keep torch/diffusers/transformers warnings and tqdm bars out of lofi's progress display."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(ImportError):
            import torch  # noqa: F401  (its import configures its loggers: quiet them after)
        names = (
            "torch",
            "torch.onnx",
            "torch.onnx._internal.exporter._registration",
            "diffusers",
            "transformers",
            "onnxscript",
        )
        loggers = [logging.getLogger(n) for n in names]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with contextlib.suppress(Exception):
            from diffusers.utils import logging as diffusers_logging

            diffusers_logging.set_verbosity_error()
            diffusers_logging.disable_progress_bar()
        with contextlib.suppress(Exception):
            from transformers.utils import logging as transformers_logging

            transformers_logging.set_verbosity_error()
            transformers_logging.disable_progress_bar()
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def run_export(
    kind: ExportKind, source_dir: Path, dest: Path, fp16: bool, err: Console, code: str | None
) -> None:
    """The kind's exporter with a rich bar on stderr: load, each component, side data."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    total = len(kind.components) + 2
    with quiet_libraries(), Progress(*columns, console=err) as bars:
        task = bars.add_task("loading the checkpoint (torch)", total=total)

        def on_message(message: str) -> None:
            if message.startswith("exporting "):
                done = 1 + kind.components.index(message.split()[1])
                bars.update(task, completed=done, description=message)
            elif message.startswith("exported "):
                bars.console.print(f"  {message}", highlight=False)
                bars.update(task, description="writing tokenizer and side data")
            elif message.startswith("done"):
                bars.update(task, completed=total, description="exported")

        kind.export(source_dir, dest, fp16, on_message, code)


def _export_v15(source: Path, dest: Path, fp16: bool, progress: OnMessage, code: str | None):
    return acestep.export_acestep(source, dest, fp16=fp16, progress=progress)


def _export_v1(source: Path, dest: Path, fp16: bool, progress: OnMessage, code: str | None):
    return acestep_v1.export_acestep_v1(source, dest, fp16=fp16, progress=progress, code=code)


EXPORT_KINDS: Mapping[str, ExportKind] = {
    "ace-step": ExportKind(
        engine="ace-step",
        label="ACE-Step",
        required=("torch", "diffusers", "transformers", "onnx", "onnxscript"),
        extra_hint=EXPORT_EXTRA_HINT,
        sources=catalog.ACESTEP_SOURCES,
        default_source="turbo",
        components=acestep.COMPONENTS,
        check_local=_check_diffusers,
        local_name=_local_variant,
        export=_export_v15,
        memory="25 GB",
    ),
    "ace-step-v1": ExportKind(
        engine="ace-step-v1",
        label="ACE-Step v1",
        required=("torch", "diffusers", "transformers", "onnx", "onnxscript", "librosa"),
        extra_hint=EXPORT_V1_EXTRA_HINT,
        sources=catalog.ACESTEP_V1_SOURCES,
        default_source="v1",
        components=acestep_v1.COMPONENTS,
        check_local=acestep_v1.check_checkpoint,
        local_name=lambda _path: catalog.ACESTEP_V1_EXPORT_NAME,
        export=_export_v1,
        memory="40 GB (an estimate)",
    ),
}
ALIASES = {"acestep": "ace-step", "acestep-v1": "ace-step-v1"}


def record_manifest(
    dest: Path, name: str, engine: str, repo: str, revision: str, commit: str | None
) -> int:
    """Hash every exported file into ``lofi-model.json``; returns the total size."""
    files: dict[str, store.FileRecord] = {}
    paths_ = sorted(p for p in dest.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    total = sum(p.stat().st_size for p in paths_)
    columns = (TextColumn("{task.description:<40}"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bars:
        task = bars.add_task("recording checksums", total=total)
        for path in paths_:
            sha256, _ = store.file_hashes(path, lambda n: bars.advance(task, n))
            files[path.name] = store.FileRecord(path.name, path.stat().st_size, sha256)
    manifest = store.Manifest(name, engine, repo, revision, commit, complete=True, files=files)
    store.write_manifest(dest, manifest)
    return total


def _confirm_replace(dest: Path, yes: bool, err: Console) -> None:
    from lofitui.cli import prompts as consent

    if yes or not dest.exists() or not any(dest.iterdir()):
        return
    if not consent.can_ask():
        raise UsageError(f"{dest} already exists: pass --yes to replace it, or choose --name")
    try:
        ok = Confirm.ask(f"Replace the model in {dest}?", console=err)
    except (EOFError, KeyboardInterrupt):
        ok = False
    if not ok:
        raise UsageError(f"not replacing {dest}")


def cmd_export(args: argparse.Namespace, out: Console, err: Console) -> int:
    engine = str(args.engine).lower()
    kind = EXPORT_KINDS.get(ALIASES.get(engine, engine))
    if kind is None:
        raise UsageError(
            f"cannot export {args.engine!r}: lofi exports ace-step and ace-step-v1 (MusicGen "
            "models are downloaded ready-made: lofi models download NAME)"
        )
    code = getattr(args, "code", None)
    if code is not None and kind.engine != "ace-step-v1":
        raise UsageError("--code is the original ACE-Step v1 code: only for ace-step-v1")
    require_export_extra(kind)
    if kind.engine == "ace-step-v1":
        acestep_v1.code_dir(code)  # before any download: the original code is importable
    entry, local = resolve_source(kind, args.source or kind.default_source)
    name = check_name(kind, args.name or default_name(kind, entry, local, args.fp16))
    dest = paths.models_dir() / name
    _confirm_replace(dest, args.yes, err)

    if entry is not None:
        source_dir = fetch_source(entry, args.yes, args.offline, err)
        source_manifest = store.read_manifest(source_dir)
        repo, revision = entry.repo, entry.revision
        commit = source_manifest.commit if source_manifest else None
    else:
        assert local is not None
        source_dir, repo, revision, commit = local, str(local), "local", None

    check_export_space(name, source_dir, args.fp16)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        run_export(kind, source_dir, dest, args.fp16, err, code)
    except KeyboardInterrupt:
        shutil.rmtree(partial, ignore_errors=True)
        err.print(f"lofi: export interrupted; nothing was written to {dest}", highlight=False)
        return EXIT_INTERRUPTED
    except LofiError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except MemoryError:
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelError(
            f"the export ran out of memory: the full-size {kind.label} export needs about "
            f"{kind.memory} of RAM"
        ) from None
    except Exception as exc:  # torch/diffusers failures: one line, never a traceback
        shutil.rmtree(partial, ignore_errors=True)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"the export failed: {type(exc).__name__}: {text[:300]}") from exc

    size = record_manifest(dest, name, kind.engine, repo, revision, commit)
    out.print(
        f"{name}: exported from {repo} ({'fp16' if args.fp16 else 'fp32'}, "
        f"{store.human_size(size)}) in {dest}",
        highlight=False,
    )
    if entry is not None and not args.keep_source:
        shutil.rmtree(source_dir, ignore_errors=True)
        out.print(
            f"deleted the downloaded checkpoint ({store.human_size(entry.size)}; "
            "--keep-source keeps it)",
            highlight=False,
        )
    out.print(
        f'render with: lofi --render "PROMPT" --engine {kind.engine} --model {name}',
        highlight=False,
    )
    return 0
