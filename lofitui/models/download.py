"""Getting a catalog model onto disk: plan, check space, fetch with resume, verify, record.

Everything goes through huggingface_hub: its HTTP session (proxies, auth token, offline switch,
user agent), its URL builder and HEAD metadata call (the same ``X-Repo-Commit`` /
``X-Linked-Etag`` / ``X-Linked-Size`` headers ``hf_hub_download`` relies on), its tree listing
(``list_repo_tree``: every file of a folder at a commit, with its size and hash), and its error
types. The files are chosen from that listing by the entry's layout (:mod:`.layout`), never from
a list written in advance; the commit the revision names is resolved once and every request
after it asks for that commit.

Why not ``hf_hub_download`` itself: since huggingface_hub 1.x it downloads into a process-unique
temporary file that is deleted when the download fails, so a transfer interrupted by Ctrl-C, a
closed laptop or a long outage starts again from zero. lofi's models are GBs, so the file body is
streamed here instead, into ``<local name>.<hash prefix>.incomplete`` in the model directory. That
file survives interruptions; the next attempt, in this run (transient errors are retried) or in a
later one, asks for the rest with a ``Range`` header. The hash in the name ties a partial file to
one exact remote file, so a partial of an older revision is never extended with newer bytes.

Verification: after the last byte, the file is hashed (SHA-256, plus the git blob SHA-1 for the
few small files the hub keeps in plain git) and compared with what the hub recorded for the pinned
commit, before it gets its final name. A mismatch deletes the file and raises a ModelError that
names the file, the expected and the actual hash.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import filelock
import httpx2
from huggingface_hub import (
    HfApi,
    RepoFile,
    constants,
    get_hf_file_metadata,
    get_session,
    hf_hub_url,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

from lofitui.errors import Cancelled, ModelError
from lofitui.models import layout as layout_mod
from lofitui.models import store
from lofitui.models.catalog import ModelEntry, ModelFile
from lofitui.models.layout import Layout

CHUNK_SIZE = 1 << 20
RETRIES = 5  # consecutive failed attempts without a single new byte before giving up
RETRY_WAIT_S = 1.0  # doubled after each failed attempt, capped at 8 s
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DownloadProgress:
    """Where a model download is. ``phase`` is "download", "verify" or "done"."""

    file: str  # local name of the file being worked on
    file_done: int
    file_total: int
    done: int  # bytes of the whole model that are on disk
    total: int
    phase: str = "download"

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


ProgressCallback = Callable[[DownloadProgress], None]


@dataclass(frozen=True)
class RemoteFile:
    """One file as the hub records it at the pinned commit."""

    remote: str
    local: str
    size: int
    sha256: str | None  # LFS files (every weights file)
    git_oid: str | None  # plain-git files (configs): the blob's SHA-1
    url: str

    @property
    def key(self) -> str:
        """Identifies this exact content (names the partial download)."""
        return (self.sha256 or self.git_oid or "unknown")[:16]


@dataclass(frozen=True)
class DownloadPlan:
    entry: ModelEntry
    revision: str
    commit: str
    endpoint: str
    directory: Path
    files: tuple[RemoteFile, ...]

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)

    def partial_path(self, rf: RemoteFile) -> Path:
        return self.directory / f"{rf.local}.{rf.key}{store.PARTIAL_SUFFIX}"

    def is_done(self, rf: RemoteFile, manifest: store.Manifest | None) -> bool:
        """Already downloaded and verified (per the manifest) with the same content."""
        if manifest is None:
            return False
        rec = manifest.files.get(rf.local)
        path = self.directory / rf.local
        if rec is None or not path.is_file() or path.stat().st_size != rf.size:
            return False
        if rf.sha256 is not None:
            return rec.sha256 == rf.sha256
        return rf.git_oid is not None and rec.git_sha1 == rf.git_oid

    def bytes_on_disk(self, rf: RemoteFile, manifest: store.Manifest | None) -> int:
        if self.is_done(rf, manifest):
            return rf.size
        partial = self.partial_path(rf)
        return min(partial.stat().st_size, rf.size) if partial.is_file() else 0

    def remaining(self) -> int:
        """Bytes still to transfer, counting finished files and partial downloads."""
        manifest = store.read_manifest(self.directory)
        return sum(rf.size - self.bytes_on_disk(rf, manifest) for rf in self.files)


# -- environment, read at call time (tests and users set these after import) -------------------


def hub_endpoint() -> str:
    """The hub to talk to: ``HF_ENDPOINT`` when set, else huggingface_hub's default."""
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def offline_requested() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    return constants.is_offline_mode()


