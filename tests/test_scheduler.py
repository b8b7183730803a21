"""The scheduler with real parts: the tiny MusicGen model, a real cache on disk, and either silent
playback (``player=None``) or the real player into the PulseAudio null sink (``sound`` tests)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from musicgen_fixture import Throttled, flat_copy, load_throttled, require_fixture

from lofitui.audio.types import Audio
from lofitui.audio.wav import read_wav
from lofitui.engines.base import CancelToken, ProgressCallback, TrackRequest
from lofitui.engines.musicgen import MusicGenEngine
from lofitui.engines.registry import engine_class
from lofitui.engines.runtime import RuntimeOptions
from lofitui.errors import LofiError
from lofitui.library import TrackCache
from lofitui.scheduler import (
    JobChanged,
    JobInfo,
    JobProgress,
    JobState,
    Level,
    Notice,
    NowPlaying,
    OutputChanged,
    Scheduler,
    SchedulerEvent,
    Station,
    StationChanged,
    TrackSaved,
)

S = JobState
CALM = Station("calm lofi piano", model="tiny", duration_s=1.0)
RAIN = Station("rainy jazz guitar", model="tiny", duration_s=1.0)
LONG = Station("slow ambient pads", model="tiny", duration_s=300.0)  # ~10 s to generate


# ---------------------------------------------------------------------------------------------
# Helpers


class Factory:
    """engine_factory that hands out one engine and counts the loads it was asked for."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.calls: list[Station] = []

    def __call__(self, station: Station) -> Any:
        self.calls.append(station)
        return self.engine


