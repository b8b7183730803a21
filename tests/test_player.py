"""Real playback: the Player through PortAudio into the test PulseAudio null sink.

Every test records the sink's monitor (the default input) while the player plays known sine
tones, then checks the captured audio itself: length, order, pitch (FFT), gaps (1 ms windows of
silence), sample-to-sample jumps (clicks) and crossfade power. Audio is real time: keep tracks
short. The player keeps its stream running after the queue empties, which pads the end with
silence (a stopping stream would cut its last latency period).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lofitui.audio.events import Level, NowPlaying, PlayerEvent, TrackFinished, TrackStarted
from lofitui.audio.player import Player
from lofitui.audio.types import Audio

RATE = 48000  # the null sink's rate; the player asks the device for it explicitly
AMP = 0.5
SILENCE = 1e-4  # |x| below this in a whole 1 ms window counts as a gap
HERE = Path(__file__).parent
REPO = HERE.parent

# ---------------------------------------------------------------------------------------------
# Signals and analysis


def tone(freq: float, seconds: float, rate: int, channels: int = 1, amp: float = AMP) -> Audio:
    """A sine starting at phase 0 (so its first audible sample marks the track start)."""
    t = np.arange(round(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return Audio(np.repeat(x[:, None], channels, axis=1), rate)


def active_span(x: np.ndarray, threshold: float = 1e-3) -> tuple[int, int]:
    """First and one-past-last frame whose magnitude exceeds ``threshold``."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    assert loud.size, "nothing was captured from the monitor: the audio never arrived"
    return int(loud[0]), int(loud[-1]) + 1


def silent_windows(x: np.ndarray, window: int = RATE // 1000) -> np.ndarray:
    """Start indices of the 1 ms windows of ``x`` that are silent (a gap or dropout)."""
    n = x.shape[0] // window * window
    peaks = np.abs(x[:n]).reshape(-1, window).max(axis=1)
    return np.flatnonzero(peaks < SILENCE) * window


def peak_frequency(x: np.ndarray, rate: int = RATE) -> float:
    """The dominant frequency: Hann window, 16x zero padding, parabolic peak interpolation."""
    n = x.shape[0]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(n), n * 16))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-20)
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + offset) * rate / (n * 16)


def amplitude_at(x: np.ndarray, freq: float, rate: int = RATE) -> float:
    """Amplitude of the ``freq`` component (exact when the block holds whole periods)."""
    t = np.arange(x.shape[0]) / rate
    return float(2 * np.abs(np.sum(x * np.exp(-2j * np.pi * freq * t))) / x.shape[0])


def max_jump(x: np.ndarray) -> float:
    return float(np.max(np.abs(np.diff(x))))


def sine_max_jump(freq: float, amp: float = AMP, rate: int = RATE) -> float:
    """The largest sample-to-sample step of a clean sine: anything well above it is a click."""
    return amp * 2 * np.sin(np.pi * freq / rate)


# ---------------------------------------------------------------------------------------------
# Recording the monitor and driving the player


def _sounddevice() -> Any:
    import sounddevice as sd

    if not any(d["max_input_channels"] > 0 for d in sd.query_devices()):
        sd._terminate()  # PortAudio was initialised before the sound server came up: rescan
        sd._initialize()
    return sd


class Recorder:
    """Records the default input (the null sink's monitor) at 48 kHz stereo."""

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        sd = _sounddevice()
        self._stream = sd.InputStream(
            samplerate=RATE, channels=2, dtype="float32", latency=0.1, callback=self._callback
        )

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        self._blocks.append(indata.copy())

    def __enter__(self) -> Recorder:
        self._stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.stop()
        self._stream.close()

    def audio(self) -> np.ndarray:
        """Everything captured so far, (frames, 2)."""
        return np.concatenate(self._blocks) if self._blocks else np.zeros((0, 2), np.float32)


