"""Stand-ins for the TUI tests: a scheduler and start-up backend with no engine or audio.

The app only renders scheduler events and sends intents, so snapshot and key-binding tests feed
it deterministic events through these; tests/test_tui_live.py runs the real scheduler.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

from lofitui import events as ev
from lofitui.audio.types import Audio
from lofitui.engines.base import Progress
from lofitui.library.likes import Likes
from lofitui.library.played import PlayHistory

TUI_PROMPT = "lofi hip hop beat, mellow rhodes piano, vinyl crackle, rainy night"
# a 5000-character prompt: long prompts must stay in their few lines
TUI_LONG_PROMPT = (
    (
        "slow lofi hip hop, dusty rhodes chords, soft vinyl crackle, rain on the window, "
        "a cat asleep on the piano, tape hiss, late night city lights, "
    )
    * 36
)[:5000]


class FakeScheduler:
    """The scheduler's interface with no engine or audio: records intents, emits given events."""

    def __init__(self, *, has_audio_output: bool = True) -> None:
        self.calls: list[tuple] = []
        self.subscribers: list = []
        self.jobs: list[ev.JobInfo] = []
        self.station: ev.Station | None = None
        self.handing_over_to: ev.Station | None = None
        self.volume = 1.0
        self.muted = False
        self.paused = False
        self.started = False
        self.closed = False
        self.has_audio_output = has_audio_output
        self.save_dir = Path("/tmp/lofi-saved")
        self.played = PlayHistory()
        self.cached_keys: set[str] = set()  # played tracks whose audio the "cache" holds
        self.output: Audio | None = None  # what heard() returns: set it to show a spectrum
        self.likes = Likes()  # in memory: tests fill it

    async def start(self) -> None:
        self.started = True

    async def aclose(self) -> None:
        self.calls.append(("aclose",))
        self.closed = True

    def subscribe(self, callback):
        self.subscribers.append(callback)
        return lambda: self.subscribers.remove(callback)

    def emit(self, *events) -> None:
        for event in events:
            for callback in list(self.subscribers):
                callback(event)

    def set_station(self, station) -> None:
        self.calls.append(("set_station", station.prompt))
        self.station = station
        self.emit(ev.StationChanged(station))

    def hand_over(self, station) -> None:
        self.calls.append(("hand_over", station.engine, station.prompt))
        self.handing_over_to = station

    def skip(self) -> None:
        self.calls.append(("skip",))

    def regenerate(self, which: str = "current") -> None:
        self.calls.append(("regenerate", which))

    def cancel(self, job_id: str) -> None:
        self.calls.append(("cancel", job_id))

    def clear(self) -> None:
        self.calls.append(("clear",))

    def save_current(self):
        self.calls.append(("save_current",))
        path = self.save_dir / "lofi-hip-hop-beat-4821.wav"
        self.emit(ev.TrackSaved("job-1", path))
        return path

    def toggle_pause(self) -> bool:
        self.calls.append(("toggle_pause",))
        self.paused = not self.paused
        return self.paused

    def set_volume(self, volume: float) -> None:
        self.calls.append(("set_volume", volume))
        self.volume = volume

    def toggle_mute(self) -> bool:
        self.calls.append(("toggle_mute",))
        self.muted = not self.muted
        return self.muted

    def retry_audio(self) -> None:
        self.calls.append(("retry_audio",))

    def back(self):
        self.calls.append(("back",))

    def play(self, key: str, *, save: bool = False):
        self.calls.append(("play", key, save))

    def cached(self, key: str) -> bool:
        return key in self.cached_keys

    def save_played(self, key: str):
        self.calls.append(("save_played", key))
        self.played.mark_saved(key)
        return self.save_dir / f"{key[:8]}.wav"

    def heard(self, frames: int) -> Audio | None:
        output = self.output
        return None if output is None else Audio(output.samples[-frames:], output.sample_rate)

    def like_current(self) -> bool:
        self.calls.append(("like_current",))
        return True

    def unlike(self, key: str) -> None:
        self.calls.append(("unlike", key))
        self.likes.unlike(key)

    def dislike_current(self) -> None:
        self.calls.append(("dislike_current",))

    def play_liked(self, key: str) -> None:
        self.calls.append(("play_liked", key))

    @property
    def current(self):
        return next((j for j in self.jobs if j.state == ev.JobState.PLAYING), None)


