"""Any terminal size: the footer keeps Help and Quit, the help screen scrolls, panels never
overlap, long prompts are clamped, and a theme change restyles every row at once."""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

from rich.cells import cell_len
from rich.text import Text
from test_tui import make_app, started, text_of
from textual.color import Color
from textual.geometry import Region
from textual.widgets._toast import Toast
from tui_fakes import TUI_LONG_PROMPT, FakeBackend, FakeScheduler, tui_playing_events

from lofitui.events import StationChanged
from lofitui.keymap import KEYS
from lofitui.tui.screens import HelpScreen
from lofitui.tui.widgets.clamped import ClampedText
from lofitui.tui.widgets.footer import PlayerFooter
from lofitui.tui.widgets.format import clamp, toast_width

PANELS = ("#status", "#now-playing", "#queue", "#prompt-bar", "PlayerFooter")


def test_clamp_cuts_to_lines_with_an_ellipsis():
    text = Text(TUI_LONG_PROMPT, style="bold")
    for width, lines in ((52, 2), (30, 1), (7, 3)):
        shown = clamp(text, width, lines).plain.split("\n")
        assert len(shown) == lines and shown[-1].endswith("…")
        assert all(cell_len(line) <= width for line in shown)
    assert clamp(text, 52).spans[0].style == "bold"  # styles are kept
    assert clamp("a\nshort  prompt", 40).plain == "a short  prompt"  # line breaks are spaces
    assert clamp("hello world", 11).plain == "hello world"  # nothing cut, no ellipsis
    assert clamp("hello world again", 11).plain == "hello world\nagain"
    assert clamp("音楽" * 20, 9, 1).plain == "音楽音楽…"  # wide characters: cells, not chars
    assert clamp("anything", 0).plain == "" and clamp("   ", 10).plain == ""


def footer_keys(app) -> dict[str, Region]:
    """The footer's keys by action, with where they are on screen."""
    footer = app.query_one(PlayerFooter)
    keys = {key.action: key.region for key in footer.children}
    assert all(footer.region.contains_region(region) for region in keys.values()), keys
    return keys


def assert_panels_in_place(app) -> None:
    screen = app.screen.region
    regions = [app.query_one(selector).region for selector in PANELS]
    for selector, region in zip(PANELS, regions, strict=True):
        assert region.height > 0 and screen.contains_region(region), (selector, region, screen)
    for (a, first), (b, second) in combinations(zip(PANELS, regions, strict=True), 2):
        assert not first.overlaps(second), (a, first, b, second)


async def test_small_terminal_keeps_everything_reachable(tui_env):
    """At 60x20: Help and Quit in the footer, panels apart, prompts clamped, help scrolls to its
    last binding and closes; ``t`` into paper restyles the queue rows at once."""
    fake = FakeScheduler()
    app = make_app(FakeBackend(fake))
    async with app.run_test(size=(60, 20), notifications=True) as pilot:
        app.animation_level = "none"  # scrolls land at once
        await started(pilot, app)
        assert fake.station is not None
        fake.emit(StationChanged(replace(fake.station, prompt=TUI_LONG_PROMPT)))
        fake.emit(*tui_playing_events(prompt=TUI_LONG_PROMPT))
        await pilot.pause()

        for size in ((200, 50), (80, 24), (40, 20), (60, 20)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            keys = footer_keys(app)
            assert {"help", "quit"} <= set(keys), (size, keys)
            assert_panels_in_place(app)
            if size == (200, 50):
                assert len(keys) == 9  # everything, the command palette key too
        assert 3 <= len(keys) < 9  # at 60x20 only the least important keys are left out

        title = app.query_one("#np-title", ClampedText)
        shown = text_of(title).rstrip("\n").split("\n")
        assert title.region.height == 2 and len(shown) == 2 and shown[-1].endswith("…")
        station = app.query_one("#station-prompt", ClampedText)  # one line on a short screen
        assert station.region.height == 1 and text_of(station).rstrip().endswith("…")
        rows = app.query_one("#queue-rows")
        assert rows.region.height == 4  # 3 tracks, one line each, and a progress bar

        message = clamp(TUI_LONG_PROMPT, toast_width(app.size.width)).plain
        app.notify(message, markup=False)
        for _ in range(20):
            await pilot.pause()
            if toasts := app.screen.query(Toast):
                break
        toast = toasts.first()
        assert toast.region.height == 2 + 2  # two lines and its padding
        app.clear_notifications()

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        card = app.screen.query_one("#help-card")
        assert app.screen.region.contains_region(card.region)
        assert card.region.contains_region(app.screen.query_one("#help-hint").region)
        last = KEYS[-1].id
        assert card.max_scroll_y > 0 and last not in app.export_screenshot()
        await pilot.press("end")
        assert card.scroll_y == card.max_scroll_y and last in app.export_screenshot()
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        await pilot.press("t", "t")
        await pilot.pause()
        assert app.theme == "paper"
        background = Color.parse(app.current_theme.background)
        rows = app.query_one("#queue-rows")
        strips = rows.render_lines(Region(0, 0, rows.size.width, rows.size.height))
        cells = [segment for strip in strips for segment in strip if segment.text.strip()]
        assert cells and TUI_LONG_PROMPT[:12] in "".join(segment.text for segment in cells)
        for segment in cells:
            assert segment.style is not None and segment.style.bgcolor is not None
            assert Color.from_rich_color(segment.style.bgcolor) == background, segment
