"""Turn a ``--model`` argument (a directory or a catalog name) into a local directory.

Never touches the network: this is the lookup every run makes, and it must work on a plane.
"""

from __future__ import annotations

import os
from pathlib import Path

from lofitui import paths
from lofitui.convert.formats import EXPORT_EXTRA_HINT
from lofitui.errors import ModelError
from lofitui.models import catalog, store


def not_installed_message(entry: catalog.ModelEntry, state: store.State) -> str:
    what = "is not installed" if state is store.State.MISSING else f"is {state.value}"
    if entry.is_export:
        return (
            f"model {entry.name!r} {what}: it is made once on this machine from the diffusers "
            f"checkpoint {entry.repo}: run `{entry.install_command}` (needs {EXPORT_EXTRA_HINT}; "
            f"about {store.human_size(entry.size)} on disk), or pass --model DIR with an "
            "exported ACE-Step directory"
        )
    return (
        f"model {entry.name!r} {what}: run `lofi models download {entry.name}` "
        f"(about {store.human_size(entry.size)}), "
        f"or {store.placement_hint(entry, store.model_dir(entry.name))}"
    )


def locate_model(model: str) -> Path:
    """Return the local directory holding ``model``'s files, without any network access.

    ``model`` is a path to an existing directory (used as-is), a catalog name whose files are all
    in ``models_dir()/<name>/`` (downloaded by lofi or copied there by hand), or the name of any
    other directory under ``models_dir()``. Anything else is a ModelError saying what to do.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    entry = catalog.find_entry(model)
    if entry is not None:
        state = store.state_of(entry)
        if state.usable:
            return store.model_dir(entry.name)
        raise ModelError(not_installed_message(entry, state))
    looks_like_path = os.sep in model or "/" in model or model.startswith((".", "~"))
    if not looks_like_path and model and (paths.models_dir() / model).is_dir():
        return paths.models_dir() / model
    if looks_like_path:
        raise ModelError(f"model {model!r} not found: no such directory")
    known = ", ".join(catalog.CATALOG)
    raise ModelError(f"model {model!r} not found: not a directory and not a known model ({known})")