def tui_job(
    n: int,
    state: str,
    *,
    seed: int | None = None,
    prompt: str = TUI_PROMPT,
    progress: Progress | None = None,
    error: str | None = None,
    generated_s: float | None = None,
) -> ev.JobInfo:
    """A deterministic JobInfo (job-n, created n); ``generated_s`` defaults to the whole track
    once it is ready, and to nothing before."""
    station = ev.Station(prompt=prompt, model="musicgen-small", duration_s=30.0)
    if generated_s is None:
        complete = state in ("ready", "playing", "played")
        generated_s = station.duration_s if complete else 0.0
    return ev.JobInfo(
        id=f"job-{n}",
        station=station,
        request=station.request(seed if seed is not None else 4821 + n * 1111),
        state=ev.JobState(state),
        progress=progress,
        error=error,
        path=None,
        created=float(n),
        generated_s=generated_s,
    )


def tui_playing_events(
    position: float = 12.0,
    paused: bool = False,
    *,
    generated: float | None = None,
    buffering: bool = False,
    prompt: str = TUI_PROMPT,
) -> list:
    """A steady scene: one playing, one generating at 42 %, one queued, levels for the meter.

    ``generated``: the playing track is still being generated (streaming), this far;
    ``buffering``: playback waits at that frontier; ``prompt``: the station's, for every job.
    """
    playing = tui_job(1, "playing", generated_s=generated, prompt=prompt)
    events: list = [ev.JobChanged(playing)]
    if generated is not None:
        events.append(ev.JobProgress("job-1", Progress(900, 1500, "token", eta_s=6.1, rate=98.0)))
    events += [
        ev.JobChanged(tui_job(2, "generating", prompt=prompt)),
        ev.JobProgress("job-2", Progress(630, 1500, "token", eta_s=14.2, rate=61.0)),
        ev.JobChanged(tui_job(3, "queued", prompt=prompt)),
        ev.NowPlaying(playing.id, position, 30.0, paused, playing, buffering),
    ]
    for i in range(120):
        rms = 0.08 + 0.06 * math.sin(i / 5.0) + 0.03 * math.sin(i / 1.7)
        events.append(ev.Level(max(0.001, rms), min(1.0, rms * 2.5)))
    return events


class FakeBackend:
    """Start-up without a model: a FakeScheduler, or a missing model and a fake download."""

    def __init__(
        self,
        scheduler: FakeScheduler | None = None,
        *,
        missing=None,
        download=None,
        audio_problem: str | None = None,
        fail: Exception | None = None,
    ):
        self.scheduler = scheduler or FakeScheduler(has_audio_output=audio_problem is None)
        self.missing = missing
        self._download = download
        self.audio_problem = audio_problem
        self.fail = fail
        self.built = threading.Event()
        self.downloaded: list = []

    def find_model(self):
        if self.fail is not None:
            raise self.fail
        return self.missing if self.missing is not None else Path("/fake/model")

    def download(self, entry, progress, cancel):
        self.downloaded.append(entry.name)
        return self._download(entry, progress, cancel)

    def station_for(self, model_dir):
        if model_dir is None:  # nothing installed: the built-in engine
            return ev.Station(prompt=TUI_PROMPT, engine="synth", model="builtin", duration_s=30.0)
        return ev.Station(prompt=TUI_PROMPT, model="musicgen-small", duration_s=30.0)

    def build(self, model_dir):
        from lofitui.tui.backend import Built

        self.built_for = model_dir
        self.built.set()
        return Built(self.scheduler, self.station_for(model_dir), self.audio_problem)
