"""``lofi models``: list, download, export, remove, verify, optimize models; print where they
live. A subcommand of ``lofi`` (:func:`add_parser`); the model domain is :mod:`lofitui.models`.

Every LofiError ends as one line on stderr, ``lofi: error: ...``, and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lofitui import paths
from lofitui.cli.exits import EXIT_INTERRUPTED, EXIT_USAGE
from lofitui.engines.musicgen_precision import COMPUTE_TYPES, DEFAULT_COMPUTE_TYPE
from lofitui.errors import Cancelled, LofiError, ModelError, UsageError
from lofitui.models import catalog, headless_refusal, store
from lofitui.models.catalog import MANIFEST_NAME


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``lofi models`` and its commands, added to ``lofi``'s subcommands."""
    parser = commands.add_parser(
        "models",
        help="manage the models lofi generates music with ('lofi models --help')",
        description="Manage the models lofi generates music with.",
    )
    sub = parser.add_subparsers(dest="models_command", metavar="COMMAND")
    sub.add_parser("list", help="known and installed models, sizes, free space")
    dl = sub.add_parser("download", help="download and verify a model (asks first)")
    dl.add_argument("name", metavar="NAME")
    dl.add_argument("-y", "--yes", action="store_true", help="do not ask; for scripts")
    dl.add_argument(
        "--offline", action="store_true", help="never use the network (also: HF_HUB_OFFLINE=1)"
    )
    dl.add_argument("--revision", metavar="R", help="repo branch, tag or commit to pin")
    rm = sub.add_parser("remove", help="delete one model's files")
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask; for scripts")
    path = sub.add_parser("path", help="print the models directory, or one model's directory")
    path.add_argument("name", metavar="NAME", nargs="?")
    show = sub.add_parser("show", help="one model: files, URLs, where to put them by hand")
    show.add_argument("name", metavar="NAME")
    verify = sub.add_parser("verify", help="re-check an installed model's files (no network)")
    verify.add_argument("name", metavar="NAME")
    export = sub.add_parser(
        "export",
        help="convert an ACE-Step checkpoint to ONNX (once; needs the export-acestep or "
        "export-acestep-v1 extra)",
        description="Convert an ACE-Step checkpoint into an ONNX model in the models directory: "
        "ace-step reads a diffusers-format ACE-Step 1.5 checkpoint, ace-step-v1 the original "
        "ACE-Step v1 (3.5B) checkpoint (into the files lofi.nvim publishes). A hub checkpoint is "
        "downloaded first (asks; verified); a local directory is used without any network. Needs "
        "torch: pip install -e '.[export-acestep]' or '.[export-acestep-v1]' (v1 also needs the "
        "original code from GitHub; see the README).",
    )
    export.add_argument("engine", metavar="ENGINE", help="ace-step or ace-step-v1")
    export.add_argument(
        "--source",
        metavar="NAME|REPO|DIR",
        help="the checkpoint. ace-step: turbo (default), base, their repo ids, or a local "
        "diffusers directory (model_index.json). ace-step-v1: v1 (default, "
        "ACE-Step/ACE-Step-v1-3.5B) or a local directory with its four sub-folders",
    )
    export.add_argument(
        "--code",
        metavar="DIR",
        help="ace-step-v1: a directory holding the original `acestep` package (default: the "
        "installed one, or $LOFI_ACESTEP_V1_CODE)",
    )
    export.add_argument(
        "--name",
        metavar="NAME",
        help="model name in the models directory (default: ace-step-turbo, ace-step-base, "
        "ace-step-v1-export, ...; -fp16 added with --fp16)",
    )
    export.add_argument(
        "--fp16", action="store_true", help="half-precision weights (half the size; for GPUs)"
    )
    export.add_argument(
        "-y", "--yes", action="store_true", help="download and replace without asking"
    )
    export.add_argument(
        "--offline", action="store_true", help="never use the network (also: HF_HUB_OFFLINE=1)"
    )
    export.add_argument(
        "--keep-source",
        action="store_true",
        help="keep the downloaded checkpoint after a successful export",
    )
    opt = sub.add_parser(
        "optimize", help="build the fast CPU decoder of a MusicGen model (once; cached)"
    )
    opt.add_argument("name", metavar="NAME|DIR")
    opt.add_argument(
        "--compute-type",
        default=DEFAULT_COMPUTE_TYPE,
        choices=COMPUTE_TYPES,
        help="the precision to build for, as `lofi --compute-type`: int8 (auto: 8-bit blocks "
        "and an int8 attention cache), int4 (smallest), float32 (the exported graphs' logits)",
    )
    return parser


