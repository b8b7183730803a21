"""The most recent output of the audio callback, kept for whoever wants to look at it.

:class:`OutputTap` is a ring of the last frames the callback sent to the device (after volume,
pause fades and crossfades: exactly what is heard). The callback writes one block per call into
preallocated memory; readers (the visualiser, on the UI thread) copy a window out without locks.

One writer, any number of readers. The writer copies the block, then publishes the new frame
count with one attribute store (atomic under the GIL); a reader copies the frames it wants and
checks afterwards that the writer (and a block it may be writing now) did not reach them
meanwhile, retrying if it did. The ring is
several times longer than a window plus the output latency, so a retry is rare.
"""

from __future__ import annotations

import numpy as np

_ATTEMPTS = 3


class OutputTap:
    """A ring of the last ``capacity`` frames written, ``channels`` wide (float32)."""

    def __init__(self, capacity: int, channels: int) -> None:
        if capacity <= 0 or channels <= 0:
            raise ValueError("an output tap needs a positive capacity and channel count")
        self._ring = np.zeros((capacity, channels), np.float32)
        self.capacity = capacity
        self.written = 0  # frames written so far; the newest is at (written - 1) % capacity
        self._block = 0  # the longest block written: how far a write in progress may reach

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` (frames, channels): one copy, no allocation (the audio callback)."""
        n = block.shape[0]
        cap = self.capacity
        if n >= cap:  # never in practice: a callback block is far shorter than the ring
            block, n = block[n - cap :], cap
        if n > self._block:
            self._block = n
        w = self.written
        i = w % cap
        first = min(n, cap - i)
        self._ring[i : i + first] = block[:first]
        if n > first:
            self._ring[: n - first] = block[first:]
        self.written = w + n

    def read(self, frames: int, delay: int = 0) -> np.ndarray | None:
        """A copy of ``frames`` frames ending ``delay`` frames before the newest, or None while
        fewer have been written (or the writer kept overtaking the copy)."""
        cap = self.capacity
        if frames <= 0 or frames + delay > cap:
            raise ValueError(f"cannot read {frames} frames {delay} back from a ring of {cap}")
        out = np.empty((frames, self._ring.shape[1]), np.float32)
        for _ in range(_ATTEMPTS):
            end = self.written - delay
            start = end - frames
            if start < 0:
                return None
            i = start % cap
            first = min(frames, cap - i)
            out[:first] = self._ring[i : i + first]
            if frames > first:
                out[first:] = self._ring[: frames - first]
            # nothing copied was overwritten meanwhile, nor is being overwritten now
            if self.written + self._block - cap <= start:
                return out
        return None
