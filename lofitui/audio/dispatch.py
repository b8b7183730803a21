"""Delivers player events to subscribers on a thread of their own.

A slow subscriber therefore never delays the audio or the clock that produced the event.
Subscribers are called on that thread: hop to an event loop from there
(``loop.call_soon_threadsafe``, ``widget.post_message``) and return quickly.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable

from lofitui.audio.events import PlayerEvent, Subscriber

log = logging.getLogger(__name__)


class Dispatcher:
    """A queue of events and the thread that hands each one to every subscriber, in order."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._events: queue.SimpleQueue[PlayerEvent | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for each event; returns the function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def emit(self, event: PlayerEvent) -> None:
        """Queue ``event`` for delivery (never blocks)."""
        self._events.put(event)

    def close(self) -> None:
        """Deliver what is queued, then stop the thread."""
        self._events.put(None)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def _loop(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            with self._lock:
                subscribers = list(self._subscribers)
            for subscriber in subscribers:
                try:
                    subscriber(event)
                except Exception:
                    log.exception("player event subscriber failed on %r", event)
