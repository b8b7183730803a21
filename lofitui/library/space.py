"""Writes that fail: a full disk (``ENOSPC``, ``EDQUOT``) told apart from other refusals, each
named as one clear line with the directory it happened in."""

from __future__ import annotations

import errno
from pathlib import Path

from lofitui.errors import LofiError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

__all__ = ["DISK_FULL_ERRNOS", "DiskFullError", "is_disk_full", "write_error"]


class DiskFullError(LofiError):
    """No room left (or the quota is spent) in ``directory``."""

    def __init__(self, directory: Path, detail: str = "") -> None:
        self.directory = Path(directory)
        super().__init__(f"no space left on {self.directory}{detail}")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def write_error(exc: OSError, directory: Path, detail: str = "") -> LofiError:
    """The user's one-line error for ``exc``, raised while writing into ``directory``;
    ``detail`` ends the line."""
    if is_disk_full(exc):
        quota = " (disk quota exceeded)" if exc.errno == errno.EDQUOT else ""
        return DiskFullError(directory, quota + detail)
    return LofiError(f"cannot write to {directory}: {exc.strerror or exc}{detail}")
