"""Atomic file writes: write a temp file beside the target, fsync, then rename (or link) it.

A crash, an exception or Ctrl-C while writing leaves the old file (or nothing), never half a file.
Temp files are named ``.<target name>.<pid>-<random>.part``: one whose process is gone (killed
mid-write) is stale, and :func:`sweep_stale_parts` removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_PART = re.compile(r"^\..+\.(?P<pid>\d+)-[0-9a-f]{8}\.part$")


def _default_mode() -> int:
    """The mode a plain ``open()`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_mode()


class _Temp:
    """The temp file of one write; ``path`` is set before the file exists, so whatever
    interrupts the creation, the cleanup knows what to remove."""

    path: Path | None = None

    def create(self, target: Path) -> Path:
        while True:
            self.path = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part"
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                continue
            os.close(fd)
            os.chmod(self.path, _FILE_MODE)
            return self.path

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path in ``target``'s directory; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _Temp()
    try:
        tmp = temp.create(target)
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        temp.remove()
        raise
    _fsync_directory(target.parent)


@contextlib.contextmanager
def atomic_new(choose: Callable[[], Path]) -> Iterator[list[Path]]:
    """Write a new file under the first free name ``choose()`` gives, never replacing one.

    Yields ``[tmp]``: write the temp file ``tmp``; on success the list becomes ``[final]``.
    The final name is created exclusively (``os.link``, or ``O_EXCL`` where hard links are not
    supported), so two processes saving the same name at once each get their own file:
    ``choose`` is asked again while the name it gave is taken.
    """
    first = Path(choose())
    first.parent.mkdir(parents=True, exist_ok=True)
    temp = _Temp()
    try:
        result = [temp.create(first)]
        yield result
        tmp = result[0]
        _fsync_file(tmp)
        result[0] = _link_new(tmp, choose)
    finally:
        temp.remove()
    _fsync_directory(first.parent)


def _link_new(tmp: Path, choose: Callable[[], Path]) -> Path:
    """Give the finished ``tmp`` the first free name from ``choose``, created exclusively."""
    while True:
        target = Path(choose())
        try:
            os.link(tmp, target)
            return target
        except FileExistsError:
            continue
        except OSError:  # no hard links here (some FUSE, SMB): claim the name with O_EXCL
            pass
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        try:
            os.replace(tmp, target)  # over our own empty claim
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target


def sweep_stale_parts(directory: Path) -> list[Path]:
    """Remove the temp files of lofi's own naming in ``directory`` whose process is gone (a
    write killed midway); the removed paths. Another live process's temp files are kept."""
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            match = _PART.match(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            if _alive(int(match["pid"])):
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (ours counts: a temp file of this process is live)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    except OverflowError:
        return False  # no process can have that number
    return True


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(target: Path, data: Any) -> None:
    write_bytes_atomic(target, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())
