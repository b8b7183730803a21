"""Small text helpers shared by the widgets: clock times, bars, rates."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from lofitui.engines.base import Progress


def clock(seconds: float | None) -> str:
    """``75.4`` → ``"1:15"``; unknown → ``"-:--"``."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-:--"
    total = int(seconds)
    minutes, secs = divmod(total, 60)
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def bar(fraction: float, width: int, filled: Style, empty: Style) -> Text:
    """A thin horizontal bar with half-cell resolution: ``━━━━╸────``."""
    width = max(0, width)
    fraction = min(1.0, max(0.0, fraction))
    halves = round(fraction * width * 2)
    full, half = divmod(halves, 2)
    text = Text("━" * full, style=filled, end="")
    if half and full < width:
        text.append("╸", style=filled)
        full += 1
    text.append("─" * (width - full), style=empty)
    return text


def rate_and_eta(progress: Progress) -> str:
    """``"61 tok/s · 0:05 left"`` (what is known of it)."""
    unit = {"token": "tok", "step": "step"}.get(progress.unit, progress.unit)
    parts = []
    if progress.rate:
        parts.append(
            f"{progress.rate:.0f} {unit}/s"
            if progress.rate >= 10
            else f"{progress.rate:.1f} {unit}/s"
        )
    if progress.eta_s is not None and progress.done < progress.total:
        parts.append(f"{clock(progress.eta_s)} left")
    return " · ".join(parts)
