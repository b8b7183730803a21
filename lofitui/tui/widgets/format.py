"""Small text helpers shared by the widgets: clock times, bars, rates, clamped text."""

from __future__ import annotations

import io

from rich.console import Console
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


def _clamp(fraction: float) -> float:
    return min(1.0, max(0.0, fraction))


def _filled(fraction: float, width: int, style: Style) -> Text:
    """The filled start of a bar, half-cell resolution: ``━━━━╸``."""
    full, half = divmod(round(_clamp(fraction) * width * 2), 2)
    return Text("━" * full + ("╸" if half and full < width else ""), style=style, end="")


def bar(fraction: float, width: int, filled: Style, empty: Style) -> Text:
    """A thin horizontal bar with half-cell resolution: ``━━━━╸────``."""
    width = max(0, width)
    text = _filled(fraction, width, filled)
    text.append("─" * (width - len(text)), style=empty)
    return text


def stream_bar(
    played: float,
    generated: float,
    width: int,
    played_style: Style,
    generated_style: Style,
    ahead_style: Style,
) -> Text:
    """A bar of a track still being generated: ``━━━━╸───╌╌╌╌``.

    Played (``━``, half-cell ``╸``), generated but not yet played (``─``), still to come
    (``╌``): the glyphs tell the parts apart where colour cannot. ``generated`` is rounded
    down to whole cells, so what is still to come shows until the very end.
    """
    width = max(0, width)
    text = _filled(played, width, played_style)
    frontier = max(len(text), int(_clamp(generated) * width))
    text.append("─" * (frontier - len(text)), style=generated_style)
    text.append("╌" * (width - frontier), style=ahead_style)
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


ELLIPSIS = "…"
# Text.wrap wants a console; with the default justification it never draws on it
_WRAP_CONSOLE = Console(file=io.StringIO(), width=80, color_system=None)


def clamp(text: str | Text, width: int, lines: int = 2) -> Text:
    """``text`` word-wrapped to ``width`` cells and cut to ``lines`` lines, the last one ending
    in ``…`` when anything was cut: how the widgets show text of any length (a prompt may be
    5000 characters). Line breaks and tabs in ``text`` count as spaces; styles are kept."""
    flat = Text(text) if isinstance(text, str) else text.copy()
    flat.plain = flat.plain.replace("\n", " ").replace("\t", " ")  # same length: spans stay
    if width <= 0 or lines <= 0 or not flat.plain.strip():
        return Text("", end="", no_wrap=True)
    wrapped = flat.wrap(_WRAP_CONSOLE, width, overflow="fold")
    if len(wrapped) > lines:
        start = 0  # where the last kept line starts in ``flat``
        for line in wrapped[: lines - 1]:
            start = flat.plain.index(line.plain, start) + len(line.plain)
        rest = flat[start:]
        last = rest[len(rest.plain) - len(rest.plain.lstrip()) :]
        last.truncate(width - 1)
        last.rstrip()
        last.append(ELLIPSIS)
        wrapped = [*wrapped[: lines - 1], last]
    for line in wrapped:
        line.rstrip()
    result = Text("\n", end="", no_wrap=True).join(wrapped)
    result.no_wrap = True
    return result


def toast_width(screen_width: int) -> int:
    """The text width of a notification on a screen ``screen_width`` cells wide, for
    ``clamp``-ing a prompt quoted in one (Textual's toasts are 60 cells, at most half the
    screen, less a 1-cell border and 1-cell padding each side)."""
    return max(1, min(60, screen_width // 2) - 3)
