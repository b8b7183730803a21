"""Every key binding of the app, by id: plain data the TUI, the help screen and the config share.

Ids are stable (users remap keys by id in ``config.toml``'s ``[keymap]`` table); keys use
Textual's long names ("question_mark", "plus") so remaps compare cleanly. No Textual here:
:mod:`lofitui.tui.keys` builds the app's bindings from this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeySpec:
    """One binding: its id, default keys (comma-separated), action and labels."""

    id: str
    keys: str
    action: str
    description: str  # footer label
    help: str  # one line for the help screen
    show: bool = True
    key_display: str | None = None


KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "lofi.pause", "space", "toggle_pause", "Pause", "pause or resume playback", True, "space"
    ),
    KeySpec("lofi.skip", "n", "skip", "Skip", "skip to the next track"),
    KeySpec(
        "lofi.regenerate",
        "r",
        "regenerate",
        "Regenerate",
        "replace the playing track with a new take of the station",
    ),
    KeySpec("lofi.save", "s", "save", "Save", "save the playing track to your music folder"),
    KeySpec(
        "lofi.back",
        "b",
        "back",
        "Back",
        "the previous track (again: further back)",
        False,
    ),
    KeySpec(
        "lofi.history",
        "h",
        "history",
        "History",
        "played tracks: Enter plays one, s saves it",
        False,
    ),
    KeySpec(
        "lofi.like",
        "l",
        "like",
        "Like",
        "like the playing track (again: unlike)",
        False,
    ),
    KeySpec(
        "lofi.dislike",
        "x",
        "dislike",
        "Dislike",
        "dislike: skip it and never play it again",
        False,
    ),
    KeySpec(
        "lofi.likes",
        "L",
        "show_likes",
        "Likes",
        "the station's likes (Enter plays one)",
        False,
    ),
    KeySpec(
        "lofi.volume-up", "plus,equals_sign", "volume(0.05)", "Vol+", "volume up 5 %", False, "+"
    ),
    KeySpec("lofi.volume-down", "minus", "volume(-0.05)", "Vol-", "volume down 5 %", False, "-"),
    KeySpec("lofi.mute", "m", "toggle_mute", "Mute", "mute or unmute"),
    KeySpec(
        "lofi.retry-audio",
        "a",
        "retry_audio",
        "Audio",
        "no sound? try the audio output again now",
        False,
    ),
    KeySpec(
        "lofi.prompt",
        "slash,i",
        "focus_prompt",
        "Prompt",
        "type a new station (Enter tunes in, Up/Down history, Esc leaves)",
        True,
        "/",
    ),
    KeySpec(
        "lofi.download",
        "d",
        "download_model",
        "Model",
        "download the model the built-in synth stands in for (asks first)",
        False,
    ),
    KeySpec(
        "lofi.edit-station",
        "e",
        "edit_station",
        "Station",
        "station editor: engine, model, settings",
        False,
    ),
    KeySpec("lofi.theme", "t", "cycle_theme", "Theme", "next theme (remembered)", False),
    KeySpec(
        "lofi.visualiser",
        "v",
        "cycle_visualiser",
        "Visualiser",
        "next visualiser: spectrum, level meter, off (remembered)",
        False,
    ),
    KeySpec("lofi.help", "question_mark", "help", "Help", "this help", True, "?"),
    KeySpec("lofi.quit", "q", "quit", "Quit", "quit (finishes cleanly)"),
)

BINDING_IDS: tuple[str, ...] = tuple(k.id for k in KEYS)
DEFAULT_KEYS: dict[str, str] = {k.id: k.keys for k in KEYS}