class Events:
    """Collects player events (from the player's thread) and waits for them."""

    def __init__(self, player: Player) -> None:
        self.items: list[tuple[float, PlayerEvent]] = []
        self._lock = threading.Lock()
        player.subscribe(self._add)

    def _add(self, event: PlayerEvent) -> None:
        with self._lock:
            self.items.append((time.monotonic(), event))

    def of(self, kind: type) -> list[Any]:
        with self._lock:
            return [e for _, e in self.items if isinstance(e, kind)]

    def wait(self, predicate: Callable[[PlayerEvent], bool], timeout: float = 10.0) -> float:
        """Wait for an event matching ``predicate``; return when it was delivered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for at, event in self.items:
                    if predicate(event):
                        return at
            time.sleep(0.005)
        raise AssertionError(f"no matching event within {timeout} s; got {self.of(object)}")

    def started(self, track_id: str, timeout: float = 10.0) -> float:
        return self.wait(lambda e: isinstance(e, TrackStarted) and e.track_id == track_id, timeout)

    def finished(self, track_id: str, timeout: float = 10.0) -> float:
        return self.wait(lambda e: isinstance(e, TrackFinished) and e.track_id == track_id, timeout)


@pytest.fixture
def play() -> Iterator[Callable[..., tuple[Player, Events]]]:
    """``play(**player_kwargs)`` -> a started (player, events); closed after the test."""
    players: list[Player] = []

    def make(**kwargs: Any) -> tuple[Player, Events]:
        player = Player(**kwargs)
        events = Events(player)
        player.start()
        players.append(player)
        return player, events

    yield make
    for player in players:
        player.close()


TAIL_S = 0.3  # keep recording this long after the last track finished (output latency + slack)


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.sound
def test_tracks_arrive_complete_in_order_at_pitch_and_gapless(play) -> None:
    tracks = [
        ("a", tone(440, 0.8, 32000, channels=1)),  # resampled 32 k -> 48 k, mono -> stereo
        ("b", tone(660, 0.8, 48000, channels=2)),  # as is
        ("c", tone(550, 0.8, 44100, channels=1)),  # resampled 44.1 k -> 48 k
    ]
    # channel order survives: the stereo track's right channel is at half amplitude
    b_left = tracks[1][1].samples[:, 0]
    tracks[1] = ("b", Audio(np.stack([b_left, b_left * 0.5], axis=1), 48000))
    with Recorder() as rec:
        player, events = play(crossfade_s=0.0)
        assert player.samplerate == RATE
        for track_id, audio in tracks:
            player.enqueue(track_id, audio)
        assert player.queued_ids == ("a", "b", "c")
        events.started("b")
        assert player.queued_ids == ("c",)
        now = player.now_playing
        assert now is not None and now.track_id == "b" and now.duration_s == pytest.approx(0.8)
        events.finished("c")
        time.sleep(TAIL_S)
    assert player.now_playing is None and player.queued_ids == ()
    assert [e.track_id for e in events.of(TrackStarted)] == ["a", "b", "c"]
    assert [(e.track_id, e.skipped) for e in events.of(TrackFinished)] == [
        ("a", False),
        ("b", False),
        ("c", False),
    ]
    assert events.of(NowPlaying) and events.of(Level)

    audio = rec.audio()
    left = audio[:, 0]
    start, end = active_span(left)
    duration = (end - start) / RATE
    assert duration == pytest.approx(2.4, abs=0.005), "audio arrived incomplete or stretched"
    assert silent_windows(left[start:end]).size == 0, "gap between gapless tracks"

    seg = RATE * 8 // 10
    for i, (freq, right_gain) in enumerate([(440, 1.0), (660, 0.5), (550, 1.0)]):
        body = audio[start + i * seg + 2400 : start + (i + 1) * seg - 2400]
        measured = peak_frequency(body[:, 0])
        assert abs(measured - freq) < 0.5, f"track {i}: {measured:.2f} Hz, wanted {freq}"
        ratio = amplitude_at(body[:, 1], freq) / amplitude_at(body[:, 0], freq)
        assert ratio == pytest.approx(right_gain, abs=0.01)
        assert amplitude_at(body[:, 0], freq) == pytest.approx(AMP, rel=0.01)


@pytest.mark.sound
def test_a_growing_track_buffers_without_a_click_or_a_lost_sample(play) -> None:
    whole = tone(440, 3.0, 32000)  # streamed like MusicGen: 32 kHz mono, resampled as it comes
    first, rest = 32000, 3 * 32000
    with Recorder() as rec:
        player, events = play(crossfade_s=0.0)
        player.enqueue("g", Audio(whole.samples[:first], 32000), complete=False)
        events.started("g")
        events.wait(lambda e: isinstance(e, NowPlaying) and e.buffering, timeout=5)
        time.sleep(0.5)  # the stall: nothing arrives for a while
        player.append("g", Audio(whole.samples[first:rest], 32000))
        player.finish("g")
        events.finished("g", timeout=10)
        time.sleep(TAIL_S)
    assert player.starved_blocks == 0, "the stall is buffering, not a dropout"
    now = [e for e in events.of(NowPlaying) if e.track_id == "g"]
    stuck = [e.position_s for e in now if e.buffering]
    assert stuck and max(stuck) - min(stuck) < 0.05, "the position holds while it buffers"
    assert not now[-1].buffering

    left = rec.audio()[:, 0]
    start, end = active_span(left)
    heard = left[start:end]
    # The stall is one run of exact zeros (the frontier's frame faded to 0, then the output's
    # silence); without it, the tone must run on without a repeated or dropped sample.
    zero = np.flatnonzero(heard == 0.0)
    runs = np.split(zero, np.flatnonzero(np.diff(zero) > 1) + 1)
    stall = max(runs, key=len)
    assert len(stall) > RATE // 10, "it buffered"
    around = heard[stall[0] - RATE // 10 : stall[-1] + RATE // 10]
    assert max_jump(around) <= sine_max_jump(440) * 1.05, "a click at the stall"
    joined = np.concatenate([heard[: stall[0] + 1], heard[stall[-1] + 1 :]])
    assert joined.shape[0] == pytest.approx(3 * RATE, abs=2), "every sample once"
    n = np.arange(joined.shape[0])

    def phase(lo: int, hi: int) -> float:
        return float(np.angle(np.sum(joined[lo:hi] * np.exp(-2j * np.pi * 440 * n[lo:hi] / RATE))))

    cut = stall[0]
    before, after = (
        phase(cut - RATE // 8, cut - RATE // 40),
        phase(cut + RATE // 40, cut + RATE // 8),
    )
    step = np.angle(np.exp(1j * (after - before)))
    assert abs(step) < 0.02, f"the tone's phase jumped {step:.3f} rad at the stall"


@pytest.mark.sound
def test_crossfade_is_equal_power_and_has_no_gap(play) -> None:
    xfade = 0.5
    with Recorder() as rec:
        player, events = play(crossfade_s=xfade)
        player.enqueue("a", tone(440, 1.2, 48000))
        player.enqueue("b", tone(660, 1.2, 32000))
        events.finished("b")
        time.sleep(TAIL_S)
    left = rec.audio()[:, 0]
    start, end = active_span(left)
    assert (end - start) / RATE == pytest.approx(1.2 + 1.2 - xfade, abs=0.005)
    assert silent_windows(left[start:end]).size == 0

    # 50 ms windows hold whole periods of both tones: the projections separate them exactly.
    window = RATE // 20
    xf_start = start + round((1.2 - xfade) * RATE)
    xf_frames = round(xfade * RATE)
    steady = left[start + window : start + 4 * window]
    steady_power = float(np.mean(steady**2))
    for k in range(xf_frames // window):
        block = left[xf_start + k * window : xf_start + (k + 1) * window]
        a, b = amplitude_at(block, 440), amplitude_at(block, 660)
        theta = (k + 0.5) / (xf_frames // window) * np.pi / 2
        assert a == pytest.approx(AMP * np.cos(theta), abs=0.02)
        assert b == pytest.approx(AMP * np.sin(theta), abs=0.02)
        assert a**2 + b**2 == pytest.approx(AMP**2, rel=0.05), "power dips in the crossfade"
        power_db = 10 * np.log10(np.mean(block**2) / steady_power)
        assert abs(power_db) < 0.5
    middle = left[xf_start + xf_frames // 2 - window // 2 : xf_start + xf_frames // 2 + window // 2]
    assert amplitude_at(middle, 440) == pytest.approx(AMP / np.sqrt(2), rel=0.03)
    assert amplitude_at(middle, 660) == pytest.approx(AMP / np.sqrt(2), rel=0.03)


@pytest.mark.sound
def test_pause_and_resume_fade_without_clicks_and_the_tone_continues(play) -> None:
    freq = 440
    with Recorder() as rec:
        player, events = play(crossfade_s=0.0)
        player.enqueue("t", tone(freq, 1.5, 48000))
        events.started("t")
        time.sleep(0.5)
        player.pause()
        time.sleep(0.15)
        held = player.now_playing
        time.sleep(0.2)
        assert player.now_playing == held, "position moved while paused"
        assert held is not None and 0.3 < held.position_s < 0.9
        player.resume()
        events.finished("t", timeout=5)
        time.sleep(TAIL_S)
    left = rec.audio()[:, 0]
    start, end = active_span(left)
    body = left[start:end]
    assert max_jump(body) < 1.05 * sine_max_jump(freq), "click at pause or resume"
    silent = silent_windows(body)
    assert silent.size > 0.3 * 1000, "the pause left no silence"
    played = (body.shape[0] - silent.size * RATE // 1000) / RATE
    # all 1.5 s of the tone are played once: nothing lost or repeated across the pause
    assert played == pytest.approx(1.5, abs=0.025)
    after = body[silent[-1] + RATE // 10 : silent[-1] + RATE // 2]
    assert abs(peak_frequency(after) - freq) < 0.5


@pytest.mark.sound
def test_volume_changes_are_smooth(play) -> None:
    freq = 440
    with Recorder() as rec:
        player, events = play(crossfade_s=0.0)
        player.enqueue("t", tone(freq, 2.0, 48000))
        events.started("t")
        time.sleep(0.5)
        player.volume = 0.25
        time.sleep(0.4)
        player.muted = True
        time.sleep(0.2)
        player.muted = False
        events.finished("t", timeout=5)
        time.sleep(TAIL_S)
    left = rec.audio()[:, 0]
    start, end = active_span(left)
    body = left[start:end]
    assert max_jump(body) < 1.05 * sine_max_jump(freq)
    # envelope in 5 ms windows: a jump of the gain would show as one big step
    window = RATE // 200
    n = body.shape[0] // window * window
    envelope = np.abs(body[:n]).reshape(-1, window).max(axis=1)
    steps = np.abs(np.diff(envelope))
    # ramps move the 0.5 envelope by <= 0.05 per 5 ms; a jump would be 0.375 (volume), 0.125 (mute)
    assert steps.max() < 0.1, f"volume stepped by {steps.max():.3f} within 5 ms"
    assert np.median(envelope[: RATE // 4 // window]) == pytest.approx(AMP, rel=0.02)
    assert np.median(envelope[-(RATE // 4) // window :]) == pytest.approx(AMP * 0.25, rel=0.02)
    assert np.min(envelope) < SILENCE * 10, "mute did not silence"


@pytest.mark.sound
def test_skip_fades_out_and_moves_to_the_next_track(play) -> None:
    with Recorder() as rec:
        player, events = play(crossfade_s=0.3)
        player.enqueue("long", tone(440, 5.0, 48000))
        player.enqueue("next", tone(660, 1.0, 48000))
        started = events.started("long")
        time.sleep(0.5)
        skipped_at = time.monotonic()
        player.skip()
        events.started("next", timeout=2)
        events.finished("next", timeout=5)
        time.sleep(TAIL_S)
    finished = events.of(TrackFinished)
    assert [(e.track_id, e.skipped) for e in finished] == [("long", True), ("next", False)]
    assert skipped_at - started < 1.0
    left = rec.audio()[:, 0]
    start, end = active_span(left)
    body = left[start:end]
    assert silent_windows(body).size == 0, "skip left a gap"
    assert max_jump(body) < 1.05 * sine_max_jump(660), "click at the skip"
    total = body.shape[0] / RATE
    long_played = total - 1.0  # "next" plays whole after a 30 ms fade-out of "long"
    assert 0.4 < long_played < 1.6, f"{long_played:.2f} s of the skipped track played"
    head = body[: RATE // 4]
    tail = body[-RATE // 2 :]
    assert abs(peak_frequency(head) - 440) < 1 and abs(peak_frequency(tail) - 660) < 1
    assert amplitude_at(body[-RATE * 9 // 10 : -RATE // 10], 660) == pytest.approx(AMP, rel=0.01)


@pytest.mark.sound
def test_clear_keeps_the_audible_track_and_a_later_enqueue_plays_after_silence(play) -> None:
    with Recorder() as rec:
        player, events = play(crossfade_s=0.2)
        player.enqueue("a", tone(440, 1.5, 48000))
        player.enqueue("b", tone(660, 0.8, 48000))
        events.started("a")
        player.clear(wait=True)
        assert player.queued_ids == ()
        events.finished("a")
        time.sleep(0.3)
        assert player.now_playing is None
        player.enqueue("c", tone(550, 0.5, 44100))
        events.finished("c")
        time.sleep(TAIL_S)
    assert [e.track_id for e in events.of(TrackStarted)] == ["a", "c"]
    left = rec.audio()[:, 0]
    start, end = active_span(left)
    silent = silent_windows(left[start:end])
    assert silent.size > 250, "no silence between the cleared queue and the new track"
    a = left[start : start + silent[0]]
    c = left[start + silent[-1] + RATE // 1000 : end]
    assert a.shape[0] / RATE == pytest.approx(1.5, abs=0.005), "the audible track was cut"
    assert c.shape[0] / RATE == pytest.approx(0.5, abs=0.005)
    assert abs(peak_frequency(a) - 440) < 0.5 and abs(peak_frequency(c) - 550) < 0.5


@pytest.mark.sound
def test_no_dropouts_while_generation_runs_in_the_same_process(play) -> None:
    """A MusicGen job (ONNX Runtime + Python sampling) and numpy matmuls run during playback."""
    from musicgen_fixture import require_fixture

    from lofitui.engines.base import TrackRequest
    from lofitui.engines.musicgen import MusicGenEngine
    from lofitui.engines.runtime import RuntimeOptions

    engine = MusicGenEngine.load(require_fixture(), RuntimeOptions(device="cpu", threads=2))
    stop = threading.Event()
    work = {"generated": 0, "matmuls": 0}
    errors: list[BaseException] = []

    def generate() -> None:
        try:
            seed = 0
            while not stop.is_set():
                engine.generate(TrackRequest("lofi beat", 2.0, seed, model=engine.model_name))
                work["generated"] += 1
                seed += 1
        except BaseException as exc:
            errors.append(exc)

    def matmuls() -> None:
        rng = np.random.default_rng(0)
        m = rng.standard_normal((512, 512), dtype=np.float32)
        while not stop.is_set():
            m = np.tanh(m @ m.T / 512)
            work["matmuls"] += 1

    workers = [threading.Thread(target=generate), threading.Thread(target=matmuls)]
    with Recorder() as rec:
        player, events = play(crossfade_s=0.5)
        for worker in workers:
            worker.start()
        try:
            for i, freq in enumerate((440, 660, 550)):
                player.enqueue(f"t{i}", tone(freq, 1.2, 32000))
            events.finished("t2", timeout=10)
            time.sleep(TAIL_S)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
    assert not errors, errors
    assert work["generated"] >= 2 and work["matmuls"] > 10, work
    left = rec.audio()[:, 0]
    start, end = active_span(left)
    gaps = silent_windows(left[start:end])
    assert gaps.size == 0, f"{gaps.size} ms of dropouts under load"
    assert (end - start) / RATE == pytest.approx(3 * 1.2 - 2 * 0.5, abs=0.005)
    assert player.starved_blocks == 0


_NO_DEVICE_SCRIPT = """
import json, time
from lofitui.audio.player import Player
player = Player()
player.start()  # no sound server: it starts unheard and says why
time.sleep(0.3)
report = {"running": player.running, "has_output": player.has_output,
          "why": player.output_error}
player.close()
print(json.dumps(report))
"""


def test_without_an_output_device_the_player_runs_unheard_and_says_why(tmp_path: Path) -> None:
    client_conf = tmp_path / "client.conf"
    client_conf.write_text("autospawn = no\n")
    env = {
        **os.environ,
        "PULSE_SERVER": f"unix:{tmp_path / 'no-such-socket'}",
        "PULSE_CLIENTCONFIG": str(client_conf),
        "PULSE_RUNTIME_PATH": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", _NO_DEVICE_SCRIPT],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    report = json.loads(lines[0])
    assert report["running"] is True and report["has_output"] is False
    assert report["why"].startswith("no audio output device"), report
