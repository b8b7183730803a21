"""Modal screens: help, the first-run model download, errors, questions, the track history."""

from lofitui.tui.screens.confirm import ConfirmScreen
from lofitui.tui.screens.error import ErrorScreen
from lofitui.tui.screens.first_run import FirstRunScreen
from lofitui.tui.screens.help import HelpScreen
from lofitui.tui.screens.played import PlayedScreen

__all__ = ["ConfirmScreen", "ErrorScreen", "FirstRunScreen", "HelpScreen", "PlayedScreen"]
