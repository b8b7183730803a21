"""Streaming playback with real parts: the tiny MusicGen model streams into the scheduler, which
hands each track to the player as soon as it cannot run dry (silent playback, or the real player
into the PulseAudio null sink for ``sound`` tests). Engines made slower than real time are the real
tiny engine with each chunk delayed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from musicgen_fixture import load_throttled, require_fixture

from lofitui.audio.wav import read_wav
from lofitui.config import Config, load_config
from lofitui.engines.base import Progress
from lofitui.engines.encodec_stream import EncodecStream
from lofitui.engines.musicgen import MusicGenEngine
from lofitui.engines.musicgen_prime import PRIME_PARAM, codes_from_text
from lofitui.engines.runtime import RuntimeOptions
from lofitui.library import TrackCache
from lofitui.library.paces import Paces
from lofitui.scheduler import (
    CHUNK_S,
    FLOW_JOIN_S,
    LEAD_S,
    MARGIN_S,
    JobChanged,
    JobInfo,
    JobState,
    Notice,
    NowPlaying,
    Scheduler,
    SchedulerEvent,
    Station,
    TrackSaved,
    _Pace,
    can_start,
)

S = JobState
# ~2 s to generate, in chunks of 0.3 s growing to 1 s
STREAM = Station("calm lofi piano", model="tiny", duration_s=10.0)


class Events:
    """Every scheduler event with the time it arrived."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.items: list[tuple[float, SchedulerEvent]] = []
        scheduler.subscribe(lambda e: self.items.append((time.monotonic(), e)))

    def of(self, kind: type) -> list[Any]:
        return [e for _, e in self.items if isinstance(e, kind)]

    def jobs(self, job_id: str) -> list[tuple[float, JobInfo]]:
        return [
            (t, e.job) for t, e in self.items if isinstance(e, JobChanged) and e.job.id == job_id
        ]

    def first_playing(self, job_id: str) -> tuple[float, JobInfo]:
        return next((t, j) for t, j in self.jobs(job_id) if j.state is S.PLAYING)


async def until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def make(tmp_path: Path, tiny_engine: MusicGenEngine) -> AsyncIterator[Callable[..., Any]]:
    """``await make(station, engine=..., **scheduler_kwargs)`` → (scheduler, events, started_at)."""
    made: list[Scheduler] = []

    async def build(
        station: Station = STREAM, *, engine: Any = None, player: Any = None, **kwargs: Any
    ) -> tuple[Scheduler, Events, float]:
        engine = engine or tiny_engine
        kwargs.setdefault("lookahead", 1)
        scheduler = Scheduler(lambda _: engine, TrackCache(tmp_path / "cache"), player, **kwargs)
        made.append(scheduler)
        events = Events(scheduler)
        await scheduler.start()
        started = time.monotonic()
        scheduler.set_station(station)
        return scheduler, events, started

    yield build
    for scheduler in made:
        await scheduler.aclose()


def gaps(x: np.ndarray, window: int = 4800) -> int:
    """How many 100 ms windows (at 48 kHz) of ``x`` stay below -60 dBFS."""
    n = x.shape[0] // window * window
    return int(np.sum(np.abs(x[:n]).reshape(-1, window).max(axis=1) < 1e-3))


# ---------------------------------------------------------------------------------------------
# The start rule


def musicgen_chunk_ends(duration_s: float) -> list[float]:
    """Where MusicGen's streamed chunks end (seconds), from the real EncodecStream."""
    hop, rate = 640, 32000
    stream = EncodecStream(lambda codes: np.zeros(codes.shape[1] * hop, np.float32), hop)
    frames = round(duration_s * 50)
    sizes = [len(c) for f in range(frames) for c in stream.push(np.zeros((4, 1), np.int64))]
    sizes.append(len(stream.finish()))
    return [float(x) / rate for x in np.cumsum(sizes)]


# The loudness limiter (lofitui/audio/loudness.py) hands on each chunk but its last ~20 ms (5 ms
# of look-ahead and the 4x oversampler's filter) until the next chunk or the end comes.
LIMITER_HOLD_S = 0.025


def test_musicgen_chunks_keep_the_bound_the_start_rule_assumes() -> None:
    ends = musicgen_chunk_ends(30.0)
    assert ends[:5] == pytest.approx([0.3, 0.6, 1.2, 2.2, 3.2]) and ends[-1] == 30.0
    sizes = np.diff([0.0, *ends])
    later = zip(sizes[1:], ends[:-1], strict=True)
    assert all(s <= CHUNK_S + 1e-9 and s <= before + 1e-9 for s, before in later)
    assert MARGIN_S >= CHUNK_S + LEAD_S


