"""The app's Textual bindings, built from the key table in :mod:`lofitui.keymap`."""

from __future__ import annotations

from textual.binding import Binding

from lofitui.keymap import KEYS


def app_bindings() -> list[Binding]:
    """The app's BINDINGS, each with its id so ``App.set_keymap`` can remap it."""
    return [
        Binding(k.keys, k.action, k.description, show=k.show, key_display=k.key_display, id=k.id)
        for k in KEYS
    ]
