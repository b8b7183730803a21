"""A tiny stand-in for the Hugging Face Hub on 127.0.0.1, for the model download tests.

It answers what huggingface_hub 2.x asks when lofi downloads a model, the way the real hub does:

- ``HEAD|GET /<repo>/resolve/<revision>/<path>``: plain-git files are served directly with
  ``ETag: "<git blob sha1>"``; LFS files answer ``302`` to a second "CDN" port with
  ``X-Linked-Etag: "<sha256>"`` and ``X-Linked-Size``. Every answer carries ``X-Repo-Commit``;
  errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound).
- ``POST /api/models/<repo>/paths-info/<revision>`` (form field ``paths``, repeated): size, git
  oid and, for LFS files, ``lfs: {oid: sha256, size, pointerSize}``.
- ``GET /api/models/<repo>/tree/<revision>[/<folder>]?recursive=true|false``: the folder's
  entries (files as paths-info describes them, and ``{"type": "directory"}`` entries); a folder
  that does not exist is ``404 EntryNotFound``.
- ``GET /cdn/<sha256>`` on the CDN port, with ``Range: bytes=N-`` support (206 + Content-Range).

Faults for tests: ``drop_after(path, n)`` closes the connection after ``n`` bytes of the body;
``corrupt(path, data)`` serves other bytes than the recorded hash. Every request is recorded in
``requests`` (method, path, headers) so tests can assert what was (not) asked.

Run ``python tests/hubserver.py`` to serve a demo repo by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_EXTENSIONS = (".onnx", ".onnx_data", ".data", ".bin", ".safetensors")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
    )


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str
    branches: tuple[str, ...] = ("main",)
    lfs: set[str] = field(default_factory=set)

    def is_lfs(self, path: str) -> bool:
        return path in self.lfs


class FakeHub:
    """Start with ``with FakeHub() as hub:`` or ``start()``/``stop()``."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes served by the CDN
        self._drops: dict[str, list[int]] = {}  # sha256 -> byte counts, one per upcoming GET
        self._corrupt: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._conns: set[socket.socket] = set()
        self.url = ""
        self.cdn_url = ""

    # -- content --------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        lfs: set[str] | None = None,
        branches: tuple[str, ...] = ("main",),
        commit: str | None = None,
    ) -> str:
        """Serve ``files`` (path -> bytes) as ``repo_id`` at ``commit`` (random when None), the
        head of ``branches``; returns the commit hash. Any other revision is not found."""
        if commit is None:
            commit = hashlib.sha1(repr(sorted(files)).encode() + os.urandom(8)).hexdigest()
        if lfs is None:
            lfs = {p for p in files if p.endswith(LFS_EXTENSIONS)}
        self.repos[repo_id] = Repo(dict(files), commit, branches, set(lfs))
        for path in lfs:
            self.blobs[hashlib.sha256(files[path]).hexdigest()] = files[path]
        return commit

    def add_repo_at(
        self, repo_id: str, files: dict[str, bytes], revision: str, **kwargs: object
    ) -> str:
        """Serve ``files`` so that ``revision`` (a commit, or a branch name, as a catalog pins
        it) finds them; returns the commit."""
        if re.fullmatch(r"[0-9a-f]{40}", revision):
            return self.add_repo(repo_id, files, commit=revision, **kwargs)  # type: ignore[arg-type]
        return self.add_repo(repo_id, files, branches=(revision,), **kwargs)  # type: ignore[arg-type]

    def sha256(self, repo_id: str, path: str) -> str:
        return hashlib.sha256(self.repos[repo_id].files[path]).hexdigest()

    def drop_after(self, repo_id: str, path: str, nbytes: int, times: int = 1) -> None:
        """The next ``times`` GETs of ``path``'s content stop after ``nbytes`` body bytes."""
        self._drops.setdefault(self.sha256(repo_id, path), []).extend([nbytes] * times)

    def corrupt(self, repo_id: str, path: str, data: bytes) -> None:
        """Serve ``data`` for ``path`` while still advertising the original hash and size."""
        self._corrupt[self.sha256(repo_id, path)] = data

    def gets(self, suffix: str = "") -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(suffix)]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeHub:
        for _ in range(2):  # the hub, then its "CDN" (another origin, like the real one)
            server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            self._servers.append(server)
        self.url = f"http://127.0.0.1:{self._servers[0].server_port}"
        self.cdn_url = f"http://127.0.0.1:{self._servers[1].server_port}"
        return self

    def stop(self) -> None:
        """Stop answering, and close kept-alive connections so nothing reaches us any more."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        with self._lock:
            for conn in list(self._conns):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._conns.clear()
        self._servers.clear()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # clients hanging up are expected
        pass


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(_HubHandler):
        pass

    Handler.hub = hub
    return Handler


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def setup(self) -> None:
        super().setup()
        with self.hub._lock:
            self.hub._conns.add(self.connection)

    def finish(self) -> None:
        with self.hub._lock:
            self.hub._conns.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # -- plumbing -------------------------------------------------------------------------------

    def _record(self) -> str:
        path = urlsplit(self.path).path
        self.hub.requests.append(Request(self.command, path, dict(self.headers.items())))
        return path

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, commit: str | None = None) -> None:
        headers = {"X-Error-Code": code, "Content-Type": "application/json"}
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, headers, json.dumps({"error": code}).encode())

    def _lookup(self, repo_id: str, revision: str) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound")
            return None
        if revision not in repo.branches and revision != repo.commit:
            self._error(404, "RevisionNotFound")
            return None
        return repo

    # -- endpoints ------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self._record()
        if path.startswith("/cdn/"):
            return self._cdn(path.removeprefix("/cdn/"))
        if path.startswith("/api/models/") and "/tree/" in path:
            return self._tree(path)
        if "/resolve/" not in path:
            return self._error(404, "NotFound")
        repo_id, rest = path.lstrip("/").split("/resolve/", 1)
        revision, _, filename = rest.partition("/")
        revision, filename = unquote(revision), unquote(filename)
        repo = self._lookup(repo_id, revision)
        if repo is None:
            return None
        data = repo.files.get(filename)
        if data is None:
            return self._error(404, "EntryNotFound", repo.commit)
        if repo.is_lfs(filename):
            sha = hashlib.sha256(data).hexdigest()
            return self._send(
                302,
                {
                    "Location": f"{self.hub.cdn_url}/cdn/{sha}?signature=test",
                    "ETag": f'"{git_blob_sha1(lfs_pointer(data))}"',
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                    "X-Repo-Commit": repo.commit,
                    "Content-Length": "0",
                },
            )
        return self._send(
            200,
            {
                "ETag": f'"{git_blob_sha1(data)}"',
                "X-Repo-Commit": repo.commit,
                "Content-Type": "application/octet-stream",
            },
            data,
        )

    def _cdn(self, sha: str) -> None:
        data = self.hub.blobs.get(sha)
        if data is None:
            return self._error(404, "NotFound")
        data = self.hub._corrupt.get(sha, data)
        start = 0
        status = 200
        headers = {"ETag": f'"{sha}"', "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes=") : -1])
            if start >= len(data):
                return self._send(416, {"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        if self.command == "HEAD":
            return self._send(status, headers)
        drops = self.hub._drops.get(sha)
        if drops:
            cut = drops.pop(0)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        return self._send(status, headers, body)

    def _tree(self, path: str) -> None:
        repo_id, rest = path[len("/api/models/") :].split("/tree/", 1)
        revision, _, folder = rest.partition("/")
        repo = self._lookup(repo_id, unquote(revision))
        if repo is None:
            return None
        folder = unquote(folder).strip("/")
        query = parse_qs(urlsplit(self.path).query)
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{folder}/" if folder else ""
        inside = sorted(p for p in repo.files if p.startswith(prefix))
        if folder and not inside:
            return self._error(404, "EntryNotFound", repo.commit)
        entries: list[dict[str, object]] = []
        seen_dirs: set[str] = set()
        for p in inside:
            rest_path = p[len(prefix) :]
            if "/" in rest_path:
                parts = rest_path.split("/")
                depth = len(parts) - 1 if recursive else 1
                for i in range(1, depth + 1):
                    sub = prefix + "/".join(parts[:i])
                    if sub not in seen_dirs:
                        seen_dirs.add(sub)
                        entries.append(
                            {"type": "directory", "oid": "0" * 40, "size": 0, "path": sub}
                        )
                if not recursive:
                    continue
            entries.append(_file_info(repo, p))
        return self._send(
            200,
            {"Content-Type": "application/json", "X-Repo-Commit": repo.commit},
            json.dumps(entries).encode(),
        )

    def do_POST(self) -> None:
        path = self._record()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        prefix = "/api/models/"
        if not path.startswith(prefix) or "/paths-info/" not in path:
            return self._error(404, "NotFound")
        repo_id, revision = path[len(prefix) :].split("/paths-info/", 1)
        repo = self._lookup(repo_id, unquote(revision))
        if repo is None:
            return None
        if self.headers.get("Content-Type", "").startswith("application/json"):
            wanted = json.loads(body).get("paths", [])
        else:
            wanted = parse_qs(body).get("paths", [])
        # the real hub leaves unknown paths out
        infos = [_file_info(repo, p) for p in wanted if p in repo.files]
        return self._send(
            200,
            {"Content-Type": "application/json", "X-Repo-Commit": repo.commit},
            json.dumps(infos).encode(),
        )


def _file_info(repo: Repo, path: str) -> dict[str, object]:
    """A file as the hub's paths-info and tree listings describe it."""
    data = repo.files[path]
    info: dict[str, object] = {"type": "file", "path": path, "size": len(data)}
    if repo.is_lfs(path):
        pointer = lfs_pointer(data)
        info["oid"] = git_blob_sha1(pointer)
        info["lfs"] = {
            "oid": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "pointerSize": len(pointer),
        }
    else:
        info["oid"] = git_blob_sha1(data)
    return info


if __name__ == "__main__":  # pragma: no cover - manual use
    import time

    with FakeHub() as demo:
        demo.add_repo("demo/model", {"config.json": b"{}", "model.onnx": os.urandom(1 << 20)})
        print(f"HF_ENDPOINT={demo.url}")
        while True:
            time.sleep(3600)
