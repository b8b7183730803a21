"""The track cache and saved tracks: real WAV files in temp dirs, real engine output."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from lofitui.audio.types import Audio
from lofitui.audio.wav import write_wav
from lofitui.engines.base import TrackRequest
from lofitui.library import CachedTrack, CorruptAudioError, TrackCache, save_track
from lofitui.library.cache import INDEX_NAME

RATE = 32000


def tone(seconds: float, freq: float = 440.0) -> Audio:
    t = np.arange(int(seconds * RATE), dtype=np.float32) / RATE
    return Audio((0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[:, None], RATE)


def request(
    seed: int = 1, prompt: str = "lofi piano, rain", duration_s: float = 0.5
) -> TrackRequest:
    return TrackRequest(prompt, duration_s, seed, model="tiny", params={"top_k": 50})


def wav_bytes(seconds: float) -> int:
    """Size of a float32 mono WAV of ``seconds`` (header included, approximately)."""
    return int(seconds * RATE) * 4 + 100


def temp_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_put_get_round_trip_with_sidecar_and_index(tmp_path: Path, tiny_engine) -> None:
    cache = TrackCache(tmp_path / "cache")
    req = TrackRequest("lofi piano", 1.0, 7, model="tiny")
    audio = tiny_engine.generate(req)
    track = cache.put(req, audio, {"generation_s": 0.1, "note": "hi"})

    assert track.key == req.key and track.path == tmp_path / "cache" / f"{req.key}.wav"
    assert track.duration_s == pytest.approx(1.0)
    sidecar = json.loads(track.sidecar.read_text())
    assert sidecar["key"] == req.key
    assert TrackRequest.from_dict(sidecar["request"]) == req
    assert sidecar["metadata"] == {"generation_s": 0.1, "note": "hi"}
    index = json.loads((tmp_path / "cache" / INDEX_NAME).read_text())
    assert set(index["tracks"]) == {req.key}
    assert temp_files(tmp_path / "cache") == []

    got = cache.get(req)
    assert got == track
    assert np.array_equal(cache.load_audio(got).samples, audio.samples)
    assert cache.get(request(seed=99)) is None


def test_default_root_is_the_platform_cache_dir(lofi_dirs) -> None:
    cache = TrackCache()
    assert cache.root == lofi_dirs.cache_dir()
    assert str(cache.root).startswith(os.environ["XDG_CACHE_HOME"])


def test_restart_finds_tracks_and_their_state(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = TrackCache(root)
    a, b = request(1), request(2)
    cache.put(a, tone(0.5), {})
    cache.put(b, tone(0.5, 660), {})
    cache.touch_played(a.key)
    cache.mark_saved(b.key)

    again = TrackCache(root)
    assert set(again.keys()) == {a.key, b.key}
    track = again.get(a)
    assert track is not None and track.request == a
    assert again.is_saved(b.key) and not again.is_saved(a.key)
    assert again.total_bytes == cache.total_bytes


def test_lost_or_corrupt_index_is_rebuilt_from_sidecars(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = TrackCache(root)
    a, b = request(1), request(2)
    cache.put(a, tone(0.5), {})
    cache.put(b, tone(0.5), {})
    cache.mark_saved(b.key)

    (root / INDEX_NAME).write_text("{not json")
    rebuilt = TrackCache(root)
    assert set(rebuilt.keys()) == {a.key, b.key}
    assert rebuilt.is_saved(b.key)  # the sidecar remembers it
    (root / INDEX_NAME).unlink()
    assert set(TrackCache(root).keys()) == {a.key, b.key}
    assert json.loads((root / INDEX_NAME).read_text())["tracks"].keys() == {a.key, b.key}


def test_crash_leftovers_are_cleaned_up_on_open(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = TrackCache(root)
    kept = request(1)
    cache.put(kept, tone(0.5), {})
    orphan = request(2)  # a crash between the WAV and its sidecar
    write_wav(root / f"{orphan.key}.wav", tone(0.5))
    stale = root / f".{orphan.key}.wav.abc.tmp"
    stale.write_bytes(b"RIFF half a file")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = root / ".index.json.xyz.part"  # maybe another process writing right now
    fresh.write_bytes(b"{")

    reopened = TrackCache(root)
    assert reopened.keys() == [kept.key]
    assert not (root / f"{orphan.key}.wav").exists()
    assert not stale.exists()
    assert fresh.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "nan"])
def test_damaged_wav_is_detected_and_dropped(tmp_path: Path, damage: str) -> None:
    cache = TrackCache(tmp_path / "cache")
    req = request(3)
    track = cache.put(req, tone(0.5), {})
    data = track.path.read_bytes()
    if damage == "truncate":
        track.path.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "garbage":
        track.path.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        track.path.write_bytes(b"")
    else:
        samples = tone(0.5).samples.copy()
        samples[100] = np.nan
        write_wav(track.path, Audio(samples, RATE))

    assert cache.get(req) is None
    assert req.key not in cache
    assert not track.path.exists() and not track.sidecar.exists()
    assert req.key not in TrackCache(tmp_path / "cache")  # the index forgot it too


def test_load_audio_raises_and_drops_a_damaged_track(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path / "cache")
    req = request(4)
    track = cache.put(req, tone(0.5), {})
    with track.path.open("r+b") as fh:
        fh.truncate(track.path.stat().st_size - 1000)
    with pytest.raises(CorruptAudioError):
        cache.load_audio(track)
    assert req.key not in cache and not track.sidecar.exists()


def test_eviction_drops_least_recently_played_first(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path / "cache", cap_bytes=3 * wav_bytes(0.5))
    reqs = [request(seed) for seed in range(1, 4)]
    for req in reqs:
        cache.put(req, tone(0.5), {})
    assert len(cache) == 3
    cache.touch_played(reqs[0].key)  # the oldest becomes the most recently used

    cache.put(request(4), tone(0.5), {})
    assert reqs[1].key not in cache  # least recently used
    assert {reqs[0].key, reqs[2].key, request(4).key} <= set(cache.keys())
    assert cache.total_bytes <= cache.cap_bytes
    assert not (tmp_path / "cache" / f"{reqs[1].key}.wav").exists()
    assert not (tmp_path / "cache" / f"{reqs[1].key}.json").exists()


def test_eviction_never_drops_saved_or_pinned_tracks(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path / "cache", cap_bytes=10 * wav_bytes(0.5))
    saved, pinned, plain = request(1), request(2), request(3)
    for req in (saved, pinned, plain):
        cache.put(req, tone(0.5), {})
    cache.mark_saved(saved.key)
    cache.pin(pinned.key)

    cache.cap_bytes = 0
    evicted = cache.evict()
    assert set(cache.keys()) == {saved.key, pinned.key}
    assert plain.key not in cache and set(evicted) <= {plain.key}
    cache.unpin(pinned.key)
    assert cache.evict() == [pinned.key]
    assert cache.keys() == [saved.key]  # over the cap, but saved


def test_a_track_bigger_than_the_cap_is_still_stored(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path / "cache", cap_bytes=1000)
    req = request(1)
    cache.put(req, tone(0.5), {})
    assert cache.get(req) is not None


def test_save_track_uses_a_readable_safe_name_and_never_duplicates(lofi_dirs) -> None:
    cache = TrackCache()
    req = request(42, prompt="Lo-fi: rainy/night café ☂ beats")
    track = cache.put(req, tone(0.5), {"generation_s": 1.5})

    path = save_track(track)
    assert path.parent == lofi_dirs.music_dir()
    assert path.name == "lo-fi-rainy-night-cafe-beats-42.wav"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["key"] == req.key and meta["request"]["prompt"] == req.prompt
    assert meta["metadata"] == {"generation_s": 1.5}
    assert path.read_bytes() == track.path.read_bytes()

    assert save_track(track) == path  # saving twice returns the existing copy
    names = {p.name for p in path.parent.iterdir()}
    assert names == {path.name, path.with_suffix(".json").name}


def test_save_track_never_overwrites_another_track(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path / "cache")
    dest = tmp_path / "music"
    first = cache.put(request(5, duration_s=0.5), tone(0.5), {})
    second = cache.put(request(5, duration_s=0.7), tone(0.7, 660), {})  # same prompt and seed
    dest.mkdir()
    foreign = dest / "lofi-piano-rain-5-3.wav"  # someone else's file in the way
    foreign.write_bytes(b"not ours")

    a = save_track(first, dest)
    b = save_track(second, dest)
    assert a.name == "lofi-piano-rain-5.wav"
    assert b.name == "lofi-piano-rain-5-2.wav"
    assert a.read_bytes() == first.path.read_bytes()
    assert b.read_bytes() == second.path.read_bytes()
    assert save_track(second, dest) == b and save_track(first, dest) == a
    assert foreign.read_bytes() == b"not ours"
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


def test_save_refuses_a_damaged_cached_file(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path / "cache")
    track = cache.put(request(6), tone(0.5), {})
    track.path.write_bytes(track.path.read_bytes()[:500])
    with pytest.raises(CorruptAudioError):
        save_track(track, tmp_path / "music")
    assert list((tmp_path / "music").iterdir()) == []


def test_cache_save_marks_the_track_saved(tmp_path: Path) -> None:
    cache = TrackCache(tmp_path / "cache")
    track = cache.put(request(8), tone(0.5), {})
    assert isinstance(track, CachedTrack)
    path = cache.save(track, tmp_path / "music")
    assert path.exists() and cache.is_saved(track.key)
