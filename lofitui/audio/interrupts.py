"""Ctrl-C (and SIGTERM/SIGHUP) held back over work that must not be cut in the middle.

Two places need it: libsndfile encodes into memory through Python callbacks, where an exception
raised by a signal handler is printed and lost; and the first import of the loudness libraries
(pyloudnorm, scipy), where a KeyboardInterrupt leaves scipy half-imported and CPython 3.11 then
kills the process with SIGINT at exit although lofi caught the interrupt (exit -2, not 130).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_HELD_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Meanwhile the handlers only note a signal; it is raised again, to the usual handler,
    once the block is done. (Handlers run in the main thread only: elsewhere there is nothing to
    hold.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved = {sig: signal.getsignal(sig) for sig in _HELD_SIGNALS}
    held = [sig for sig, handler in saved.items() if callable(handler)]
    for sig in held:
        signal.signal(sig, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for sig in held:
            signal.signal(sig, saved[sig])
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)