@pytest.mark.parametrize(
    ("rate", "starts_at"),
    [(3.0, 0.3), (1.8, 0.3), (1.5, 0.6), (1.2, 1.2), (1.0, 2.2), (0.9, 5.2), (0.5, 16.2)],
)
def test_start_rule_starts_with_the_first_chunk_when_fast_and_later_when_slow(
    rate: float, starts_at: float
) -> None:
    """At 1.8x real time or more a 30 s track starts with its first 0.3 s chunk; slower, after
    as many chunks as keep every later one ahead of the playhead (and the end MARGIN_S ahead)."""
    ends = musicgen_chunk_ends(30.0)
    first = next(g for g in ends if can_start(g, 30.0, rate))
    assert first == pytest.approx(starts_at)


def test_start_rule_counts_the_time_until_the_playhead_gets_there() -> None:
    assert not can_start(0.3, 30.0, 1.2)
    assert can_start(0.3, 30.0, 1.2, ahead_s=1.0)  # a track plays for another second first
    assert not can_start(5.0, 30.0, 0.5, ahead_s=10.0)  # 50 s to go, 10 + 30 - 1.5 to play
    assert can_start(5.0, 30.0, 0.5, ahead_s=22.0)
    assert not can_start(0.0, 30.0, 5.0) and not can_start(1.0, 30.0, 0.0)


def test_start_rule_plans_on_the_longest_chunk_an_engine_streams() -> None:
    """VAE tiles (ACE-Step v1: ~10 s) arrive whole: a tile-streamed track may start after its
    first tile only when it generates faster than real time, where 1 s chunks at the same rate
    would already start."""
    assert can_start(10.4, 30.0, 0.9)  # 1 s chunks: 19.6 s to go at 0.9x, 10.4 s in hand
    assert not can_start(10.4, 30.0, 0.9, chunk_s=10.4)  # the next 10 s arrive after 11.6 s
    assert can_start(10.4, 30.0, 1.1, chunk_s=10.4)
    # Slower than real time the last tile is the tightest: it must arrive before the playhead
    # reaches its start, a tile (not MARGIN_S) before the end: at 121.8 s, the playhead at 114.6 s.
    assert can_start(10.4, 120.0, 0.9, ahead_s=5.0)
    assert not can_start(10.4, 120.0, 0.9, ahead_s=5.0, chunk_s=10.4)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def slowing_track(pace: _Pace, clock: FakeClock, c0: float, k: float, units: int, upto: int):
    """Report units 1..upto to ``pace``, unit u costing c0 (1 + k u / units) seconds."""
    for u in range(1, upto + 1):
        clock.now += c0 * (1 + k * u / units)
        pace.note(Progress(u, units, "token"))


def test_pace_learns_how_a_track_slows_and_predicts_the_rest() -> None:
    """A MusicGen step costs more the later it is in a window: the pace measured over the first
    tenth overstates the rest by ~25 % at k = 0.6; learned from one finished track, the
    prediction for the next is within 2 %, and the start rule waits instead of running dry."""
    units, k = 1500, 0.6
    c0 = 30 / 0.95 / (units * (1 + k / 2))  # the whole track at 0.95x real time
    clock = FakeClock()
    first = _Pace(30.0, clock=clock)
    slowing_track(first, clock, c0, k, units, units)
    learned = first.fitted_slowdown()
    assert learned == pytest.approx(k, abs=0.02)

    clock_a = FakeClock()
    naive = _Pace(30.0, clock=clock_a)
    slowing_track(naive, clock_a, c0, k, units, 150)
    clock_b = FakeClock()
    taught = _Pace(30.0, learned, clock=clock_b)
    slowing_track(taught, clock_b, c0, k, units, 150)
    u = 150
    true_rest = 27.0 / (c0 * ((units - u) + k * (units**2 - u**2) / (2 * units)))
    assert naive.rate() > 1.2 * true_rest  # the early pace: 1.2x, where 0.93x is to come
    assert taught.rate() == pytest.approx(true_rest, rel=0.02)
    assert can_start(3.0, 30.0, naive.rate()) and not can_start(3.0, 30.0, taught.rate())