def main(argv: list[str]) -> int:
    """``lofi models ARGV``: the exit code (as the ``lofi`` command gives it)."""
    from lofitui.cli import main as lofi_main

    return lofi_main(["models", *argv])


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``lofi models`` command; the exit code."""
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    command = getattr(args, "models_command", None)
    try:
        if command is None or command == "list":
            return cmd_list(out)
        if command == "download":
            return cmd_download(args.name, args.yes, args.offline, args.revision, out, err)
        if command == "remove":
            return cmd_remove(args.name, args.yes, out, err)
        if command == "path":
            return cmd_path(args.name)
        if command == "show":
            return cmd_show(args.name, out)
        if command == "verify":
            return cmd_verify(args.name, out, err)
        if command == "optimize":
            return cmd_optimize(args.name, args.compute_type, err)
        from lofitui.cli.export import cmd_export

        return cmd_export(args, out, err)
    except LofiError as exc:
        print(f"lofi: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file system problem outside the download path: still one line
        print(f"lofi: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Cancelled):
        print(
            "lofi: interrupted; run the same command again to resume the download",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


# -- list ---------------------------------------------------------------------------------------


_STATE_STYLE = {
    store.State.INSTALLED: "green",
    store.State.MANUAL: "green",
    store.State.PARTIAL: "yellow",
    store.State.DAMAGED: "red",
    store.State.MISSING: "dim",
}


def cmd_list(out: Console) -> int:
    root = paths.models_dir()
    if not out.is_terminal:
        out.width = max(out.width, 120)  # pipes and logs get whole rows, not wrapped cells
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("model", "engine", "variant", "get", "size", "on disk", "state"):
        table.add_column(column, no_wrap=True)
    defaults = set(catalog.DEFAULT_MODELS.values())
    for entry in catalog.entries():
        directory = store.model_dir(entry.name)
        state = store.state_of(entry, directory)
        on_disk = store.size_on_disk(directory)
        name = entry.name + (" *" if entry.name in defaults else "")
        table.add_row(
            name,
            entry.engine,
            entry.variant,
            "export" if entry.is_export else "download",
            f"~{store.human_size(entry.size)}",
            store.human_size(on_disk) if on_disk else "-",
            f"[{_STATE_STYLE[state]}]{state.value}[/]",
        )
    others = (
        sorted(
            p
            for p in root.iterdir()
            if p.is_dir()
            and p.name not in catalog.CATALOG
            and not p.name.startswith(".")  # .sources: checkpoints kept for `export`
            and not p.name.endswith(".partial")  # an export under way
        )
        if root.is_dir()
        else []
    )
    for directory in others:
        manifest = store.read_manifest(directory)
        engine = manifest.engine if manifest else _guess_engine(directory)
        table.add_row(
            directory.name,
            engine,
            "exported" if manifest and engine == "ace-step" else "custom directory",
            "-",
            "-",
            store.human_size(store.size_on_disk(directory)),
            "[green]use with --model[/]",
        )
    out.print(table)
    free = store.human_size(store.free_space(root))
    out.print(f"\nmodels directory: {root} ({free} free)   * = default model of its engine")
    out.print(
        "models can also be copied by hand into <models directory>/<model>/ "
        "(`lofi models show NAME` lists the files), or passed with --model DIR"
    )
    out.print(
        "ace-step models are made on this machine from the diffusers checkpoints: "
        "`lofi models export ace-step [--source base] [--fp16]` "
        "(needs pip install -e '.[export-acestep]')",
        markup=False,
    )
    out.print(
        "ace-step-v1 exports are made from the original checkpoint: "
        "`lofi models export ace-step-v1 [--fp16]` (needs pip install -e '.[export-acestep-v1]' "
        "and the original code)",
        markup=False,
    )
    return 0


def _guess_engine(directory: Path) -> str:
    """The engine of a directory placed by hand, from its files (no manifest)."""
    if (directory / "acestep.json").is_file():
        return "ace-step"
    if (directory / "encodec_decode.onnx").is_file():
        return "musicgen"
    return "?"


# -- download -----------------------------------------------------------------------------------


def cmd_download(
    name: str, yes: bool, offline: bool, revision: str | None, out: Console, err: Console
) -> int:
    from lofitui.cli import prompts as consent
    from lofitui.models import download

    entry = catalog.get_entry(name)
    directory = store.model_dir(entry.name)
    revision = revision or entry.revision
    state = store.state_of(entry, directory)
    if entry.is_export:
        if state.usable:
            out.print(f"{entry.name} is {state.value} in {directory}")
            return 0
        raise UsageError(
            f"{entry.name} is not downloaded ready-made: it is exported on this machine from "
            f"{entry.repo}; run `{entry.install_command}`"
        )
    if offline or download.offline_requested():
        if state.usable:
            out.print(f"{entry.name} is {state.value} in {directory}")
            return 0
        reason = "offline mode is on (--offline)" if offline else "offline mode is on"
        raise ModelError(download.no_network_message(entry, revision, directory, reason))
    if not yes and not consent.can_ask():
        raise UsageError(headless_refusal(entry))
    try:
        plan = download.plan_download(entry, revision, directory)
    except ModelError as exc:
        if not state.usable:
            raise
        out.print(f"{entry.name} is {state.value} in {directory} (could not check the hub: {exc})")
        return 0
    remaining = plan.remaining()
    if remaining and not yes and not consent.ask_download(plan, err):
        raise UsageError(f"not downloading {entry.name}: no consent")
    with consent.download_bar(err) as bar:
        download.download(plan, bar)
    verb = "downloaded and verified" if remaining else "already up to date, verified"
    out.print(
        f"{entry.name}: {verb} ({len(plan.files)} files, {store.human_size(plan.total)}, "
        f"{entry.repo}@{plan.commit[:12]}) in {directory}"
    )
    return 0


# -- show ---------------------------------------------------------------------------------------


def cmd_show(name: str, out: Console) -> int:
    from lofitui.models.download import file_url

    entry = catalog.get_entry(name)
    directory = store.model_dir(entry.name)
    state = store.state_of(entry, directory)
    manifest = store.read_manifest(directory)
    out.print(f"[bold]{entry.name}[/] ({entry.engine}, {entry.variant}): {entry.description}")
    pinned = f" @ {manifest.commit}" if manifest and manifest.commit else ""
    out.print(f"source: {entry.repo} (revision {entry.revision}){pinned}")
    out.print(f"directory: {directory} ({state.value})")
    params = ", ".join(f"{k}={v}" for k, v in entry.params.items())
    out.print(f"defaults: {params}")
    if entry.is_export:
        out.print(f"made by: {entry.install_command} (converts the diffusers checkpoint above)")
        out.print("files (written by the export):")
        for f in entry.files:
            mark = "✓" if (directory / f.local).is_file() else "·"
            out.print(f"  {mark} {f.local} (~{store.human_size(f.size)})", soft_wrap=True)
        for local in [
            n for n in (manifest.files if manifest else {}) if n not in entry.local_names
        ]:
            out.print(f"  ✓ {local}")
        return 0
    out.print(
        "files expected at this revision (download URL -> name in the directory; the download "
        "takes what the hub lists there, with its sizes):"
    )
    for f in entry.files:
        mark = "✓" if (directory / f.local).is_file() else "·"
        out.print(
            f"  {mark} {file_url(entry, f)} -> {f.local} (~{store.human_size(f.size)})",
            soft_wrap=True,
        )
    extra = [n for n in (manifest.files if manifest else {}) if n not in entry.local_names]
    for local in extra:
        out.print(f"  ✓ {local} (external weights found on the hub)")
    return 0


# -- remove -------------------------------------------------------------------------------------


def cmd_remove(name: str, yes: bool, out: Console, err: Console) -> int:
    from lofitui.cli import prompts as consent

    entry = catalog.get_entry(name)
    directory = store.model_dir(entry.name)
    files = store.removable_files(entry, directory)
    if not files:
        out.print(f"{entry.name} is not installed; nothing to remove")
        return 0
    size = sum(p.stat().st_size for p in files)
    if not yes:
        if not consent.can_ask():
            raise UsageError(f"removing {entry.name} needs confirmation: pass --yes")
        if not consent.ask_remove(entry.name, size, str(directory), err):
            raise UsageError(f"not removing {entry.name}")
    leftover = store.remove_files(files, directory)
    out.print(f"removed {entry.name}: {len(files)} files, {store.human_size(size)}")
    if leftover:
        names = ", ".join(p.name for p in leftover)
        out.print(f"left in {directory} (not lofi's): {names}")
    return 0


# -- path ---------------------------------------------------------------------------------------


def cmd_path(name: str | None) -> int:
    if name is None:
        print(paths.models_dir())
        return 0
    entry = catalog.find_entry(name)
    if entry is not None:
        print(store.model_dir(entry.name))
        return 0
    candidate = paths.models_dir() / name
    try:
        found = candidate.is_dir()
    except OSError:  # a name the file system refuses (too long...) names no model either
        found = False
    if found:
        print(candidate)
        return 0
    raise UsageError(f"unknown model {name!r}; known models: {', '.join(catalog.CATALOG)}")


# -- verify -------------------------------------------------------------------------------------


def cmd_verify(name: str, out: Console, err: Console) -> int:
    entry = catalog.get_entry(name)
    directory = store.model_dir(entry.name)
    manifest = store.read_manifest(directory)
    state = store.state_of(entry, directory)
    if manifest is None or not manifest.complete:
        if state is store.State.MANUAL:
            check = (
                f"`{entry.install_command}` makes a fresh copy"
                if entry.is_export
                else f"`lofi models download {entry.name}` checks it against the hub"
            )
            raise ModelError(
                f"{entry.name} was placed by hand (no {MANIFEST_NAME}): nothing to verify "
                f"against; {check}"
            )
        from lofitui.models.locate import not_installed_message

        raise ModelError(not_installed_message(entry, state))
    bad: list[str] = []
    for local, rec in sorted(manifest.files.items()):
        path: Path = directory / local
        if not path.is_file():
            bad.append(f"{local} (missing)")
            continue
        sha256, _ = store.file_hashes(path)
        if sha256 != rec.sha256:
            path.unlink()  # a corrupt weights file is never used; the next download replaces it
            bad.append(f"{local} (sha256 {sha256}, expected {rec.sha256}; deleted)")
    if bad:
        manifest.complete = False
        store.write_manifest(directory, manifest)
        raise ModelError(
            f"{entry.name} is damaged: {'; '.join(bad)}; run `{entry.install_command}`"
        )
    out.print(f"{entry.name}: {len(manifest.files)} files verified (sha256) in {directory}")
    return 0


# -- optimize -----------------------------------------------------------------------------------


def cmd_optimize(name: str, compute_type: str, err: Console) -> int:
    """MusicGen's prepare step for ``compute_type`` on the CPU, for any MusicGen model: built
    into the model's directory when lofi owns it, into lofi's cache otherwise."""
    from lofitui import session
    from lofitui.engines.musicgen_precision import fast_quant
    from lofitui.models.locate import locate_model

    directory = locate_model(name)
    options = session.runtime_options("cpu", 0)
    how = session.setup("musicgen", directory, options, {"compute_type": compute_type})
    quant = fast_quant(compute_type, options)
    with err.status("preparing") as status:
        path = session.prepare(
            "musicgen", directory, options, status.update, quant=quant, derived=how["derived"]
        )
    print(path)
    return 0