class Events:
    """Every scheduler event, in order, as seen by a subscriber on the loop thread."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.items: list[tuple[float, SchedulerEvent]] = []
        scheduler.subscribe(lambda e: self.items.append((time.monotonic(), e)))

    def of(self, kind: type) -> list[Any]:
        return [e for _, e in self.items if isinstance(e, kind)]

    def states(self, job_id: str) -> list[JobState]:
        """The states a job went through (consecutive repeats folded)."""
        seen = [e.job.state for e in self.of(JobChanged) if e.job.id == job_id]
        return [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]

    def max_generating(self) -> int:
        """The most jobs that were ever in state generating at the same time."""
        state: dict[str, JobState] = {}
        most = 0
        for e in self.of(JobChanged):
            state[e.job.id] = e.job.state
            most = max(most, sum(1 for s in state.values() if s is S.GENERATING))
        return most


async def until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


def ready(s: Scheduler) -> list[JobInfo]:
    return [j for j in s.upcoming if j.state is S.READY]


def settled(s: Scheduler, n: int | None = None) -> bool:
    """Something plays and the whole lookahead is ready."""
    return s.current is not None and len(ready(s)) == (n or s.lookahead)


def cache_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != "index.json")


def files_of(root: Path, request: TrackRequest) -> list[str]:
    return [p.name for p in root.iterdir() if request.key in p.name]


@pytest.fixture
async def make(tmp_path: Path, tiny_engine: MusicGenEngine) -> AsyncIterator[Callable[..., Any]]:
    """``await make(station, paused=..., **scheduler_kwargs)`` → (scheduler, events, factory).

    Silent playback (player=None) unless ``player`` is given; every scheduler is closed after
    the test, on the test's loop.
    """
    made: list[Scheduler] = []

    async def build(
        station: Station | None = CALM,
        *,
        paused: bool = False,
        factory: Callable[[Station], Any] | None = None,
        cache: TrackCache | None = None,
        player: Any = None,
        **kwargs: Any,
    ) -> tuple[Scheduler, Events, Any]:
        factory = factory or Factory(tiny_engine)
        cache = cache or TrackCache(tmp_path / "cache")
        scheduler = Scheduler(factory, cache, player, **kwargs)
        made.append(scheduler)
        events = Events(scheduler)
        if paused:
            scheduler.toggle_pause()
        if station is not None:
            scheduler.set_station(station)
        await scheduler.start()
        return scheduler, events, factory

    yield build
    for scheduler in made:
        await scheduler.aclose()


class FailingEngine(MusicGenEngine):
    """The real tiny engine, except that it breaks down on some requests."""

    fail_prompt = "boom"
    fail_seeds: frozenset[int] = frozenset()

    def stream(
        self,
        request: TrackRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[Audio]:
        if self.fail_prompt in request.prompt or request.seed in self.fail_seeds:
            raise RuntimeError("synthesizer on fire")
        return super().stream(request, on_progress, cancel)


@pytest.fixture(scope="module")
def failing_engine() -> FailingEngine:
    return FailingEngine.load(require_fixture(), RuntimeOptions("cpu", 1), model_name="tiny")


@pytest.fixture(scope="module")
def slow_start_engine() -> Throttled:
    """The tiny engine with its first chunk held back half a second: its jobs report progress
    while they cannot play yet (it otherwise streams into playback within milliseconds, before
    a test can see the job generating)."""
    return load_throttled(0.0, stall={0: 0.5})


# ---------------------------------------------------------------------------------------------
# Lookahead, states, progress


async def test_lookahead_is_kept_ready_with_fresh_seeds(make, tmp_path: Path) -> None:
    s, events, factory = await make(paused=True)
    await until(lambda: settled(s), what="a playing track and 2 ready")
    await asyncio.sleep(0.3)  # and no more than that is generated
    assert len(s.upcoming) == 2 and all(j.state is S.READY for j in s.upcoming)

    jobs = [s.current, *s.upcoming]
    assert all(j is not None for j in jobs)
    requests = [j.request for j in jobs]
    assert len({r.seed for r in requests}) == 3, "every track gets a fresh seed"
    assert {(r.prompt, r.duration_s, r.model) for r in requests} == {(CALM.prompt, 1.0, "tiny")}
    cache = TrackCache(tmp_path / "cache")
    assert all(j.path == cache.wav_path(j.request.key) and j.path.exists() for j in jobs)
    assert events.max_generating() == 1, "one job at a time per model"
    assert factory.calls == [CALM], "the engine is loaded once per (engine, model)"
    assert s.jobs[-3:] == jobs
    assert not s.has_audio_output

    assert events.states(s.current.id) == [S.QUEUED, S.GENERATING, S.READY, S.PLAYING]
    for job in s.upcoming:
        assert events.states(job.id) == [S.QUEUED, S.GENERATING, S.READY]
        progress = [e.progress for e in events.of(JobProgress) if e.job_id == job.id]
        assert progress and progress[-1].done == progress[-1].total
        assert progress[-1].unit == "token"


async def test_progress_floods_are_coalesced(make) -> None:
    station = Station("busy drum loop", model="tiny", duration_s=10.0)  # ~500 tokens
    s, events, _ = await make(station, paused=True, lookahead=1)
    await until(lambda: s.current is not None and s.current.path, what="first track, complete")
    job = s.current
    spans = [t for t, e in events.items if isinstance(e, JobChanged) and e.job.id == job.id]
    seconds = spans[-1] - spans[0]
    updates = [e.progress for e in events.of(JobProgress) if e.job_id == job.id]
    assert updates[-1].total >= 500 and updates[-1].done == updates[-1].total
    assert 1 <= len(updates) <= 10 * seconds + 2
    assert [p.done for p in updates] == sorted(p.done for p in updates)


async def test_tracks_play_back_to_back_without_audio_output(make) -> None:
    s, events, _ = await make()
    await until(lambda: len([j for j in s.history if j.state is S.PLAYED]) >= 2, what="2 played")
    played = [j for j in s.history if j.state is S.PLAYED]
    for job in played:
        assert events.states(job.id) == [S.QUEUED, S.GENERATING, S.READY, S.PLAYING, S.PLAYED]
    starts = [
        t
        for t, e in events.items
        if isinstance(e, JobChanged) and e.job.state is S.PLAYING and e.job.id != played[0].id
    ]
    first = next(
        t for t, e in events.items if isinstance(e, JobChanged) and e.job.state is S.PLAYING
    )
    assert starts[0] - first == pytest.approx(1.0, abs=0.15), "1 s tracks follow each other"
    now = [e for e in events.of(NowPlaying) if e.job is not None]
    assert now and all(0.0 <= e.position_s <= e.duration_s for e in now)
    assert events.of(Level)


# ---------------------------------------------------------------------------------------------
# Intents


async def test_skip_moves_to_the_next_ready_track(make) -> None:
    s, events, _ = await make(paused=True)
    await until(lambda: settled(s))
    first, second = s.current, s.upcoming[0]
    s.skip()
    await until(lambda: s.current is not None and s.current.id == second.id, what="skip")
    assert events.states(first.id)[-2:] == [S.PLAYING, S.PLAYED]
    await until(lambda: settled(s), what="lookahead refilled")


async def test_regenerate_next_replaces_the_upcoming_track(make) -> None:
    s, _, _ = await make(paused=True)
    await until(lambda: settled(s))
    current, nxt = s.current, s.upcoming[0]
    s.regenerate("next")
    assert s.job(nxt.id).state is S.CANCELLED
    assert nxt.path.exists(), "a ready track leaves the queue but stays in the cache"
    await until(lambda: settled(s))
    assert s.current.id == current.id
    assert nxt.id not in {j.id for j in s.upcoming}
    assert nxt.request.seed not in {j.request.seed for j in s.upcoming}


async def test_regenerate_current_replaces_the_playing_track(make) -> None:
    s, events, _ = await make(paused=True)
    await until(lambda: settled(s))
    old = s.current
    s.regenerate("current")
    await until(lambda: s.current is not None and s.current.id != old.id, what="takeover")
    new = s.current
    assert new.station == old.station and new.request.seed != old.request.seed
    assert events.states(new.id) == [S.QUEUED, S.GENERATING, S.READY, S.PLAYING]
    assert events.states(old.id)[-1] is S.PLAYED
    await until(lambda: settled(s))


async def test_station_change_drops_ready_tracks_and_takes_over(make, tmp_path: Path) -> None:
    s, events, _ = await make(paused=True)
    await until(lambda: settled(s))
    old_current, old_ready = s.current, s.upcoming
    s.set_station(RAIN)
    assert events.of(StationChanged)[-1].station == RAIN
    for job in old_ready:  # rule: ready ones leave the queue but stay in the cache
        assert s.job(job.id).state is S.CANCELLED
        assert job.path.exists() and job.request.key in s.cache
    assert s.current.id == old_current.id, "the playing track plays on meanwhile"
    assert all(j.station == RAIN for j in s.upcoming)

    await until(
        lambda: s.current is not None and s.current.station == RAIN,
        what="the new station takes over",
    )
    assert events.states(old_current.id)[-1] is S.PLAYED
    await until(lambda: settled(s))
    assert all(j.station == RAIN for j in s.upcoming)


async def test_hand_over_waits_for_a_track_boundary(make) -> None:
    s, events, _ = await make(CALM)
    await until(lambda: settled(s), what="the old station playing with its lookahead ready")
    old_upcoming = s.upcoming
    s.hand_over(RAIN)
    assert s.station == CALM and s.handing_over_to == RAIN, "the old station plays on meanwhile"
    assert [s.job(j.id).state for j in old_upcoming] == [S.READY, S.READY]

    await until(
        lambda: s.current is not None and s.current.station == RAIN,
        what="the new station's first track",
    )
    assert s.station == RAIN and s.handing_over_to is None
    assert events.of(StationChanged)[-1].station == RAIN
    # the track before the switch played to its end: a boundary, not a takeover
    first_rain = s.current.id
    order = [e.job.id for e in events.of(JobChanged) if e.job.state is S.PLAYING]
    before = order[order.index(first_rain) - 1]
    reached = max(n.position_s for n in events.of(NowPlaying) if n.track_id == before)
    assert reached >= CALM.duration_s - 0.25, f"the old track was cut at {reached:.2f} s"
    assert events.states(before)[-1] is S.PLAYED
    await until(lambda: settled(s))
    assert all(j.station == RAIN for j in s.upcoming)


async def test_a_failing_hand_over_leaves_the_old_station_playing(make, failing_engine) -> None:
    s, events, _ = await make(factory=Factory(failing_engine))
    await until(lambda: settled(s))
    s.hand_over(Station("boom", model="tiny", duration_s=1.0))
    await until(lambda: s.handing_over_to is None, what="the hand-over to fail")
    assert s.station == CALM and not s.halted
    assert "plays on" in events.of(Notice)[-1].message
    played = len([e for e in events.of(JobChanged) if e.job.state is S.PLAYED])
    await until(
        lambda: len([e for e in events.of(JobChanged) if e.job.state is S.PLAYED]) > played + 1,
        what="the old station to keep playing",
    )


async def test_station_change_cancels_generation_within_a_step(
    make, tmp_path: Path, slow_start_engine
) -> None:
    s, events, _ = await make(LONG, paused=True, lookahead=1, factory=Factory(slow_start_engine))
    await until(lambda: events.of(JobProgress), what="generation under way")
    long_job = s.upcoming[0]
    assert long_job.state is S.GENERATING
    switched = time.monotonic()
    s.set_station(CALM)
    assert s.job(long_job.id).state is S.CANCELLED
    await until(lambda: s.current is not None, what="the new station's first track")
    # the model's only worker was free again at once: the old job stopped within a step
    assert time.monotonic() - switched < 3.0
    assert s.current.station == CALM
    await s.aclose()
    root = tmp_path / "cache"
    assert files_of(root, long_job.request) == []
    assert long_job.request.key not in TrackCache(root)
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "temp files left behind"


async def test_cancelled_jobs_leave_nothing_in_the_cache(
    make, tmp_path: Path, slow_start_engine
) -> None:
    s, events, _ = await make(LONG, lookahead=2, factory=Factory(slow_start_engine))
    await until(lambda: events.of(JobProgress), what="generation under way")
    generating, queued = s.upcoming
    assert (generating.state, queued.state) == (S.GENERATING, S.QUEUED)
    s.cancel(queued.id)
    s.cancel(generating.id)
    s.cancel("no-such-job")  # ignored
    assert s.job(queued.id).state is S.CANCELLED and s.job(generating.id).state is S.CANCELLED
    assert len(s.upcoming) == 2, "the lookahead is refilled"
    await until(lambda: s.upcoming[0].state is S.GENERATING, what="the next job starts")
    s.clear()
    assert all(j.state is not S.GENERATING or j.id not in {generating.id} for j in s.upcoming)
    await s.aclose()
    assert cache_files(tmp_path / "cache") == [], "no WAV, sidecar or temp file"
    assert len(TrackCache(tmp_path / "cache")) == 0


async def test_aclose_stops_generation_promptly_and_cleanly(make, tmp_path: Path) -> None:
    s, events, _ = await make(LONG)
    await until(lambda: events.of(JobProgress), what="generation under way")
    started = time.monotonic()
    await s.aclose()
    assert time.monotonic() - started < 2.0
    assert cache_files(tmp_path / "cache") == []


async def test_at_most_max_pending_jobs(make) -> None:
    with pytest.raises(ValueError):
        Scheduler(Factory(None), TrackCache.__new__(TrackCache), None, lookahead=3, max_pending=2)
    s, _, _ = await make(LONG, lookahead=1, max_pending=3)
    s.enqueue()
    extra = s.enqueue(seed=1234)
    assert extra.request.seed == 1234 and extra.state is S.QUEUED
    with pytest.raises(LofiError, match="at most 3"):
        s.enqueue()
    assert len(s.upcoming) == 3


async def test_save_current(make, lofi_dirs) -> None:
    s, events, _ = await make(paused=True, cache=TrackCache())
    with pytest.raises(LofiError, match="nothing is playing"):
        s.save_current()
    await until(lambda: s.current is not None)
    path = s.save_current()
    assert path.parent == lofi_dirs.music_dir() and path.suffix == ".wav"
    assert path.name.startswith("calm-lofi-piano-")
    assert read_wav(path).duration_s == pytest.approx(1.0)
    assert s.save_current() == path, "saving twice keeps one copy"
    assert len(list(path.parent.glob("*.wav"))) == 1
    assert events.of(TrackSaved)[0] == TrackSaved(s.current.id, path)
    assert any("saved" in n.message for n in events.of(Notice))
    assert s.cache.is_saved(s.current.request.key)


async def test_a_broken_subscriber_does_not_stop_the_others(make) -> None:
    s, events, _ = await make(None)

    def broken(event: SchedulerEvent) -> None:
        raise RuntimeError("subscriber bug")

    s.subscribe(broken)
    seen: list[SchedulerEvent] = []
    unsubscribe = s.subscribe(seen.append)
    s.set_station(CALM)
    await until(lambda: s.current is not None)
    assert seen and events.of(StationChanged)
    unsubscribe()
    count = len(seen)
    s.skip()
    await asyncio.sleep(0.2)
    assert len(seen) == count


async def test_transport_controls_without_audio_output(make) -> None:
    s, events, _ = await make(paused=True)
    assert s.paused and not s.has_audio_output
    await until(lambda: s.current is not None)
    assert s.toggle_pause() is False
    assert events.of(NowPlaying)[-1].paused is False
    s.set_volume(1.7)
    assert s.volume == 1.0
    s.set_volume(0.25)
    assert s.volume == 0.25
    assert s.toggle_mute() is True and s.muted
    assert s.toggle_pause() is True


# ---------------------------------------------------------------------------------------------
# Failures


async def test_a_failing_job_is_reported_and_the_queue_moves_on(make, failing_engine) -> None:
    failing_engine.fail_seeds = frozenset({2})
    try:
        seeds = itertools.count(1)
        s, events, _ = await make(
            paused=True, factory=Factory(failing_engine), seed_source=lambda: next(seeds)
        )
        await until(lambda: settled(s))
    finally:
        failing_engine.fail_seeds = frozenset()
    failed = [j for j in s.history if j.state is S.FAILED]
    assert [j.request.seed for j in failed] == [2]
    assert failed[0].error == "synthesizer on fire"
    assert events.states(failed[0].id) == [S.QUEUED, S.GENERATING, S.FAILED]
    assert any(n.severity == "warning" and "on fire" in n.message for n in events.of(Notice))
    assert [s.current.request.seed, *(j.request.seed for j in s.upcoming)] == [1, 3, 4]
    assert not s.halted


async def test_a_failing_station_stops_after_repeated_failures(make, failing_engine) -> None:
    s, events, _ = await make(paused=True, factory=Factory(failing_engine))
    await until(lambda: settled(s))
    playing = s.current
    s.set_station(Station("boom boom", model="tiny", duration_s=1.0))
    await until(lambda: s.halted, what="halt after 3 failures")
    await asyncio.sleep(0.2)
    failed = [j for j in s.history if j.state is S.FAILED]
    assert len(failed) == 3 and s.upcoming == []
    assert events.of(Notice)[-1].severity == "error"
    assert "change the station" in events.of(Notice)[-1].message
    assert s.current.id == playing.id, "the music does not stop"

    s.set_station(s.station)  # the same station again: one more round of tries
    assert not s.halted
    await until(lambda: s.halted, what="halt again")
    assert len([j for j in s.history if j.state is S.FAILED]) == 6

    s.set_station(RAIN)
    assert not s.halted
    await until(
        lambda: s.current is not None and s.current.station == RAIN and settled(s), what="recovery"
    )


async def test_a_broken_model_directory_is_survived(make, tmp_path: Path) -> None:
    broken = flat_copy(tmp_path / "broken-model")
    for name in ("decoder_model.onnx", "decoder_with_past_model.onnx", "decoder_model_merged.onnx"):
        (broken / name).write_bytes(b"this is not an onnx model")
    calls: list[Station] = []

    def factory(station: Station) -> Any:
        calls.append(station)
        return engine_class("musicgen").load(broken, RuntimeOptions("cpu", 1))

    s, _, _ = await make(factory=factory)
    await until(lambda: s.halted, what="halt after 3 failures")
    failed = [j for j in s.history if j.state is S.FAILED]
    assert len(failed) == 3
    assert [j.state for j in s.history[3:]] == [S.CANCELLED], "the halt drops the queued job"
    assert all(j.error for j in failed)
    assert len(calls) == 3, "a failed load is not cached: each try loads again"
    assert s.current is None and s.upcoming == []
    assert cache_files(tmp_path / "cache") == []


async def test_a_request_the_engine_refuses_fails_cleanly(make) -> None:
    too_short = Station("tiny blip", model="tiny", duration_s=0.25)
    s, _, _ = await make(too_short, max_failures=1)
    await until(lambda: s.halted)
    job, dropped = s.history
    assert job.state is S.FAILED and "duration must be between" in job.error
    assert dropped.state is S.CANCELLED
    s.regenerate("next")  # the listener retries: generation resumes
    assert not s.halted and len(s.upcoming) == 2


# ---------------------------------------------------------------------------------------------
# The cache across restarts


async def test_restart_finds_the_cache_and_skips_generation(make, tmp_path: Path) -> None:
    s1, _, _ = await make(paused=True, lookahead=1, seed_source=itertools.count(100).__next__)
    await until(lambda: settled(s1))
    first = [s1.current, *s1.upcoming]
    await s1.aclose()

    cache = TrackCache(tmp_path / "cache")  # a new process, the same directory
    assert {j.request.key for j in first} <= set(cache.keys())
    s2, events, factory = await make(
        paused=True, lookahead=1, cache=cache, seed_source=itertools.count(100).__next__
    )
    await until(lambda: settled(s2))
    assert [s2.current.request, s2.upcoming[0].request] == [j.request for j in first]
    assert factory.calls == [], "cache hits neither load the engine nor generate"
    assert events.of(JobProgress) == []


async def test_a_corrupt_cached_track_is_dropped_and_regenerated(make, tmp_path: Path) -> None:
    s1, _, _ = await make(paused=True, lookahead=1, seed_source=itertools.count(200).__next__)
    await until(lambda: settled(s1))
    track = s1.current
    original = read_wav(track.path).samples
    await s1.aclose()
    data = track.path.read_bytes()
    track.path.write_bytes(data[: len(data) // 2])  # a crash mid-copy, a full disk...

    s2, events, factory = await make(
        paused=True, lookahead=1, seed_source=itertools.count(200).__next__
    )
    await until(lambda: settled(s2))
    assert s2.current.request == track.request
    assert len(factory.calls) == 1, "the damaged track was generated again"
    assert [e for e in events.of(JobProgress) if e.job_id == s2.current.id]
    assert np.array_equal(read_wav(track.path).samples, original), "same request, same audio"


async def test_without_an_output_device_the_queue_plays_on_unheard(make) -> None:
    from lofitui.audio.player import Player

    player = Player(device="no-such-device-xyz")
    s, _, _ = await make(player=player)
    assert not s.has_audio_output and player.running and player.output_error
    s.retry_audio()  # tries again at once; the device still does not exist
    await until(lambda: settled(s))
    playing = s.current
    await until(lambda: s.current.id != playing.id, timeout=3, what="1 s tracks go by")
    assert not s.has_audio_output


async def test_volume_mute_and_pause_are_held_in_one_place(make) -> None:
    from lofitui.audio.player import Player

    player = Player(device="no-such-device-xyz")  # plays on unheard, on its clock
    s, _, _ = await make(player=player)
    s.set_volume(0.3)
    assert s.toggle_mute() is True
    await until(lambda: settled(s))
    assert s.toggle_pause() is True
    assert (player.volume, player.muted, player.paused) == (0.3, True, True)
    assert (s.volume, s.muted, s.paused) == (0.3, True, True)
    playing = s.current
    await asyncio.sleep(1.5)  # 1 s tracks: the unheard player kept the pause
    assert s.current.id == playing.id
    assert s.toggle_pause() is False and not player.paused
    await until(lambda: s.current.id != playing.id, timeout=3, what="playback resumed")


# ---------------------------------------------------------------------------------------------
# Real playback into the null sink


async def test_a_lost_output_comes_back_and_the_queue_plays_on(make) -> None:
    """The sound server quits and comes back: the playing track plays on unheard and is heard
    again, no job is dropped or re-queued, and the app is told both ways."""
    import soundserver
    from test_audio_recovery import wait_gone

    from lofitui.audio.player import Player

    server = soundserver.start_private()
    with soundserver.serving(server):
        station = Station("warm tape hiss", model="tiny", duration_s=10.0)
        s, events, _ = await make(station, player=Player(crossfade_s=0.0))
        assert s.has_audio_output
        await until(lambda: s.current is not None, what="a track plays")
        playing = s.current.id
        server.stop(timeout_s=0)
        await until(lambda: not s.has_audio_output, timeout=5, what="the loss noticed")
        await asyncio.to_thread(wait_gone, server)
        await asyncio.to_thread(server.start)
        await until(lambda: s.has_audio_output, timeout=5, what="the output back")
        assert s.current is not None and s.current.id == playing, "the same track plays on"
    changes = [e.available for e in events.of(OutputChanged)]
    assert changes == [False, True]
    notices = [n.message for n in events.of(Notice)]
    assert any("playing on unheard" in n for n in notices) and "audio output is back" in notices
    assert events.states(playing)[-1] is S.PLAYING
    assert not [e for e in events.of(JobChanged) if e.job.state in (S.FAILED, S.CANCELLED)]


@pytest.mark.sound
async def test_ready_tracks_play_back_to_back_on_the_real_player(make) -> None:
    from lofitui.audio.player import Player

    s, events, _ = await make(player=Player(crossfade_s=0.0))
    assert s.has_audio_output
    await until(
        lambda: len([j for j in s.history if j.state is S.PLAYED]) >= 3,
        timeout=20,
        what="3 tracks played",
    )
    played = [j for j in s.history if j.state is S.PLAYED][:3]
    for job in played:
        assert events.states(job.id) == [S.QUEUED, S.GENERATING, S.READY, S.PLAYING, S.PLAYED]
    starts = {
        e.job.id: t
        for t, e in events.items
        if isinstance(e, JobChanged) and e.job.state is S.PLAYING
    }
    gaps = [starts[b.id] - starts[a.id] for a, b in itertools.pairwise(played)]
    assert gaps == [pytest.approx(1.0, abs=0.1)] * 2, "1 s tracks, back to back"
    assert max(e.peak for e in events.of(Level)) > 0.0, "sound reached the output"
    assert any(e.job is not None and e.position_s > 0.3 for e in events.of(NowPlaying))


@pytest.mark.sound
async def test_skip_and_takeover_on_the_real_player(make) -> None:
    from lofitui.audio.player import Player

    long_tracks = Station("calm lofi piano", model="tiny", duration_s=5.0)
    s, events, _ = await make(long_tracks, player=Player(crossfade_s=0.5))
    await until(lambda: settled(s), timeout=20)
    first, second = s.current, s.upcoming[0]
    s.skip()
    await until(lambda: s.current is not None and s.current.id == second.id, timeout=3)
    assert events.states(first.id)[-1] is S.PLAYED
    s.set_station(Station("rainy jazz guitar", model="tiny", duration_s=5.0))
    await until(lambda: s.current is not None and s.current.station == s.station, timeout=10)
    assert events.states(second.id)[-1] is S.PLAYED
