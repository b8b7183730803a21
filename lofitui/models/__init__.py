"""Models: which ones lofi knows, where they live, and getting them onto disk with consent.

- ``locate_model(model)``: a directory or catalog name → local directory; never any network.
- ``ensure_model(...)``: the same, but downloads (after a yes) what is not installed yet.
- ``lofitui.models.commands.main``: ``lofi models list | download | export | remove | path |
  verify``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lofitui.errors import ModelError, UsageError
from lofitui.models import catalog, store
from lofitui.models.catalog import CATALOG, DEFAULT_MODEL, ModelEntry, ModelFile, get_entry
from lofitui.models.locate import locate_model

__all__ = [
    "CATALOG",
    "DEFAULT_MODEL",
    "ModelEntry",
    "ModelFile",
    "ensure_model",
    "get_entry",
    "locate_model",
]


def ensure_model(
    name_or_dir: str,
    *,
    engine: str | None,
    assume_yes: bool,
    offline: bool,
    progress=None,
    revision: str | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Return a local directory for ``name_or_dir``, downloading it first if needed.

    A directory, or a catalog model that is already installed (or placed by hand), is returned
    without any network access. Otherwise the model is downloaded after consent: ``assume_yes``,
    or a yes at an interactive prompt (only when stdin is a terminal). ``offline`` (or
    ``HF_HUB_OFFLINE``) turns a missing model into a ModelError that says what to do. Models
    made by ``lofi models export`` (ACE-Step) are never downloaded: a ModelError names the command.
    ``progress`` receives ``DownloadProgress`` updates; None shows a rich bar on stderr.
    """
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
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

    # Imported here: huggingface_hub and rich prompts only when something must be fetched.
    from lofitui.models import consent, download

    revision = revision or entry.revision
    if offline or download.offline_requested():
        reason = "offline mode is on (--offline)" if offline else "offline mode is on"
        raise ModelError(download.no_network_message(entry, revision, directory, reason))
    if not assume_yes and not consent.can_ask():
        raise ModelError(consent.headless_refusal(entry))
    plan = download.plan_download(entry, revision, directory)
    if not assume_yes and not consent.ask_download(plan):
        raise ModelError(f"not downloading {entry.name}: no consent")
    if progress is not None:
        download.download(plan, progress, cancel)
    else:
        with consent.download_bar() as bar:
            download.download(plan, bar, cancel)
    return directory