def file_url(entry: ModelEntry, file: ModelFile | str, revision: str | None = None) -> str:
    """The address a file is downloaded from (what to fetch by hand without lofi)."""
    remote = file if isinstance(file, str) else file.remote
    return hf_hub_url(
        entry.repo, remote, revision=revision or entry.revision, endpoint=hub_endpoint()
    )


# -- user-facing messages ------------------------------------------------------------------------


def no_network_message(entry: ModelEntry, revision: str, directory: Path, reason: str) -> str:
    base = file_url(entry, "", revision)
    remotes = ", ".join(f.remote for f in entry.files)
    return (
        f"cannot download model {entry.name!r}: {reason}; it needs {remotes} from {base} "
        f"(e.g. {file_url(entry, entry.files[-1], revision)}). Without network: "
        f"{store.placement_hint(entry, directory)}"
    )


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot reach {urlsplit(hub_endpoint()).netloc} ({text})"


def _hub_error(entry: ModelEntry, revision: str, exc: HfHubHTTPError, what: str) -> ModelError:
    if isinstance(exc, GatedRepoError):
        return ModelError(f"{entry.repo} is gated on the hub: log in with `hf auth login` first")
    if isinstance(exc, RepositoryNotFoundError):
        return ModelError(f"model {entry.name!r}: repository {entry.repo} not found on the hub")
    if isinstance(exc, RevisionNotFoundError):
        return ModelError(f"model {entry.name!r}: revision {revision!r} not found in {entry.repo}")
    if isinstance(exc, RemoteEntryNotFoundError):
        return ModelError(f"model {entry.name!r}: {what} not found in {entry.repo}@{revision}")
    status = exc.response.status_code if exc.response is not None else "?"
    return ModelError(f"model {entry.name!r}: the hub answered HTTP {status} for {what}")


class _Network:
    """Turns transport and hub errors into one clear ModelError."""

    def __init__(self, entry: ModelEntry, revision: str, directory: Path) -> None:
        self.entry, self.revision, self.directory = entry, revision, directory

    def __call__(self, exc: BaseException, what: str) -> ModelError:
        if isinstance(exc, HfHubHTTPError):
            return _hub_error(self.entry, self.revision, exc, what)
        return ModelError(
            no_network_message(self.entry, self.revision, self.directory, _network_reason(exc))
        )


_TRANSPORT_ERRORS = (httpx2.TransportError, OfflineModeIsEnabled, ConnectionError)
_NETWORK_ERRORS = (*_TRANSPORT_ERRORS, HfHubHTTPError)


# -- planning -----------------------------------------------------------------------------------


def _listing(
    api: HfApi, entry: ModelEntry, layout: Layout, commit: str
) -> dict[str, layout_mod.Listed]:
    """Every file of the layout's folders at ``commit``, as the hub lists them."""
    listed: dict[str, layout_mod.Listed] = {}
    for folder in layout.folders:
        for item in api.list_repo_tree(
            entry.repo, path_in_repo=folder or None, revision=commit, recursive=layout.recursive
        ):
            if not isinstance(item, RepoFile):
                continue
            lfs = item.lfs
            listed[item.path] = layout_mod.Listed(
                path=item.path,
                size=int(lfs.size if lfs is not None else item.size),
                sha256=lfs.sha256 if lfs is not None else None,
                git_oid=None if lfs is not None else item.blob_id,
            )
    return listed


def plan_download(
    entry: ModelEntry, revision: str | None = None, directory: Path | None = None
) -> DownloadPlan:
    """Ask the hub what ``entry`` is at ``revision``: the commit, then the listing of its
    folders there, from which its layout picks the files (with their sizes and hashes)."""
    revision = revision or entry.revision
    directory = directory or store.model_dir(entry.name)
    if entry.layout is None:
        raise ModelError(f"model {entry.name!r} is not downloaded: run `{entry.install_command}`")
    if offline_requested():
        raise ModelError(
            no_network_message(entry, revision, directory, "offline mode is on (HF_HUB_OFFLINE)")
        )
    endpoint = hub_endpoint()
    network = _Network(entry, revision, directory)
    layout = entry.layout
    try:
        meta = get_hf_file_metadata(
            hf_hub_url(entry.repo, layout.probe, revision=revision, endpoint=endpoint),
            timeout=CONNECT_TIMEOUT_S,
            endpoint=endpoint,
        )
    except _NETWORK_ERRORS as exc:
        raise network(exc, layout.probe) from None
    commit = meta.commit_hash
    if not commit:
        raise ModelError(f"{endpoint} does not answer like a Hugging Face hub (no X-Repo-Commit)")
    try:
        listing = _listing(HfApi(endpoint=endpoint), entry, layout, commit)
    except _NETWORK_ERRORS as exc:
        raise network(
            exc, f"the listing of {', '.join(f or '/' for f in layout.folders)}"
        ) from None
    where = f"model {entry.name!r}: {entry.repo}@{revision}"
    try:
        chosen = layout.choose(listing, where)
    except ModelError as exc:
        raise ModelError(f"{exc}; the catalog entry does not match this revision") from None
    files = tuple(
        RemoteFile(
            remote=c.file.path,
            local=c.local,
            size=c.file.size,
            sha256=c.file.sha256,
            git_oid=c.file.git_oid,
            url=hf_hub_url(entry.repo, c.file.path, revision=commit, endpoint=endpoint),
        )
        for c in chosen
    )
    return DownloadPlan(entry, revision, commit, endpoint, directory, files)


