"""The widgets of lofi's main screen."""

from lofitui.tui.widgets.level_meter import LevelMeter
from lofitui.tui.widgets.now_playing import NowPlayingView
from lofitui.tui.widgets.prompt_bar import PromptBar, PromptInput
from lofitui.tui.widgets.queue import QueuePanel
from lofitui.tui.widgets.status_bar import StatusBar

__all__ = ["LevelMeter", "NowPlayingView", "PromptBar", "PromptInput", "QueuePanel", "StatusBar"]
