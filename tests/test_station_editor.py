"""The station editor (``e``): fields from the engines' declarations, the CLI's validators,
Apply into the scheduler's set_station, Esc changing nothing. Fake scheduler, real app."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

from musicgen_fixture import require_fixture
from textual.widgets import Checkbox, Input, Select, Static, TextArea
from tui_fakes import TUI_PROMPT, FakeBackend, FakeScheduler

from lofitui import paths
from lofitui.config import Config, build_settings, load_config
from lofitui.events import Station
from lofitui.models.catalog import get_entry
from lofitui.tui.app import LofiApp, create_app
from lofitui.tui.backend import Backend, MissingModel
from lofitui.tui.history import PromptHistory
from lofitui.tui.screens import FirstRunScreen, StationEditor
from lofitui.tui.station_form import build_station, form_params, model_choices, value_text

SNAPSHOT_SIZE = (80, 24)


def make_app(fake: FakeScheduler) -> LofiApp:
    return create_app(
        config=Config(), backend=FakeBackend(fake), history=PromptHistory(["older prompt"])
    )


async def attached(pilot) -> None:
    for _ in range(200):
        if pilot.app.scheduler is not None:
            break
        await asyncio.sleep(0.01)
    await pilot.pause()


async def open_editor(pilot) -> StationEditor:
    await pilot.press("e")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, StationEditor)
    return screen


async def retype(pilot, screen: StationEditor, field: str, *keys: str) -> None:
    """Focus ``field``, clear it and type ``keys`` (single characters, or key names)."""
    screen.query_one(f"#field-{field}", Input).focus()
    await pilot.press("home", "ctrl+k", *keys)


def shown_error(screen: StationEditor, field: str) -> str:
    error = screen.query_one(f"#error-{field}", Static)
    return str(error.content) if error.display else ""


async def test_editor_applies_musicgen_settings_refuses_bad_values_and_esc_cancels(tui_env):
    fake = FakeScheduler()
    app = make_app(fake)
    async with app.run_test(size=SNAPSHOT_SIZE) as pilot:
        await attached(pilot)
        before = fake.station
        assert before == Station(TUI_PROMPT, "musicgen", "musicgen-small", 30.0)
        fake.calls.clear()

        # Esc: nothing changes, and the player's keys are plain keys inside the editor
        screen = await open_editor(pilot)
        assert screen.query_one("#field-prompt", Input).value == TUI_PROMPT
        assert {w.id for w in screen.query("#engine-fields .field-row > *")} >= {
            "field-top_k",
            "field-temperature",
            "field-guidance",
            "field-compute_type",
        }
        screen.query_one("#field-engine", Select).focus()
        await pilot.press("n", "q", "escape")
        await pilot.pause()
        assert not isinstance(app.screen, StationEditor)
        assert fake.calls == [] and fake.station is before

        # a bad value: its error under the field, nothing applied, the editor stays
        screen = await open_editor(pilot)
        await retype(pilot, screen, "top_k", "0")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        assert shown_error(screen, "top_k") == "top-k must be >= 1 (got 0)"
        assert "not applied" in str(screen.query_one("#editor-problem", Static).content)
        assert app.focused is screen.query_one("#field-top_k")
        await retype(pilot, screen, "duration", "9", "0", "0")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert shown_error(screen, "duration") == "duration must be between 1 and 600 (got 900)"
        assert fake.calls == []

        # a duration MusicGen plays but config.toml refuses: not applied when saving as default
        await retype(pilot, screen, "top_k")  # cleared: the model's default
        await retype(pilot, screen, "duration", "4", "0", "0")
        screen.query_one("#field-save", Checkbox).focus()
        await pilot.press("space", "ctrl+s")
        await pilot.pause()
        assert shown_error(screen, "duration") == ""
        assert shown_error(screen, "save") == (
            "not the default: config.toml: duration must be a number of seconds between 1 and 300"
        )
        await pilot.press("space")  # not as the default then
        assert fake.calls == []

        # fixed: the duration and temperature reach the scheduler, top-k is left to the model
        await retype(pilot, screen, "duration", "4", "5")
        await retype(pilot, screen, "temperature", "0", ".", "7")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, StationEditor)
        assert fake.station == Station(
            TUI_PROMPT, "musicgen", "musicgen-small", 45.0, {"temperature": 0.7}
        )
        assert fake.calls == [("set_station", TUI_PROMPT)]


def install_by_hand(models_dir, name: str) -> None:
    """Place ``name``'s files (empty) where the model store looks: installed (manual)."""
    directory = models_dir / name
    for local in sorted(get_entry(name).complete_sets()[0]):
        (directory / local).parent.mkdir(parents=True, exist_ok=True)
        (directory / local).write_bytes(b"")