def check_disk_space(plan: DownloadPlan) -> None:
    """Refuse to start a download that cannot fit (counting what is already on disk)."""
    needed = plan.remaining()
    free = store.free_space(plan.directory)
    if needed > free:
        raise ModelError(
            f"not enough disk space for {plan.entry.name}: needs {store.human_size(needed)}, "
            f"{store.human_size(free)} free on the disk of {plan.directory}; free some space or "
            "set LOFI_MODELS_DIR to a bigger disk"
        )


# -- downloading --------------------------------------------------------------------------------


class _Transfer:
    """Moves one plan onto disk, reporting progress."""

    def __init__(
        self,
        plan: DownloadPlan,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.plan = plan
        self.progress = progress
        self.cancel = cancel
        self.network = _Network(plan.entry, plan.revision, plan.directory)
        self.done = 0

    def report(self, rf: RemoteFile, file_done: int, phase: str = "download") -> None:
        if self.progress is not None:
            self.progress(
                DownloadProgress(rf.local, file_done, rf.size, self.done, self.plan.total, phase)
            )

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"download of {self.plan.entry.name} cancelled")

    def run(self) -> store.Manifest:
        plan = self.plan
        manifest = store.read_manifest(plan.directory)
        if manifest is None or manifest.repo != plan.entry.repo:
            manifest = store.Manifest.for_entry(plan.entry, plan.revision, plan.commit)
        manifest.revision, manifest.complete = plan.revision, False
        self.done = sum(plan.bytes_on_disk(rf, manifest) for rf in plan.files)
        for rf in plan.files:
            if plan.is_done(rf, manifest):
                continue
            final = plan.directory / rf.local
            if final.is_file() and final.stat().st_size == rf.size:
                # In place but not recorded (placed by hand, or a crash before the manifest was
                # written): adopted when its hash matches, downloaded again otherwise.
                hashes = self.verify(rf, final, delete_on_mismatch=False)
                if hashes is not None:
                    self.done += rf.size - self.plan.bytes_on_disk(rf, None)
                    self.plan.partial_path(rf).unlink(missing_ok=True)
                    self.record(manifest, rf, *hashes)
                    continue
            self.fetch(rf)
            partial = plan.partial_path(rf)
            hashes = self.verify(rf, partial, delete_on_mismatch=True)
            assert hashes is not None
            os.replace(partial, final)
            self.record(manifest, rf, *hashes)
        manifest.commit = plan.commit
        manifest.files = {rf.local: manifest.files[rf.local] for rf in plan.files}
        manifest.complete = True
        store.write_manifest(plan.directory, manifest)
        for stale in store.partial_files(plan.directory):
            stale.unlink(missing_ok=True)  # partial downloads of other revisions
        return manifest

    def record(self, manifest: store.Manifest, rf: RemoteFile, sha256: str, git: str) -> None:
        git_sha1 = git if rf.sha256 is None else None
        manifest.files[rf.local] = store.FileRecord(rf.remote, rf.size, sha256, git_sha1)
        store.write_manifest(self.plan.directory, manifest)
        self.report(rf, rf.size, "done")

    def verify(
        self, rf: RemoteFile, path: Path, *, delete_on_mismatch: bool
    ) -> tuple[str, str] | None:
        """Hash ``path``; its (sha256, git sha1) when it matches what the hub recorded."""
        hashed = 0

        def on_bytes(n: int) -> None:
            nonlocal hashed
            hashed += n
            self.check_cancel()
            self.report(rf, hashed, "verify")

        sha256, git_oid = store.file_hashes(path, on_bytes)
        expected, actual, algo = rf.sha256, sha256, "sha256"
        if expected is None:
            expected, actual, algo = rf.git_oid, git_oid, "git sha1"
        if expected is None or expected == actual:
            return sha256, git_oid
        if not delete_on_mismatch:
            return None
        path.unlink(missing_ok=True)
        self.done -= rf.size
        raise ModelError(
            f"checksum mismatch for {rf.local} of {self.plan.entry.name} "
            f"({self.plan.entry.repo}/{rf.remote}): expected {algo} {expected}, got {actual}; "
            "the corrupt file was deleted, run the download again"
        )

    def location(self, rf: RemoteFile) -> tuple[str, dict[str, str]]:
        """Where the bytes are (the hub redirects weights to its CDN) and the headers to send."""
        try:
            meta = get_hf_file_metadata(
                rf.url, timeout=CONNECT_TIMEOUT_S, endpoint=self.plan.endpoint
            )
        except _NETWORK_ERRORS as exc:
            raise self.network(exc, rf.remote) from None
        if rf.sha256 is not None and meta.etag and meta.etag != rf.sha256:
            raise ModelError(
                f"the hub reports two different hashes for {rf.remote} "
                f"({rf.sha256} and {meta.etag}); try again later"
            )
        headers = build_hf_headers()
        if urlsplit(meta.location).netloc != urlsplit(rf.url).netloc:
            headers.pop("authorization", None)  # never send the user's token to a CDN
        return meta.location, headers

    def fetch(self, rf: RemoteFile) -> None:
        partial = self.plan.partial_path(rf)
        partial.parent.mkdir(parents=True, exist_ok=True)
        if partial.is_file() and partial.stat().st_size > rf.size:
            self.done -= rf.size
            partial.unlink()
        url, headers = self.location(rf)
        failures = 0
        while True:
            have = partial.stat().st_size if partial.is_file() else 0
            if have == rf.size:
                return
            try:
                with partial.open("ab") as out:
                    got = self.stream(rf, url, headers, out, have)
            except _TRANSPORT_ERRORS as exc:
                got = (partial.stat().st_size if partial.is_file() else 0) - have
                failures = 0 if got > 0 else failures + 1
                if failures > RETRIES:
                    raise self.network(exc, rf.remote) from None
                time.sleep(min(RETRY_WAIT_S * 2 ** max(failures - 1, 0), 8.0))
                continue
            except HfHubHTTPError as exc:
                raise self.network(exc, rf.remote) from None
            except ModelError:
                partial.unlink(missing_ok=True)
                raise
            except OSError as exc:
                raise ModelError(f"cannot write {partial}: {exc.strerror or exc}") from None
            failures = 0 if got > 0 else failures + 1
            if failures > RETRIES:
                raise self.network(ConnectionError("the server keeps closing early"), rf.remote)

    def stream(
        self, rf: RemoteFile, url: str, headers: dict[str, str], out: BinaryIO, have: int
    ) -> int:
        """One GET (from byte ``have`` on). Returns how many bytes it added."""
        headers = {**headers, "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        timeout = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        added = 0
        with get_session().stream("GET", url, headers=headers, timeout=timeout) as response:
            hf_raise_for_status(response)
            if have and response.status_code != 206:
                # The server ignored the Range header: start this file again.
                out.seek(0)
                out.truncate()
                self.done -= have
                added -= have
                have = 0
            elif have and not response.headers.get("Content-Range", "").startswith(
                f"bytes {have}-"
            ):
                raise httpx2.RemoteProtocolError(f"unexpected Content-Range for {rf.remote}")
            for chunk in response.iter_bytes(CHUNK_SIZE):
                self.check_cancel()
                if have + len(chunk) > rf.size:
                    raise ModelError(
                        f"{rf.remote} is larger on the server than the hub records "
                        f"({rf.size} bytes); try again later"
                    )
                out.write(chunk)
                have += len(chunk)
                added += len(chunk)
                self.done += len(chunk)
                self.report(rf, have)
        return added


def download(
    plan: DownloadPlan,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Fetch and verify everything in ``plan`` that is not on disk yet; return the directory.

    Checks the free space first, takes a lock so two lofi processes never write the same model,
    and writes the manifest as files complete. Interrupted downloads resume on the next call.
    """
    check_disk_space(plan)
    try:
        plan.directory.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(plan.directory / store.LOCK_NAME), timeout=0)
        lock.acquire()
    except filelock.Timeout:
        raise ModelError(
            f"another lofi process is downloading {plan.entry.name}; wait for it to finish"
        ) from None
    except OSError as exc:
        raise ModelError(f"cannot write to {plan.directory}: {exc.strerror or exc}") from None
    try:
        _Transfer(plan, progress, cancel).run()
    except HfHubHTTPError as exc:  # an OSError subclass, but a hub answer: say which
        raise _hub_error(plan.entry, plan.revision, exc, "a file") from None
    except OSError as exc:
        raise ModelError(f"cannot write to {plan.directory}: {exc.strerror or exc}") from None
    finally:
        lock.release()
        Path(lock.lock_file).unlink(missing_ok=True)
    return plan.directory