def test_pace_of_a_steady_engine_learns_no_slowdown() -> None:
    clock = FakeClock()
    pace = _Pace(10.0, clock=clock)
    slowing_track(pace, clock, 0.004, 0.0, 500, 500)
    assert pace.fitted_slowdown() == pytest.approx(0.0, abs=1e-6)
    assert _Pace(10.0, clock=clock).fitted_slowdown() is None  # nothing reported: no guess


class Slowing(MusicGenEngine):
    """The tiny engine, reporting ``UNITS`` units whose real cost grows 9x over the track."""

    UNITS = 40

    def stream(self, request, on_progress=None, cancel=None, *, chunk_s=None):
        chunks = list(super().stream(request, None, cancel))
        for u in range(1, self.UNITS + 1):
            time.sleep(0.001 * (1 + 8 * u / self.UNITS))
            if on_progress is not None:
                on_progress(Progress(u, self.UNITS, "token"))
        yield from chunks


async def test_the_scheduler_learns_a_models_slowdown_and_remembers_it(
    make, tmp_path: Path
) -> None:
    engine = Slowing.load(require_fixture(), RuntimeOptions("cpu", 1), model_name="tiny")
    path = tmp_path / "paces.json"
    scheduler, _, _ = await make(engine=engine, lookahead=1, paces=Paces(path))
    # white box: the lane's slowdown is what the next track's pace starts from
    lanes = scheduler._lanes
    await until(lambda: lanes and next(iter(lanes.values())).slowdown > 0, what="a learned pace")
    (key, lane), *_ = lanes.items()
    assert lane.slowdown > 1.5  # each unit costs up to 9x the first: k = 5, the cap
    # the next session's first track starts from it
    assert Paces(path).slowdown(key) == pytest.approx(lane.slowdown)
    later, _, _ = await make(engine=engine, lookahead=1, paces=Paces(path))
    await until(lambda: later._lanes, what="the next session's lane")
    assert next(iter(later._lanes.values())).slowdown > 1.0  # not the steady 0


def test_paces_survive_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "paces.json"
    path.write_text("{not json", encoding="utf-8")
    paces = Paces(path)
    assert paces.slowdown(("musicgen", "small")) == 0.0
    paces.learned(("musicgen", "small"), 0.6)
    assert Paces(path).slowdown(("musicgen", "small")) == 0.6
    assert Paces(None).slowdown(("musicgen", "small")) == 0.0


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0.1, 8.0),
    duration=st.floats(1.0, 90.0),
    ahead=st.one_of(st.just(0.0), st.floats(0.0, 40.0)),
)
def test_a_track_started_by_the_rule_gets_every_chunk_in_time(
    rate: float, duration: float, ahead: float
) -> None:
    """Generated at a steady ``rate``, each of MusicGen's chunks arrives LEAD_S before the
    playhead reaches it once the rule lets the track start (its shortcuts skip nothing)."""
    ends = musicgen_chunk_ends(duration)
    start = next((i for i, g in enumerate(ends) if can_start(g, ends[-1], rate, ahead)), None)
    if start is None:  # it waits until the track is complete
        return
    g = ends[start]
    for before, end in zip(ends[start:-1], ends[start + 1 :], strict=True):
        assert (end - g) / rate + LEAD_S <= ahead + before + 1e-9


# ---------------------------------------------------------------------------------------------
# Streaming, silently


async def test_playback_starts_long_before_generation_ends(make, tmp_path: Path) -> None:
    s, events, asked = await make()
    await until(lambda: s.current is not None, what="the first track plays")
    at, playing = events.first_playing(s.current.id)
    assert playing.generated_s < playing.duration_s, "it plays while it is still generated"
    assert playing.streaming
    # The tiny model is ~19x real time: the track is handed over with its first 0.3 s chunk,
    # less what the loudness limiter holds back until the next chunk comes (LIMITER_HOLD_S).
    handed = next(j for _, j in events.jobs(playing.id) if j.handed)
    assert 0.3 - LIMITER_HOLD_S <= handed.generated_s < 0.3
    assert at - asked < 3.0
    job = playing.id
    await until(lambda: s.job(job).path is not None, what="generation ends")
    done = s.job(job)
    assert done.state is S.PLAYING and done.generated_s == done.duration_s and not done.streaming
    generated = [j.generated_s for _, j in events.jobs(job)]
    assert generated == sorted(generated), "generated_s only grows"
    assert read_wav(done.path).duration_s == pytest.approx(10.0)
    assert done.request.key in TrackCache(tmp_path / "cache")
    now = [e for e in events.of(NowPlaying) if e.track_id == job]
    assert now and all(e.duration_s == pytest.approx(10.0) for e in now)
    assert not any(e.buffering for e in now)


