"""Likes and dislikes: the store on disk, and the scheduler steering with it on the tiny MusicGen
model (silent playback, a real cache): pinned likes, "more like this", replays, disliked seeds and
flow after a dislike."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from test_scheduler import Factory, make, ready, until  # noqa: F401 (the make fixture)

from lofitui.audio.types import Audio
from lofitui.engines.base import TrackRequest
from lofitui.engines.musicgen_prime import PRIME_PARAM
from lofitui.errors import LofiError
from lofitui.library import TrackCache
from lofitui.library.likes import Likes
from lofitui.scheduler import JobChanged, JobState, Scheduler, Station

S = JobState
PROMPT = "calm lofi piano"
TWO = Station(PROMPT, model="tiny", duration_s=2.0)


def request(seed: int, prompt: str = PROMPT, **params) -> TrackRequest:
    return TrackRequest(prompt, 30.0, seed, "musicgen", "tiny", params)


# ---------------------------------------------------------------------------------------------
# The store


def test_likes_and_dislikes_are_kept_on_disk(tmp_path: Path) -> None:
    where = tmp_path / "likes"
    likes = Likes(where)
    codes = np.arange(24, dtype=np.int64).reshape(4, 6)
    first = likes.like(request(7, top_k=250, prime_codes="AAAA"), {"top_k": 250}, codes)
    second = likes.like(request(8, prompt="  calm   lofi piano"), {})  # the same station
    likes.dislike(request(9))

    again = Likes(where)  # a restart
    assert again.problem is None
    assert [like.key for like in again.liked(PROMPT)] == [second.key, first.key]  # newest first
    kept = again.get(first.key)
    assert kept is not None and kept.request == first.request and kept.seed == 7
    assert dict(kept.params) == {"top_k": 250}, "the station's settings, not the flow prime"
    np.testing.assert_array_equal(again.codes(first.key), codes)
    assert again.codes(second.key) is None and not again.has_codes(second.key)
    assert again.disliked_seeds(PROMPT) == {9}
    assert again.is_disliked(TrackRequest(PROMPT, 60.0, 9, "synth", "builtin"))  # any settings
    assert not again.is_disliked(request(9, prompt="rainy jazz"))  # another station
    assert again.liked("rainy jazz") == []

    assert again.dislike(first.request) is True  # a disliked like is no longer liked
    assert again.unlike(second.key) is True and again.unlike(second.key) is False
    final = Likes(where)
    assert final.liked(PROMPT) == [] and final.disliked_seeds(PROMPT) == {7, 9}
    assert sorted(p.name for p in where.rglob("*")) == ["codes", "likes.json"], "no leftovers"


def test_a_damaged_likes_file_is_set_aside_and_a_failed_save_is_one_line(tmp_path: Path) -> None:
    where = tmp_path / "likes"
    where.mkdir()
    (where / "likes.json").write_text('{"version": 1, "stations": {"x": {"liked": [{"key": 1}]}}}')
    likes = Likes(where)
    assert likes.problem is not None and "set aside as likes.json.damaged-" in likes.problem
    assert likes.liked("x") == []
    likes.like(request(1), {})
    assert Likes(where).is_liked(request(1).key)
    assert [p.name.startswith("likes.json.damaged-") for p in where.glob("likes.json.*")] == [True]

    gone = tmp_path / "gone"
    store = Likes(gone)
    gone.write_text("a file where the likes directory should be")
    with pytest.raises(LofiError) as error:
        store.like(request(2), {})
    assert str(error.value).startswith(f"cannot write to {gone}")
    assert "\n" not in str(error.value)
    assert store.is_liked(request(2).key), "it holds for this run"


# ---------------------------------------------------------------------------------------------
# The scheduler


def test_liked_tracks_are_pinned_after_a_restart_and_survive_eviction(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path / "cache")
    audio = Audio(np.zeros((4800, 2), np.float32), 48_000)
    tracks = [cache.put(request(seed), audio, {}) for seed in (1, 2, 3)]
    Likes(tmp_path / "likes").like(tracks[0].request, {})  # liked in an earlier session

    scheduler = Scheduler(Factory(None), cache, None, likes=Likes(tmp_path / "likes"))
    cache.cap_bytes = 0
    assert sorted(cache.evict()) == sorted(t.key for t in tracks[1:])
    assert cache.keys() == [tracks[0].key], "the liked track is never evicted"
    scheduler.unlike(tracks[0].key)
    assert cache.evict() == [tracks[0].key]
    assert not Likes(tmp_path / "likes").is_liked(tracks[0].key)


async def test_a_like_steers_the_station_and_plays_again_after_a_restart(make, tmp_path):  # noqa: F811
    where = tmp_path / "likes"
    s, events, _ = await make(TWO, likes=Likes(where), lookahead=1)
    await until(lambda: s.current and s.current.path and ready(s), what="one complete, one ready")
    liked, ahead = s.current, ready(s)[0]
    key = liked.request.key
    assert s.like_current() is True
    assert s.like_current() is False and not Likes(where).is_liked(key)  # a toggle
    assert s.like_current() is True
    assert s.current.liked and any(e.job.liked for e in events.of(JobChanged))
    store = Likes(where)
    assert store.is_liked(key) and store.has_codes(key)
    assert dict(store.get(key).params) == dict(TWO.params)
    # more like this: the next track generated continues from the liked one
    await until(lambda: any(j.primed_by == liked.id for j in s.jobs), what="a continuation")
    follower = next(j for j in s.jobs if j.primed_by == liked.id)
    assert follower.id != ahead.id, "the track generated before the like is kept as it was"
    await until(lambda: s.job(follower.id).path, what="the continuation generated")
    assert PRIME_PARAM in s.job(follower.id).request.params
    await s.aclose()

    # a restart: the liked track plays again from the cache, and the next one continues it
    wav = tmp_path / "cache" / f"{key}.wav"
    written = wav.stat().st_mtime_ns
    s2, _, _ = await make(TWO, likes=Likes(where), lookahead=1, flow=True)
    await until(lambda: s2.current is not None, what="the station plays")
    s2.play_liked(key)
    await until(lambda: s2.current and s2.current.request.key == key, what="the liked track again")
    replay = s2.current
    assert replay.liked and wav.stat().st_mtime_ns == written, "a cache hit"
    await until(lambda: any(j.primed_by == replay.id for j in s2.jobs), what="its continuation")
    with pytest.raises(LofiError, match="not liked"):
        s2.play_liked("0" * 64)


async def test_a_disliked_seed_is_skipped_and_never_generated_again(make, tmp_path) -> None:  # noqa: F811
    where = tmp_path / "likes"
    seeds = itertools.chain([11, 11], itertools.cycle([11, 22, 33]))
    s, events, _ = await make(
        Station(PROMPT, model="tiny", duration_s=1.0),
        likes=Likes(where),
        seed_source=lambda: next(seeds),
        lookahead=1,
    )
    await until(lambda: s.current and ready(s), what="one playing, one ready")
    disliked, twin = s.current, ready(s)[0]
    assert disliked.request.seed == twin.request.seed == 11  # the station would play it again
    seen = {e.job.id for e in events.of(JobChanged)}
    s.dislike_current()
    assert s.job(twin.id).state is S.CANCELLED
    await until(lambda: s.current and s.current.id != disliked.id, what="the skip")
    await until(lambda: len({e.job.id for e in events.of(JobChanged)} - seen) >= 2, what="more")
    later = [e.job for e in events.of(JobChanged) if e.job.id not in seen]
    assert {j.request.seed for j in later} <= {22, 33}, "the disliked seed was generated again"
    assert Likes(where).disliked_seeds(PROMPT) == {11}
    await s.aclose()
    # after a restart too
    later_seeds = itertools.chain([11], itertools.count(44))
    again, _, _ = await make(TWO, likes=Likes(where), seed_source=lambda: next(later_seeds))
    assert [j.request.seed for j in again.upcoming] == [44, 45]


async def test_flow_after_a_dislike_continues_the_last_kept_track(make, tiny_engine) -> None:  # noqa: F811
    station = Station("flowing ambient", model="tiny", duration_s=2.0)
    s, _, _ = await make(station, flow=True, lookahead=1)
    await until(lambda: s.current and s.current.primed_by, what="a continuation playing")
    disliked = s.current
    kept = s.job(disliked.primed_by)
    assert kept is not None and kept.state is S.PLAYED
    await until(lambda: any(j.primed_by == disliked.id for j in s.upcoming), what="the next")
    continuation = next(j for j in s.upcoming if j.primed_by == disliked.id)
    s.dislike_current()
    assert s.job(continuation.id).state is S.CANCELLED
    await until(lambda: any(j.primed_by for j in s.upcoming), what="a new primed track")
    fresh = next(j for j in s.upcoming if j.primed_by)
    assert fresh.primed_by == kept.id, "it continues the track before the disliked one"
    await until(lambda: s.job(fresh.id).path, what="it is generated")
    fresh = s.job(fresh.id)
    await s.aclose()  # the engine is free again
    stream = tiny_engine.stream(kept.request)  # the kept track's codes, made again
    for _ in stream:
        pass
    expected = tiny_engine.continuation_params(kept.request, stream.codes)
    assert fresh.request.params[PRIME_PARAM] == expected[PRIME_PARAM]
