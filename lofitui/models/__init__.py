"""Models: which ones lofi knows, where they live, and getting them onto disk with consent.

- ``locate_model(model)``: a directory or catalog name → local directory; never any network.
- ``ensure_model(...)``: the same, but downloads what is not installed yet once ``consent``
  (a callback the front-end supplies: a terminal prompt, a dialog, ``--yes``) says yes.

Nothing here asks on a terminal or draws progress: the front-ends (``lofitui.cli``, the app)
pass those in. ``lofi models ...`` lives in :mod:`lofitui.cli.models`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lofitui.errors import ModelError, UsageError
from lofitui.models import catalog, store
from lofitui.models.catalog import CATALOG, DEFAULT_MODELS, ModelEntry, ModelFile, get_entry
from lofitui.models.locate import locate_model

if TYPE_CHECKING:
    from lofitui.models.download import DownloadPlan, ProgressCallback

ConsentCallback = Callable[["DownloadPlan"], bool]

__all__ = [
    "CATALOG",
    "DEFAULT_MODELS",
    "ConsentCallback",
    "ModelEntry",
    "ModelFile",
    "ensure_model",
    "get_entry",
    "headless_refusal",
    "locate_model",
]


def headless_refusal(entry: ModelEntry) -> str:
    """Why nothing was downloaded when no one could be asked."""
    from lofitui.models.download import file_url

    return (
        f"model {entry.name!r} (about {store.human_size(entry.size)} from "
        f"{file_url(entry, '').rsplit('/resolve/', 1)[0]}) is not installed and lofi downloads "
        f"nothing without consent: run `lofi models download {entry.name}` in a terminal, or pass "
        "--yes"
    )


def ensure_model(
    name_or_dir: str,
    *,
    engine: str | None,
    offline: bool,
    consent: ConsentCallback | None,
    progress: ProgressCallback | None = None,
    revision: str | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Return a local directory for ``name_or_dir``, downloading it first if needed.

    A directory, or a catalog model that is already installed (or placed by hand), is returned
    without any network access. Otherwise the model is downloaded if ``consent`` (shown the
    plan: files, size, destination) returns True; ``consent=None`` means no one can be asked,
    and the ModelError says how to get the model. ``offline`` (or ``HF_HUB_OFFLINE``) turns a
    missing model into a ModelError that says what to do. Models made by ``lofi models export``
    (ACE-Step) are never downloaded: a ModelError names the command. ``progress`` receives
    ``DownloadProgress`` updates.
    """
    path = Path(name_or_dir).expanduser()
    try:
        is_dir = path.is_dir()
    except OSError as exc:  # a name too long for the file system, a symlink loop...
        raise UsageError(f"model {name_or_dir!r}: {exc.strerror}") from None
    if is_dir:
        return path.resolve()
    entry = catalog.find_entry(name_or_dir)
    if entry is None:
        return locate_model(name_or_dir)  # another directory under models_dir(), or an error
    if engine is not None and entry.engine != engine:
        raise UsageError(f"model {entry.name!r} is a {entry.engine} model, not {engine}")
    directory = store.model_dir(entry.name)
    state = store.state_of(entry, directory)
    if state.usable:
        return directory
    if entry.is_export:  # made by `lofi models export`, never downloaded ready-made
        from lofitui.models.locate import not_installed_message

        raise ModelError(not_installed_message(entry, state))

    from lofitui.models import download  # huggingface_hub only when something must be fetched

    revision = revision or entry.revision
    if offline or download.offline_requested():
        reason = "offline mode is on (--offline)" if offline else "offline mode is on"
        raise ModelError(download.no_network_message(entry, revision, directory, reason))
    if consent is None:
        raise ModelError(headless_refusal(entry))
    plan = download.plan_download(entry, revision, directory)
    if not consent(plan):
        raise ModelError(f"not downloading {entry.name}: no consent")
    download.download(plan, progress, cancel)
    return directory
