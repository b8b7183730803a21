"""Modal screens: help, the first-run model download, errors, the station editor, questions,
the track history and the station's likes."""

from lofitui.tui.screens.confirm import ConfirmScreen
from lofitui.tui.screens.error import ErrorScreen
from lofitui.tui.screens.first_run import FirstRunScreen
from lofitui.tui.screens.help import HelpScreen
from lofitui.tui.screens.likes import LikesScreen
from lofitui.tui.screens.played import PlayedScreen
from lofitui.tui.screens.station_editor import StationEditor

__all__ = [
    "ConfirmScreen",
    "ErrorScreen",
    "FirstRunScreen",
    "HelpScreen",
    "LikesScreen",
    "PlayedScreen",
    "StationEditor",
]
