"""Track history: the played-tracks file, and the scheduler going back and replaying tracks with
the built-in synth engine, a real cache on disk and silent playback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_tui_live import wait_for

from lofitui.audio.types import Audio
from lofitui.audio.wav import read_wav
from lofitui.engines.base import TrackRequest
from lofitui.engines.synth import SynthEngine
from lofitui.errors import LofiError
from lofitui.library import TrackCache
from lofitui.library.played import BackStack, PlayHistory
from lofitui.scheduler import JobChanged, JobProgress, JobState, Scheduler, Station

S = JobState
TIMEOUT = 60.0  # generous: the suite shares a busy machine
SYNTH = Station("chill rhodes, rain", engine="synth", model="builtin", duration_s=5.0)
LONG_SYNTH = Station("slow piano", engine="synth", model="builtin", duration_s=60.0)


def request(seed: int, prompt: str = "rainy jazz") -> TrackRequest:
    return TrackRequest(prompt, 30.0, seed, engine="synth", model="builtin")


# ---------------------------------------------------------------------------------------------
# The history file


def test_history_keeps_each_track_once_newest_first_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "state" / "played.json"
    history = PlayHistory(path=path, limit=3)
    for seed in (1, 2, 3):
        history.record(request(seed), played_at=float(seed))
    history.mark_saved(request(2).key)
    history.set_liked(request(2).key, True)
    history.record(request(2), played_at=10.0)  # played again: newest, marks kept
    history.record(request(4), played_at=11.0)  # the oldest (seed 1) falls off
    assert [e.request.seed for e in history.entries] == [4, 2, 3]
    assert history.get(request(2).key).saved and history.get(request(2).key).liked is True
    assert not history.set_liked(request(1).key, True), "an unknown track is not marked"
    history.save()

    again = PlayHistory.load(path, limit=3)
    assert again.entries == history.entries
    assert [e.played_at for e in again.entries] == [11.0, 10.0, 3.0]
    assert [p.name for p in path.parent.iterdir()] == ["played.json"], "no temp file left"


def test_a_broken_history_file_starts_afresh(tmp_path: Path, caplog) -> None:
    path = tmp_path / "played.json"
    path.write_text("{not json")
    assert len(PlayHistory.load(path)) == 0
    good = request(7).to_dict()
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "tracks": [
                    {"request": {"prompt": "x"}, "played_at": 1.0},  # broken: skipped
                    {"request": good, "played_at": 2.0, "liked": "yes"},
                ],
            }
        )
    )
    (entry,) = PlayHistory.load(path).entries
    assert entry.request == request(7) and entry.liked is None
    history = PlayHistory.load(tmp_path / "missing" / "played.json")
    assert len(history) == 0


def test_without_a_history_file_the_cache_s_played_tracks_are_listed(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path / "cache")
    audio = Audio(np.zeros((4800, 2), np.float32), 48000)
    for seed in (1, 2, 3):
        cache.put(request(seed), audio, {})
    cache.touch_played(request(3).key)
    cache.touch_played(request(1).key)
    history = PlayHistory.load(tmp_path / "played.json", cache=cache)
    assert [e.request.seed for e in history.entries] == [1, 3], "played ones, newest first"


def test_the_back_stack_walks_back_and_keeps_its_place_at_the_start() -> None:
    history = PlayHistory()
    for seed in (1, 2):
        history.record(request(seed), played_at=float(seed))
    stack = BackStack(history)
    stack.push(request(3))  # now playing
    stack.push(request(3))  # played again from its start: still one entry
    assert stack.previous(request(3)) == request(2)
    assert stack.previous(request(2)) == request(1), "request(2) was not pushed: it waits"
    stack.push(request(1))  # it plays
    assert stack.previous(request(1)) is None
    assert stack.previous(None) == request(1), "nothing plays: the last track heard"


# ---------------------------------------------------------------------------------------------
# The scheduler


class Recorder:
    def __init__(self, scheduler: Scheduler) -> None:
        self.events: list[Any] = []
        scheduler.subscribe(self.events.append)

    def states(self, job_id: str) -> list[JobState]:
        seen = [
            e.job.state for e in self.events if isinstance(e, JobChanged) and e.job.id == job_id
        ]
        return [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]

    def progressed(self, job_id: str) -> bool:
        return any(isinstance(e, JobProgress) and e.job_id == job_id for e in self.events)


def playing(s: Scheduler, key: str) -> Callable[[], bool]:
    return lambda: s.current is not None and s.current.request.key == key


async def synth_scheduler(tmp_path: Path, **kwargs: Any) -> Scheduler:
    engine = SynthEngine()
    scheduler = Scheduler(
        lambda _station: engine,
        TrackCache(tmp_path / "cache"),
        None,
        lookahead=1,
        crossfade_s=0.0,
        played=PlayHistory(path=tmp_path / "played.json"),
        **kwargs,
    )
    scheduler.toggle_pause()  # paused: only the intents move the playhead on to another track
    scheduler.set_station(SYNTH)
    await scheduler.start()
    return scheduler


async def test_back_walks_the_history_from_the_cache_and_skip_returns(tmp_path: Path) -> None:
    s = await synth_scheduler(tmp_path)
    events = Recorder(s)
    try:
        heard = []
        for _ in range(3):  # A, B, C: each played, then skipped
            await wait_for(
                lambda: s.current is not None and s.upcoming, TIMEOUT
            )  # a track and the next
            await wait_for(lambda: s.upcoming[0].state is S.READY, TIMEOUT)  # the next track ready
            heard.append(s.current)
            if len(heard) < 3:
                s.skip()
                await wait_for(
                    lambda: s.current is not None and s.current.id != heard[-1].id, TIMEOUT
                )  # n
        a, b, c = (j.request.key for j in heard)

        back = s.back()
        assert back.request.key == b and back.state is S.READY, "from the cache at once"
        assert s.upcoming[1].id == heard[2].id, "what was playing waits at the front"
        await wait_for(playing(s, b), TIMEOUT)  # back to B
        s.back()
        await wait_for(playing(s, a), TIMEOUT)  # back to A
        with pytest.raises(LofiError, match="start of the history"):
            s.back()
        assert s.current.request.key == a, "A plays on"
        assert [j.request.key for j in s.upcoming[:2]] == [b, c], "forward: B, then C"
        assert events.states(s.current.id) == [S.READY, S.PLAYING], "no generation"
        assert events.states(s.upcoming[0].id) == [S.READY, S.PLAYING, S.READY]
        assert not events.progressed(s.current.id) and not events.progressed(s.upcoming[0].id)

        s.skip()
        await wait_for(playing(s, b), TIMEOUT)  # n returns to B
        s.skip()
        await wait_for(playing(s, c), TIMEOUT)  # and to C
        assert s.current.id == heard[2].id, "the same job: it waited, whole, in the cache"
        assert [e.key for e in s.played.entries[:3]] == [c, b, a]
    finally:
        await s.aclose()
    saved = PlayHistory.load(tmp_path / "played.json")
    assert [e.key for e in saved.entries[:3]] == [c, b, a], "written for the next session"


async def test_going_back_from_a_streaming_track_lets_its_generation_finish(tmp_path: Path):
    s = await synth_scheduler(tmp_path)
    events = Recorder(s)
    try:
        await wait_for(lambda: s.current is not None, TIMEOUT)  # A
        a = s.current.request.key
        s.set_station(LONG_SYNTH)
        await wait_for(
            lambda: s.current is not None and s.current.station == LONG_SYNTH, TIMEOUT
        )  # the long track takes over as soon as it can stream
        streaming = s.current
        assert streaming.generated_s < streaming.duration_s, "still being generated"
        s.back()
        await wait_for(playing(s, a), TIMEOUT)  # back to A
        assert s.upcoming[0].id == streaming.id, "it waits at the front"
        await wait_for(lambda: s.job(streaming.id).state is S.READY, TIMEOUT)  # it carried on
        assert s.cached(streaming.request.key)
        states = events.states(streaming.id)
        assert states[-3:] == [S.PLAYING, S.GENERATING, S.READY] and S.CANCELLED not in states
        s.skip()
        await wait_for(lambda: s.current is not None and s.current.id == streaming.id, TIMEOUT)
        assert events.states(streaming.id).count(S.GENERATING) == 2, "generated once"
    finally:
        await s.aclose()


async def test_an_evicted_track_is_generated_again_the_same(tmp_path: Path, lofi_dirs) -> None:
    s = await synth_scheduler(tmp_path)
    events = Recorder(s)
    try:
        await wait_for(
            lambda: s.upcoming and s.upcoming[0].state is S.READY, TIMEOUT
        )  # A playing, B ready
        first = s.current
        a = first.request.key
        original = read_wav(first.path).samples
        s.skip()
        await wait_for(lambda: s.current is not None and s.current.id != first.id, TIMEOUT)  # B
        b = s.current.request.key
        s.cache.remove(a)
        assert not s.cached(a)

        replay = s.play(a, save=True)
        assert replay.state is S.QUEUED
        await wait_for(playing(s, a), TIMEOUT)  # A generated again
        await wait_for(lambda: s.cached(a), TIMEOUT)  # A complete in the cache
        assert events.progressed(replay.id), "it was generated"
        assert np.array_equal(read_wav(first.path).samples, original), "same seed, same audio"
        await wait_for(lambda: s.played.get(a).saved, TIMEOUT)  # saved once complete
        (wav,) = lofi_dirs.music_dir().glob("*.wav")
        assert np.array_equal(read_wav(wav).samples, original)
        s.back()  # the track it replaced was finished, as a skip does: back returns to it
        await wait_for(playing(s, b), TIMEOUT)  # back to B
    finally:
        await s.aclose()
