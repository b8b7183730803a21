"""The playback timeline and gain ramps, measured sample by sample: no sound server, no clock.

The same measurements as tests/test_player.py makes through the null sink (gapless joins,
crossfade power and length, skip fades, pause and volume ramps), here exact to the frame.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from lofitui.audio.events import NowPlaying, TrackFinished, TrackStarted
from lofitui.audio.mixing import equal_power_curves, fade
from lofitui.audio.silent import SilentPlayer
from lofitui.audio.timeline import (
    BUFFER_FADE_S,
    RESUME_S,
    SKIP_FADE_IN_S,
    SKIP_FADE_S,
    Timeline,
    prepare,
)
from lofitui.audio.transport import PAUSE_FADE_S, VOLUME_RAMP_S, GainRamp, Transport
from lofitui.audio.types import Audio

RATE = 48000
FAR = 10**9  # a floor beyond everything: nothing rendered may be rewritten


def ramp_track(frames: int, offset: float = 0.0) -> np.ndarray:
    """Stereo samples whose value says which frame they are (left) and which track (right)."""
    left = (np.arange(frames, dtype=np.float32) + 1) / 1e6
    return np.stack([left, np.full(frames, offset, np.float32)], axis=1)


def render_n(timeline: Timeline, frames: int) -> np.ndarray:
    """Exactly ``frames`` of the program (as a driver filling its buffer would)."""
    out = []
    while frames > 0:
        chunk = np.array(timeline.render(frames))
        assert chunk.shape[0] > 0
        out.append(chunk)
        frames -= chunk.shape[0]
    return np.concatenate(out)


def render_all(timeline: Timeline, block: int = 1000) -> np.ndarray:
    out = []
    while True:
        chunk = timeline.render(block, RATE * 11)
        if chunk.shape[0] == 0:
            return np.concatenate(out) if out else np.zeros((0, 2), np.float32)
        out.append(np.array(chunk))


def events_by_frame(timeline: Timeline, last: int) -> list[tuple[int, object]]:
    """Every event with the first heard frame at which it is reported."""
    found = []
    for played in range(0, last + 1):
        for event in timeline.playback(played).events:
            found.append((played, event))
    return found


def test_gapless_joins_are_sample_exact_and_events_land_on_the_frame() -> None:
    tracks = [ramp_track(3000, 1.0), ramp_track(1234, 2.0), ramp_track(2500, 3.0)]
    timeline = Timeline(RATE, crossfade_s=0.0)
    for i, samples in enumerate(tracks):
        timeline.enqueue(f"t{i}", samples, floor=0)
    assert timeline.queued_ids(0) == ["t0", "t1", "t2"]
    out = render_all(timeline, block=777)  # blocks that straddle the joins
    np.testing.assert_array_equal(out, np.concatenate(tracks))
    assert timeline.written == 3000 + 1234 + 2500 and not timeline.pending
    assert events_by_frame(timeline, 6734) == [
        (0, TrackStarted("t0", 3000 / RATE)),
        (3000, TrackFinished("t0")),
        (3000, TrackStarted("t1", 1234 / RATE)),
        (4234, TrackFinished("t1")),
        (4234, TrackStarted("t2", 2500 / RATE)),
        (6734, TrackFinished("t2")),
    ]


def test_positions_and_queue_follow_the_heard_frame() -> None:
    timeline = Timeline(RATE)
    timeline.enqueue("a", ramp_track(RATE), floor=0)
    timeline.enqueue("b", ramp_track(RATE), floor=0)
    render_all(timeline)
    now = timeline.playback(RATE // 4).now
    assert now == NowPlaying("a", 0.25, 1.0, False)
    assert timeline.queued_ids(RATE // 4) == ["b"]
    assert timeline.playback(RATE + RATE // 2, paused=True).now == NowPlaying("b", 0.5, 1.0, True)
    assert timeline.queued_ids(RATE + 1) == []
    assert timeline.playback(2 * RATE).now is None


def test_crossfade_is_equal_power_and_exactly_as_long_as_asked() -> None:
    a = np.tile(np.array([[1.0, 0.0]], np.float32), (RATE, 1))  # left only
    b = np.tile(np.array([[0.0, 1.0]], np.float32), (RATE, 1))  # right only
    timeline = Timeline(RATE, crossfade_s=0.25)
    timeline.enqueue("a", a, floor=0)
    timeline.enqueue("b", b, floor=0)
    out = render_all(timeline, block=500)
    xf = RATE // 4
    assert out.shape[0] == 2 * RATE - xf
    both = np.flatnonzero((out[:, 0] > 0) & (out[:, 1] > 0))
    assert both[0] == RATE - xf and both.size == xf, "the blend starts and lasts as asked"
    fade_out, fade_in = equal_power_curves(xf)
    np.testing.assert_allclose(out[RATE - xf : RATE, 0], fade_out, atol=1e-7)
    np.testing.assert_allclose(out[RATE - xf : RATE, 1], fade_in, atol=1e-7)
    power = out[RATE - xf : RATE, 0] ** 2 + out[RATE - xf : RATE, 1] ** 2
    np.testing.assert_allclose(power, 1.0, atol=1e-6)
    # b is audible from the start of the blend; a finishes at its end
    found = dict(((type(e).__name__, e.track_id), f) for f, e in events_by_frame(timeline, RATE))
    assert found[("TrackStarted", "b")] == RATE - xf
    assert found[("TrackFinished", "a")] == RATE


def test_crossfade_is_limited_to_half_of_either_track() -> None:
    timeline = Timeline(RATE, crossfade_s=5.0)
    timeline.enqueue("a", ramp_track(RATE), floor=0)
    timeline.enqueue("b", ramp_track(RATE // 5), floor=0)
    out = render_all(timeline)
    assert out.shape[0] == RATE + RATE // 5 - RATE // 10


def test_skip_fades_out_from_the_floor_and_the_next_fades_in() -> None:
    long, nxt = ramp_track(5 * RATE, 1.0), np.ones((RATE, 2), np.float32)
    timeline = Timeline(RATE, crossfade_s=0.3)
    timeline.enqueue("long", long, floor=0)
    timeline.enqueue("next", nxt, floor=0)
    head = render_n(timeline, RATE)  # one second rendered ahead
    played, floor = RATE // 2, RATE // 2 + RATE // 4
    timeline.playback(played)
    timeline.skip(played, floor)
    assert timeline.written == floor, "everything past the floor is rewritten"
    out = np.concatenate([head[:floor], render_all(timeline)])
    fade = round(SKIP_FADE_S * RATE)
    fade_in = round(SKIP_FADE_IN_S * RATE)
    np.testing.assert_array_equal(out[:floor], long[:floor])
    faded = out[floor : floor + fade, 0] / long[floor : floor + fade, 0]
    assert faded[0] > 0.99 and faded[-1] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(faded) <= 0), "the fade-out only goes down"
    rest = out[floor + fade :]
    assert rest.shape[0] == RATE, "the next track plays whole"
    assert np.all(np.diff(rest[:fade_in, 0]) > 0) and rest[fade_in - 1, 0] == 1.0
    np.testing.assert_array_equal(rest[fade_in:], nxt[fade_in:])
    found = events_by_frame(timeline, floor + fade + RATE)
    assert (floor + fade, TrackFinished("long", skipped=True)) in found
    assert (floor + fade, TrackStarted("next", 1.0)) in found


def test_a_late_track_rewrites_the_tail_to_crossfade_or_starts_at_the_floor() -> None:
    a = ramp_track(RATE, 1.0)
    timeline = Timeline(RATE, crossfade_s=0.1)
    timeline.enqueue("a", a, floor=0)
    first = render_all(timeline)
    timeline.silence(RATE // 2)  # nothing queued: the driver renders silence ahead
    # b arrives while a's tail is still rewritable: it crossfades as if it had been there
    timeline.enqueue("b", ramp_track(RATE, 2.0), floor=RATE // 2)
    assert timeline.written == RATE - RATE // 10
    rest = render_all(timeline)
    assert first.shape[0] + rest.shape[0] - RATE // 10 == 2 * RATE - RATE // 10
    # c arrives after b's tail passed the floor: it starts at the floor, nothing before moves
    timeline.silence(RATE // 2)
    end = timeline.written
    timeline.enqueue("c", ramp_track(100, 3.0), floor=end - RATE // 4)
    assert timeline.written == end - RATE // 4
    np.testing.assert_array_equal(render_all(timeline), ramp_track(100, 3.0))


def test_a_rewrite_never_lands_inside_a_crossfade() -> None:
    a, b = ramp_track(RATE, 1.0), ramp_track(RATE, 2.0)
    timeline = Timeline(RATE, crossfade_s=0.5)
    timeline.enqueue("a", a, floor=0)
    timeline.enqueue("b", b, floor=0)
    before = render_n(timeline, RATE + RATE // 4)  # through the whole crossfade
    xf_start, xf_end = RATE // 2, RATE
    timeline.playback(RATE // 4)
    # a floor in the middle of the blend moves to its end: the blend is kept whole
    timeline.skip(played=RATE // 4, floor=(xf_start + xf_end) // 2)
    assert timeline.written == xf_end
    after = render_all(timeline)
    np.testing.assert_array_equal(after, b[xf_end - xf_start :])
    assert before.shape[0] - RATE // 4 + after.shape[0] == RATE + RATE // 2


def test_clear_keeps_the_audible_track_and_drops_the_rest() -> None:
    timeline = Timeline(RATE, crossfade_s=0.0)
    a = ramp_track(RATE, 1.0)
    timeline.enqueue("a", a, floor=0)
    timeline.enqueue("b", ramp_track(RATE, 2.0), floor=0)
    render_n(timeline, RATE // 2)
    assert timeline.queued_ids(0) == ["b"]
    timeline.clear(floor=RATE // 4)
    assert timeline.queued_ids(0) == [] and timeline.playback(0).now.track_id == "a"
    out = render_all(timeline)
    assert timeline.written == RATE and out[-1, 1] == 1.0


def test_a_growing_track_renders_to_its_frontier_and_joins_without_a_seam() -> None:
    whole = ramp_track(10_000, 1.0)
    timeline = Timeline(RATE, crossfade_s=0.01, buffer_fade_s=0.0)  # no frames held back
    timeline.enqueue("g", whole[:3000], floor=0, complete=False)
    timeline.enqueue("n", ramp_track(2000, 2.0), floor=0)
    parts = [render_all(timeline, block=1024)]
    assert timeline.written == 3000 and timeline.pending, "stops at the frontier"
    for lo, hi in ((3000, 3001), (3001, 7000), (7000, 10_000)):
        timeline.append("g", whole[lo:hi])
        parts.append(render_all(timeline, block=1024))
    assert timeline.frames_ready("g") == 10_000
    assert timeline.written == 10_000, "no crossfade before the track is complete"
    timeline.finish("g")
    parts.append(render_all(timeline))
    out = np.concatenate(parts)
    np.testing.assert_array_equal(out[:10_000], whole), "no sample repeated or dropped"
    assert out.shape[0] == 10_000 + 2000, "it ended at its true end (no blend was possible)"
    with pytest.raises(ValueError):
        timeline.append("n", whole[:10])


def test_a_growing_track_holds_back_its_fade_and_plays_on_seamlessly() -> None:
    guard = round(BUFFER_FADE_S * RATE)
    whole = ramp_track(20_000, 1.0)
    timeline = Timeline(RATE)
    timeline.enqueue("g", whole[:5000], floor=0, complete=False)
    parts = [render_all(timeline)]
    assert timeline.written == 5000 - guard and timeline.at_frontier
    assert not timeline.stalled
    timeline.append("g", whole[5000:20_000])
    timeline.finish("g")
    parts.append(render_all(timeline))
    out = np.concatenate(parts)
    np.testing.assert_array_equal(out, whole), "no sample repeated, dropped or faded"


def test_a_stall_fades_out_at_the_frontier_and_back_in_from_exactly_there() -> None:
    guard = round(BUFFER_FADE_S * RATE)
    resume = round(RESUME_S * RATE)
    whole = np.ones((100_000, 2), np.float32) * 0.5
    whole[:, 0] = (np.arange(100_000) + 1) / 1e6  # left says which frame it is
    timeline = Timeline(RATE)
    timeline.enqueue("g", whole[:10_000], floor=0, complete=False)
    timeline.enqueue("n", ramp_track(1000, 2.0), floor=0)
    before = render_all(timeline)
    assert before.shape[0] == 10_000 - guard
    faded = np.array(timeline.stall())
    assert faded.shape[0] == guard and timeline.stalled
    gains = fade(guard, 1.0, 0.0)
    np.testing.assert_allclose(faded, whole[10_000 - guard : 10_000] * gains[:, None], rtol=1e-6)
    assert faded[-1, 1] == 0.0, "silent at the frontier: no click when the output runs dry"
    now = timeline.playback(timeline.written).now
    assert now is not None and now.buffering
    stalled_at = timeline.written

    timeline.append("g", whole[10_000 : 10_000 + resume - 1])
    assert timeline.render(4096).shape[0] == 0, "waits for RESUME_S of audio"
    assert timeline.written == stalled_at, "the program (the position) does not advance"
    timeline.append("g", whole[10_000 + resume - 1 : 100_000])
    timeline.finish("g")
    after = render_all(timeline)
    assert not timeline.stalled
    now = timeline.playback(stalled_at + 1).now
    assert now is not None and not now.buffering
    rising = after[:guard]
    np.testing.assert_allclose(
        rising, whole[10_000 : 10_000 + guard] * fade(guard, 0.0, 1.0)[:, None], rtol=1e-6
    )
    assert rising[0, 1] < 0.01 and np.all(np.diff(rising[:, 1]) >= 0), "a smooth fade-in"
    # Every frame of the track exactly once, in order: the left channel counts frames.
    program = np.concatenate([before, faded, after])
    gain = program[:100_000, 1] / 0.5  # the right channel says the gain each frame got
    heard = gain > 1e-3
    index = np.round(program[:100_000, 0][heard] / gain[heard] * 1e6)
    np.testing.assert_array_equal(index, np.arange(1, 100_001)[heard])
    assert heard.sum() > 100_000 - 40, "only the fades' quietest frames are below -60 dB"
    assert program.shape[0] == 100_000 + 1000, "then the next track, gaplessly"
    np.testing.assert_array_equal(program[100_000:], ramp_track(1000, 2.0))


def test_a_complete_track_crossfades_into_a_growing_one() -> None:
    guard = round(BUFFER_FADE_S * RATE)
    a, b = ramp_track(10_000, 1.0), ramp_track(6000, 2.0)
    timeline = Timeline(RATE, crossfade_s=0.01)  # 480 frames
    timeline.enqueue("a", a, floor=0)
    timeline.enqueue("b", b[:2000], floor=0, complete=False)
    parts = [render_all(timeline)]
    assert timeline.written == 10_000 - 480 + 2000 - guard, "b waits at its frontier"
    timeline.append("b", b[2000:])
    timeline.finish("b")
    parts.append(render_all(timeline))
    out = np.concatenate(parts)
    fade_out, fade_in = equal_power_curves(480)
    blend = a[-480:] * fade_out[:, None] + b[:480] * fade_in[:, None]
    np.testing.assert_array_equal(out[: 10_000 - 480], a[:-480])
    np.testing.assert_allclose(out[10_000 - 480 : 10_000], blend, rtol=1e-6)
    np.testing.assert_array_equal(out[10_000:], b[480:]), "then all of b, seamlessly"


def test_a_skip_while_buffering_moves_on_at_once() -> None:
    timeline = Timeline(RATE)
    timeline.enqueue("g", ramp_track(5000, 1.0), floor=0, complete=False)
    render_all(timeline)
    timeline.stall()
    assert timeline.stalled
    timeline.playback(timeline.written)
    timeline.enqueue("n", ramp_track(2000, 2.0), floor=timeline.written)
    timeline.skip(timeline.written, timeline.written)
    out = render_all(timeline)
    assert out.shape[0] == 2000 and out[-1, 1] == 2.0
    timeline.append("g", ramp_track(10, 1.0))  # late audio of the skipped track: harmless


def test_a_flow_join_uses_the_tracks_own_crossfade() -> None:
    timeline = Timeline(RATE, crossfade_s=2.0)
    timeline.enqueue("a", ramp_track(10_000, 1.0), floor=0)
    timeline.enqueue("b", ramp_track(10_000, 2.0), floor=0, crossfade_s=0.0)
    out = render_all(timeline)
    assert out.shape[0] == 20_000, "gapless: no crossfade into b"
    timeline = Timeline(RATE, crossfade_s=2.0)
    timeline.enqueue("a", ramp_track(10_000, 1.0), floor=0)
    timeline.enqueue("b", ramp_track(10_000, 2.0), floor=0, crossfade_s=0.01)
    assert render_all(timeline).shape[0] == 20_000 - 480


def test_prepare_resamples_and_makes_stereo() -> None:
    mono = Audio(np.ones((32000, 1), np.float32), 32000)
    samples = prepare(mono, RATE)
    assert samples.shape == (RATE, 2) and samples.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Gain ramps (what the audio callback applies)


def run_blocks(ramp: GainRamp, blocks: int, block: int = 1024) -> np.ndarray:
    """The gains ``ramp`` applies over ``blocks`` blocks (0 while it holds)."""
    gains = []
    for _ in range(blocks):
        out = np.ones((block, 2), np.float32)
        if ramp.holding:
            out.fill(0.0)
        else:
            ramp.apply(out)
        gains.append(out[:, 0])
    return np.concatenate(gains)


def test_pause_and_resume_ramp_over_20_ms_and_hold_the_position() -> None:
    fade = round(PAUSE_FADE_S * RATE)
    transport = Transport()
    ramp = GainRamp(transport, RATE, 1024)
    transport.paused = True
    down = run_blocks(ramp, 2)
    assert down[fade - 1] == pytest.approx(0.0, abs=1e-6) and down[fade - 2] > 0
    assert np.abs(np.diff(np.concatenate([[1.0], down]))).max() <= 1.0 / fade + 1e-6
    assert ramp.holding
    transport.paused = False
    up = run_blocks(ramp, 2)
    assert up[fade - 1] == pytest.approx(1.0) and np.abs(np.diff(up)).max() <= 1.0 / fade + 1e-6

    # a driver that holds its read position while holding plays every frame exactly once
    program = np.ones(20 * 1024, np.float32)
    ramp = GainRamp(transport, RATE, 1024)
    heard, read = [], 0
    for block in range(30):
        transport.paused = 5 <= block < 15
        out = np.zeros((1024, 2), np.float32)
        if not ramp.holding and read < program.size:
            out[:, 0] = program[read : read + 1024]
            read += 1024
            ramp.apply(out)
        heard.append(out[:, 0])
    assert read == program.size, "nothing lost or repeated across the pause"
    played = np.concatenate(heard)[:-1024]  # the last block is past the end of the program
    assert np.abs(np.diff(played)).max() <= 1.0 / fade + 1e-6, "no click at pause or resume"
    assert (played == 0).sum() >= 9 * 1024, "the pause held silence"


def test_volume_and_mute_ramp_without_steps() -> None:
    transport = Transport()
    ramp = GainRamp(transport, RATE, 1024)
    step = 1.0 / (VOLUME_RAMP_S * RATE)
    transport.volume = 0.25
    down = run_blocks(ramp, 3)
    assert np.abs(np.diff(np.concatenate([[1.0], down]))).max() <= step + 1e-6
    assert down[-1] == pytest.approx(0.25) and ramp.volume_gain == pytest.approx(0.25)
    assert np.flatnonzero(np.isclose(down, 0.25))[0] == pytest.approx(0.75 / step, abs=2)
    transport.muted = True
    muted = run_blocks(ramp, 2)
    assert muted[-1] == 0.0 and np.abs(np.diff(muted)).max() <= step + 1e-6
    transport.muted = False
    assert run_blocks(ramp, 2)[-1] == pytest.approx(0.25)
    transport.volume = 7.0
    assert transport.volume == 1.0


# ---------------------------------------------------------------------------------------------
# The silent player: the same timeline on a clock


def test_silent_player_crossfades_like_the_real_player() -> None:
    player = SilentPlayer(crossfade_s=0.2)
    seen: list[tuple[float, object]] = []
    player.subscribe(lambda e: seen.append((time.monotonic(), e)))
    tone = Audio(np.full((RATE // 2, 1), 0.5, np.float32), RATE)
    player.start()
    try:
        player.enqueue("a", tone)
        player.enqueue("b", tone)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            isinstance(e, TrackFinished) and e.track_id == "b" for _, e in seen
        ):
            time.sleep(0.01)
    finally:
        player.close()
    at = {(type(e).__name__, e.track_id): t for t, e in seen if hasattr(e, "track_id")}
    assert at[("TrackStarted", "b")] - at[("TrackStarted", "a")] == pytest.approx(0.3, abs=0.05)
    assert at[("TrackFinished", "a")] - at[("TrackStarted", "b")] == pytest.approx(0.2, abs=0.05)
    assert at[("TrackFinished", "b")] - at[("TrackStarted", "a")] == pytest.approx(0.8, abs=0.05)
