"""The app's Textual bindings, built from the key table in :mod:`lofitui.keymap`."""

from __future__ import annotations

from textual.binding import Binding

from lofitui.keymap import KEYS

PROMPT_BINDING = "lofi.prompt"


def app_bindings() -> list[Binding]:
    """The app's BINDINGS, each with its id so ``App.set_keymap`` can remap it.

    The prompt key is a priority binding: the app handles it as the key arrives, before routing
    the rest of the same input burst, so the keys typed after it land in the prompt as text.
    """
    return [
        Binding(
            k.keys,
            k.action,
            k.description,
            show=k.show,
            key_display=k.key_display,
            priority=k.id == PROMPT_BINDING,
            id=k.id,
        )
        for k in KEYS
    ]