async def test_a_slower_than_real_time_engine_starts_late_and_never_buffers(make) -> None:
    # 1.8 s of delay per second of audio, plus generation: r ~ 0.5 (0.4..0.67 under load). Its
    # chunks end at 0.3, 0.6, 1.2, 2.2, 3.2 and 4 s; the 4 s track may start once
    # (4 - G) / r <= 4 - MARGIN_S, i.e. with G = 3.2 s (five chunks, ~6.5 s in), and its last
    # chunk comes before the playhead gets there.
    engine = load_throttled(1.8)
    station = Station("slow strings", model="tiny", duration_s=4.0)
    s, events, asked = await make(station, engine=engine)
    await until(lambda: s.current is not None, timeout=30, what="a late start")
    at, playing = events.first_playing(s.current.id)
    r = 0.5
    predicted = next(g for g in musicgen_chunk_ends(4.0) if can_start(g, 4.0, r))
    assert predicted == pytest.approx(3.2)
    assert predicted - LIMITER_HOLD_S <= playing.generated_s < predicted, "five chunks, not one"
    assert at - asked == pytest.approx(predicted / r, abs=1.0)
    job = playing.id
    await until(lambda: s.job(job).state is S.PLAYED, timeout=30, what="it plays to the end")
    assert not any(e.buffering for e in events.of(NowPlaying)), "no underrun"
    assert s.job(job).path is not None


async def test_a_stall_buffers_and_the_track_plays_on(make) -> None:
    # Fast at first (it starts after one chunk), then the engine stalls for 4 s.
    engine = load_throttled(0.0, stall={2: 4.0})
    station = Station("stalling synth", model="tiny", duration_s=4.0)
    s, events, _ = await make(station, engine=engine)
    await until(lambda: s.current is not None, what="the first track plays")
    job = s.current.id
    await until(
        lambda: any(e.buffering for e in events.of(NowPlaying)), timeout=10, what="buffering"
    )
    await until(lambda: s.job(job).state is S.PLAYED, timeout=30, what="it plays to the end")
    now = [e for e in events.of(NowPlaying) if e.track_id == job]
    buffering = [e for e in now if e.buffering]
    assert buffering and all(e.position_s < 4.0 for e in buffering)
    stuck = {round(e.position_s, 2) for e in buffering}
    assert max(stuck) - min(stuck) < 0.2, "the position does not advance while it buffers"
    assert now[-1].buffering is False


async def test_skipping_a_streaming_track_cancels_it_and_caches_nothing(
    make, tmp_path: Path
) -> None:
    engine = load_throttled(0.5)
    drone = Station("long drone", model="tiny", duration_s=30.0)
    s, _, _ = await make(drone, engine=engine)
    await until(lambda: s.current is not None, what="the first track streams")
    streaming = s.current
    assert streaming.streaming
    s.skip()
    await until(lambda: s.job(streaming.id).state is S.PLAYED, what="skipped")
    await until(lambda: s.upcoming and s.upcoming[0].state is S.GENERATING, what="the next job")
    nxt = s.upcoming[0]
    s.set_station(Station("other drone", model="tiny", duration_s=30.0))
    assert s.job(nxt.id).state is S.CANCELLED
    await s.aclose()
    root = tmp_path / "cache"
    cache = TrackCache(root)
    for job in (streaming, nxt):
        assert job.request.key not in cache
        assert not [p for p in root.iterdir() if job.request.key in p.name]
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "temp files left behind"


async def test_saving_a_track_still_generating_saves_it_once_complete(make, lofi_dirs) -> None:
    engine = load_throttled(0.3)
    s, events, _ = await make(
        Station("calm lofi piano", model="tiny", duration_s=6.0), engine=engine
    )
    await until(lambda: s.current is not None, what="the first track streams")
    assert s.current.streaming
    assert s.save_current() is None
    assert any("will be saved when it is complete" in n.message for n in events.of(Notice))
    await until(lambda: events.of(TrackSaved), timeout=20, what="the save")
    saved = events.of(TrackSaved)[0]
    assert saved.job_id == s.current.id and saved.path.parent == lofi_dirs.music_dir()
    assert read_wav(saved.path).duration_s == pytest.approx(6.0)


