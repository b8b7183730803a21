"""The app on the desktop: MPRIS (:mod:`lofitui.desktop.mpris`) driving the app's own actions.

Each MPRIS method runs the action of the matching key (``space``, ``n``, the volume keys, ``q``;
Previous runs ``back``), so the desktop and the keyboard do exactly the same thing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.app import App

from lofitui.tui.backend import SchedulerLike
from lofitui.tui.widgets import StatusBar

if TYPE_CHECKING:
    from lofitui.desktop.mpris import MprisService

log = logging.getLogger(__name__)


class AppControls:
    """:class:`lofitui.desktop.mpris.Controls` through the app's actions."""

    def __init__(self, app: App[Any], scheduler: SchedulerLike) -> None:
        self._app = app
        self._scheduler = scheduler

    async def toggle_pause(self) -> None:
        await self._app.run_action("toggle_pause")

    async def skip(self) -> None:
        await self._app.run_action("skip")

    async def back(self) -> None:
        await self._app.run_action("back")

    async def set_volume(self, volume: float) -> None:
        # the volume keys' action, by the step that lands on ``volume`` (it clamps and rounds)
        await self._app.run_action(f"volume({volume - self._scheduler.volume!r})")

    def quit(self) -> None:
        self._app.call_later(self._app.run_action, "quit")

    @property
    def can_go_back(self) -> bool:
        # Textual's App has an action_back of its own (it closes a dialog): only lofi's counts
        return getattr(type(self._app), "action_back", None) is not App.action_back


class DesktopLink:
    """MPRIS while the app's scheduler is attached: its events in, the app's actions out."""

    def __init__(self, service: MprisService, unsubscribe: Callable[[], None]) -> None:
        self.service = service
        self._unsubscribe = unsubscribe

    async def aclose(self) -> None:
        self._unsubscribe()
        await self.service.aclose()


def link_desktop(app: App[Any], scheduler: SchedulerLike) -> DesktopLink | None:
    """Put the app on the session bus (in the background); None where MPRIS cannot exist."""
    try:
        from lofitui.desktop.mpris import MprisService
    except ImportError as exc:  # dbus-fast is a Linux-only dependency
        log.debug("MPRIS off: %s", exc)
        return None
    # the volume the app holds and shows: every change (keys, the bus) passes through here
    status_bar = app.screen_stack[0].query_one(StatusBar)
    service = MprisService(AppControls(app, scheduler), volume=status_bar.volume)
    unsubscribe = scheduler.subscribe(service.on_event)
    app.watch(status_bar, "volume", service.volume_changed, init=False)
    service.start()
    return DesktopLink(service, unsubscribe)