async def test_switching_to_ace_step_shows_its_fields_and_applies_them_at_60x20(tui_env):
    install_by_hand(tui_env / "models", "ace-step-base")
    fake = FakeScheduler()
    app = make_app(fake)
    async with app.run_test(size=(60, 20)) as pilot:
        await attached(pilot)
        screen = await open_editor(pilot)
        await retype(pilot, screen, "temperature", "0", ".", "5")
        engines = screen.query_one("#field-engine", Select)
        engines.focus()
        await pilot.press("enter", "down", "enter")  # musicgen → ace-step
        await pilot.pause()
        assert screen.engine == "ace-step"
        assert not screen.query("#field-top_k")
        assert isinstance(screen.query_one("#field-lyrics"), TextArea)
        for field in ("bpm", "keyscale", "steps", "shift", "guidance"):
            assert screen.query_one(f"#field-{field}")
        models = screen.query_one("#field-model", Select)
        assert models.value == "ace-step-base"  # the installed one, not the catalog's first

        # the form scrolls at 60x20; Apply stays on screen
        form = screen.query_one("#editor-form")
        assert form.max_scroll_y > 0
        apply = screen.query_one("#apply")
        assert apply.region.bottom <= 20 and apply.region.right <= 60

        screen.query_one("#field-lyrics", TextArea).focus()
        await pilot.press("l", "a", "space", "l", "a", "enter", "o", "h")
        await retype(pilot, screen, "bpm", "8", "5")
        await retype(pilot, screen, "keyscale", "f", "#", "space", "m", "a", "j")
        await retype(pilot, screen, "steps", "1", "2")

        # what was typed for each engine is kept while switching back and forth
        engines.focus()
        await pilot.press("enter", "up", "enter")
        await pilot.pause()
        assert screen.query_one("#field-temperature", Input).value == "0.5"
        engines.focus()
        await pilot.press("enter", "down", "enter")
        await pilot.pause()
        assert screen.query_one("#field-lyrics", TextArea).text == "la la\noh"
        screen.query_one("#field-save", Checkbox).focus()
        await pilot.press("space")  # and make it the default
        screen.query_one("#field-steps", Input).focus()
        await pilot.press("enter")  # Enter in a one-line field applies
        await pilot.pause()
        assert not isinstance(app.screen, StationEditor)
        chosen = {"lyrics": "la la\noh", "bpm": 85, "keyscale": "F# major", "steps": 12}
        assert fake.station == Station(TUI_PROMPT, "ace-step", "ace-step-base", 30.0, chosen)
        await app.workers.wait_for_complete()
        saved = load_config(paths.config_file(), create=False)
        assert saved.warnings == ()
        assert (saved.config.engine, saved.config.model) == ("ace-step", "ace-step-base")
        assert saved.config.duration == 30.0 and saved.config.engine_params["ace-step"] == chosen

        # back to musicgen: a model that is not installed is refused with how to install it
        screen = await open_editor(pilot)
        assert screen.query_one("#field-lyrics", TextArea).text == "la la\noh"
        screen.query_one("#field-engine", Select).value = "musicgen"
        await pilot.pause()
        assert screen.query_one("#field-model", Select).value == "musicgen-small-fp16"
        assert shown_error(screen, "model") == (
            "musicgen-small-fp16 is not installed: lofi models download musicgen-small-fp16"
        )
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen and fake.station.engine == "ace-step"
        await pilot.press("escape")


def test_snapshot_station_editor(tui_env, snap_compare):
    fake = FakeScheduler()

    async def run_before(pilot) -> None:
        await attached(pilot)
        screen = await open_editor(pilot)
        for field in screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    assert snap_compare(make_app(fake), terminal_size=SNAPSHOT_SIZE, run_before=run_before)


def test_a_station_lane_is_the_loaded_model():
    """A new compute type loads the model again (a lane of its own); other params share it."""
    int8 = Station("rain", "musicgen", "musicgen-small", params={"compute_type": "int8"})
    float32 = Station("rain", "musicgen", "musicgen-small", params={"compute_type": "float32"})
    assert int8.lane != float32.lane
    assert (
        Station(
            "snow", "musicgen", "musicgen-small", 60.0, {"compute_type": "int8", "top_k": 9}
        ).lane
        == int8.lane
    )
    assert Station("rain", "synth", "builtin", params={"bpm": 70}).lane == ("synth", "builtin")


