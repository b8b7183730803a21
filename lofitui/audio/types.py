"""The audio type every layer shares: float32 samples shaped (frames, channels)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Audio:
    """Float32 samples shaped (frames, channels) at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if self.samples.ndim != 2:
            raise ValueError(f"audio must be (frames, channels), got shape {self.samples.shape}")
        if self.samples.dtype != np.float32:
            object.__setattr__(self, "samples", self.samples.astype(np.float32))

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @classmethod
    def join(cls, chunks: Iterable[Audio]) -> Audio:
        """Consecutive chunks (same rate and channels) as one piece."""
        parts = list(chunks)
        if not parts:
            raise ValueError("no audio to join")
        rates = {chunk.sample_rate for chunk in parts}
        if len(rates) != 1:
            raise ValueError(f"chunks differ in sample rate: {sorted(rates)}")
        return cls(np.concatenate([chunk.samples for chunk in parts]), parts[0].sample_rate)
