"""Modal screens: help, the first-run model download, and errors."""

from lofitui.tui.screens.error import ErrorScreen
from lofitui.tui.screens.first_run import FirstRunScreen
from lofitui.tui.screens.help import HelpScreen

__all__ = ["ErrorScreen", "FirstRunScreen", "HelpScreen"]
