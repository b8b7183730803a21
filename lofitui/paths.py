"""The one place that decides where lofi keeps files (platformdirs locations).

Every location honours the usual XDG variables on Linux, so tests point them at temp dirs.
``LOFI_MODELS_DIR`` overrides the models directory (models are large; people move them).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "lofi"


def _dirs() -> platformdirs.PlatformDirs:
    return platformdirs.PlatformDirs(APP, appauthor=False)


def models_dir() -> Path:
    """Where downloaded or manually placed models live, one sub-directory per model."""
    override = os.environ.get("LOFI_MODELS_DIR")
    return Path(override) if override else _dirs().user_data_path / "models"


def cache_dir() -> Path:
    """Generated tracks (WAV + sidecar JSON) and their index."""
    return _dirs().user_cache_path / "tracks"


def music_dir() -> Path:
    """Where saved tracks go: the user's music folder, in a ``lofi`` sub-folder."""
    return Path(platformdirs.user_music_dir()) / APP


def config_dir() -> Path:
    return _dirs().user_config_path


def config_file() -> Path:
    return config_dir() / "config.toml"


def state_dir() -> Path:
    """Small persistent state: prompt history, chosen theme."""
    return _dirs().user_state_path


def log_dir() -> Path:
    return _dirs().user_log_path