# ---------------------------------------------------------------------------------------------
# Flow


async def test_flow_primes_each_track_with_the_last_ones_codes(make, tiny_engine) -> None:
    station = Station("flowing ambient", model="tiny", duration_s=3.0)
    s, _, _ = await make(station, flow=True, lookahead=2)
    await until(lambda: len([j for j in s.jobs if j.path]) >= 2, what="two tracks generated")
    first, second = [j for j in s.jobs if j.path][:2]
    await s.aclose()  # the engine is free again
    assert first.primed_by is None and second.primed_by == first.id
    assert PRIME_PARAM not in first.request.params
    prime = codes_from_text(second.request.params[PRIME_PARAM], 4, 2048)
    # The first track's codes, as the engine made them (same request, same seed).
    stream = tiny_engine.stream(first.request)
    for _ in stream:
        pass
    codes = stream.codes
    assert prime.shape[1] > 0
    np.testing.assert_array_equal(prime, codes[:, -prime.shape[1] :])
    assert PRIME_PARAM not in second.params, "the TUI shows the station's params"
    assert dict(second.params) == dict(station.params)


async def test_flow_station_change_continues_the_playing_track(make) -> None:
    station = Station("flowing ambient", model="tiny", duration_s=3.0)
    s, events, _ = await make(station, flow=True)
    await until(lambda: s.current is not None and s.current.path, what="a complete first track")
    playing = s.current
    s.set_station(Station("flowing jazz", model="tiny", duration_s=3.0))
    await until(lambda: s.current is not None and s.current.id != playing.id, what="the change")
    new = s.current
    assert new.station.prompt == "flowing jazz" and new.primed_by == playing.id
    assert [j.state for _, j in events.jobs(playing.id)][-1] is S.PLAYED
    ended = next(t for t, j in events.jobs(playing.id) if j.state is S.PLAYED)
    started, _ = events.first_playing(new.id)
    assert abs(started - ended) < 0.3, "it follows the playing track instead of cutting it"


def test_flow_joins_are_gapless_and_the_option_is_off_by_default(tmp_path: Path) -> None:
    assert FLOW_JOIN_S == 0.0
    assert Config().flow is False
    path = tmp_path / "config.toml"
    path.write_text("flow = true\n")
    assert load_config(path).config.flow is True
    path.write_text('flow = "yes"\n')
    loaded = load_config(path)
    assert loaded.config.flow is False
    assert "flow must be true or false" in " | ".join(loaded.warnings)


# ---------------------------------------------------------------------------------------------
# Real playback into the null sink


@pytest.mark.sound
async def test_streamed_playback_reaches_the_sink_early_and_without_a_gap(make) -> None:
    from test_player import RATE, Recorder, active_span

    from lofitui.audio.player import Player
    from lofitui.audio.resample import resample

    player = Player(samplerate=RATE, crossfade_s=0.0)
    station = Station("calm lofi piano", model="tiny", duration_s=8.0)
    with Recorder() as rec:
        recording = time.monotonic()
        s, events, asked = await make(station, player=player)
        await until(lambda: s.current is not None, what="the first track plays")
        first = s.current
        handed = [j for _, j in events.jobs(first.id) if j.handed]
        assert handed[0].streaming, "handed to the player while being generated"
        await until(lambda: s.job(first.id).state is S.PLAYED, timeout=30, what="8 s played")
        await asyncio.sleep(0.5)
    audio = rec.audio()[:, 0]
    start, _ = active_span(audio)
    first_sound = recording + start / RATE
    track = audio[start : start + 8 * RATE]
    assert track.shape[0] == 8 * RATE
    # A gap: a 100 ms window below -60 dBFS that the model did not generate.
    made = resample(read_wav(s.job(first.id).path), RATE).samples[:, 0]
    buffered = any(e.buffering for e in events.of(NowPlaying))
    why = f"starved blocks {player.starved_blocks}, buffered {buffered}"
    assert gaps(track) == gaps(made[: track.shape[0]]), f"a gap in the captured audio ({why})"
    assert player.starved_blocks == 0
    assert not any(e.buffering for e in events.of(NowPlaying))
    # From the station change to the first audible sample (input latency included).
    assert first_sound - asked < 2.0, f"first sound after {first_sound - asked:.2f} s"
    print(f"time to first sound: {first_sound - asked:.3f} s")