async def wait_for(pilot, predicate, what: str) -> None:
    for _ in range(500):
        if predicate():
            await pilot.pause()
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_station_chosen_during_the_first_run_download_is_kept(tui_env):
    """The synth stands in while musicgen-small-fp16 downloads; the listener picks ACE-Step with e:
    the finished download is offered, not handed over to."""
    install_by_hand(tui_env / "models", "ace-step-turbo")
    gate = threading.Event()

    def download(entry, progress, cancel):
        gate.wait(5)
        return tui_env / "models" / entry.name

    entry = get_entry("musicgen-small-fp16")
    missing = MissingModel(entry, tui_env / "models" / entry.name, "not installed")
    fake = FakeScheduler()
    app = create_app(
        config=Config(),
        backend=FakeBackend(fake, missing=missing, download=download),
        history=PromptHistory([]),
    )
    async with app.run_test(size=SNAPSHOT_SIZE) as pilot:
        await attached(pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, FirstRunScreen), "the dialog")
        await pilot.click("#download")
        assert fake.station.engine == "synth"
        screen = await open_editor(pilot)
        assert [c.label for c in screen.choices] == ["builtin · current"]
        screen.query_one("#field-engine", Select).value = "musicgen"
        await pilot.pause()
        assert shown_error(screen, "model") == (
            "musicgen-small-fp16 is downloading: the station moves to it once it is ready"
        )
        screen.query_one("#field-engine", Select).value = "ace-step"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert fake.station.lane == ("ace-step", "ace-step-turbo")
        gate.set()
        ready = "musicgen-small-fp16 is ready: choose it with e"
        await wait_for(pilot, lambda: ready in [n.message for n in app._notifications], ready)
        assert not any(call[0] == "hand_over" for call in fake.calls)


def test_an_unchanged_form_gives_the_same_station():
    """Applying without a change is no station change (the queue is not regenerated)."""
    musicgen = {"top_k": 250, "temperature": 1.0, "guidance": 3.0, "compute_type": "int8"}
    for station in (
        Station("rain", "musicgen", "musicgen-small", 30.0, musicgen),
        Station("rain", "ace-step", "ace-step-turbo", 60.0, {"steps": 8, "language": "en"}),
        Station("rain", "synth", "builtin", 45.0, {"bpm": None}),
    ):
        values = {"prompt": station.prompt, "engine": station.engine, "model": station.model}
        values["duration"] = value_text(station.duration_s)
        values.update(
            {p.name: value_text(station.params.get(p.name)) for p in form_params(station.engine)}
        )
        choices = model_choices(station.engine, station)
        assert build_station(values, choices, station) == (station, {})


def test_another_compute_type_opens_the_model_with_it(lofi_home):
    """The backend opens one engine per lane: a station the editor moved to another compute type
    gets an engine loaded with it (the one loaded before would refuse its requests)."""
    model = str(require_fixture())
    settings = build_settings(
        Config(), {"engine": "musicgen", "model": model, "device": "cpu", "threads": 1}
    )
    backend = Backend(settings)
    station = backend.station_for(require_fixture())
    assert station.params["compute_type"] == "int8"  # what auto gave on the CPU
    loaded = backend.engine_for(station)
    assert backend.engine_for(replace(station, prompt="snow", params={"top_k": 5})) is loaded
    exact = replace(station, params={**station.params, "compute_type": "float32"})
    engine = backend.engine_for(exact)
    assert engine is not loaded and engine.compute_type == "float32"
    engine.validate(exact.request(seed=1))


def test_the_backend_measures_a_models_pace_until_one_is_learned(lofi_home):
    """The first track's start rule needs how the model slows within a track: measured when the
    engine opens while nothing is learned for its lane, not again once the scheduler has learned
    it (kept in the state directory)."""
    from lofitui.library.paces import Paces

    model = str(require_fixture())
    settings = build_settings(
        Config(), {"engine": "musicgen", "model": model, "device": "cpu", "threads": 1}
    )
    first = Backend(settings)
    station = first.station_for(require_fixture())
    engine = first.engine_for(station)
    assert engine.slowdown_for(30.0) != engine.slowdown  # measured, not the class's guess
    Paces.load().learned(station.lane, 0.7)  # what a finished track teaches the scheduler
    later = Backend(settings)
    assert later.paces.slowdown(station.lane) == 0.7
    engine = later.engine_for(later.station_for(require_fixture()))
    assert engine.slowdown_for(30.0) == engine.slowdown  # nothing measured: the lane knows
