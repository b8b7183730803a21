"""Modal screens: help, the first-run model download, errors, the station editor and the
station's likes."""

from lofitui.tui.screens.error import ErrorScreen
from lofitui.tui.screens.first_run import FirstRunScreen
from lofitui.tui.screens.help import HelpScreen
from lofitui.tui.screens.likes import LikesScreen
from lofitui.tui.screens.station_editor import StationEditor

__all__ = ["ErrorScreen", "FirstRunScreen", "HelpScreen", "LikesScreen", "StationEditor"]
