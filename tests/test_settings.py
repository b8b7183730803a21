"""Settings are built once: the real command line (nothing given = absent) over a real
config.toml in a temporary platformdirs location, then handed to the player or --render.

Regression tests for issue #10's bugs: options equal to an old argparse default were taken as
"not given" by the player, ACE-Step options never reached it, and its default model ignored the
configured engine.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

import pytest
from cli_helpers import one_error_line, run_lofi

from lofitui import paths
from lofitui.cli import build_parser, load_settings
from lofitui.config import Settings, load_config
from lofitui.engines import registry
from lofitui.engines.base import EngineBase, Param
from lofitui.errors import ModelError, UsageError
from lofitui.models import catalog
from lofitui.tui import backend as backend_module
from lofitui.tui.backend import Backend, MissingModel

ROOT = Path(__file__).resolve().parent.parent
TURBO = ROOT / "tests" / "fixtures" / "acestep-tiny" / "turbo"


def write_config(text: str) -> Path:
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def settings_for(*argv: str) -> Settings:
    """What `lofi ARGV` runs with: the real parser and the real merge over config.toml."""
    settings, loaded = load_settings(vars(build_parser().parse_args(list(argv))))
    assert loaded.warnings == ()
    return settings


# -- the player: an option given is always applied ------------------------------------------------


def test_duration_equal_to_the_old_default_overrides_the_config(lofi_home):
    write_config("duration = 30\n")
    assert settings_for().duration == 30.0
    assert settings_for("--duration", "10").duration == 10.0
    assert settings_for("--duration", "12").duration == 12.0


def test_device_auto_and_threads_0_override_the_config(lofi_home):
    write_config('device = "cpu"\nthreads = 2\n')
    assert (settings_for().device, settings_for().threads) == ("cpu", 2)
    settings = settings_for("--device", "auto", "--threads", "0")
    assert (settings.device, settings.threads) == ("auto", 0)


def test_engine_and_model_given_beat_the_configured_engine(lofi_home):
    write_config('engine = "ace-step"\n')
    settings = settings_for("--engine", "musicgen", "--model", "musicgen-small")
    assert (settings.engine, settings.model) == ("musicgen", "musicgen-small")
    # --engine alone: that engine's default model, not the configured engine's
    assert settings_for("--engine", "musicgen").model == "musicgen-small-fp16"


def test_acestep_options_reach_the_players_station(lofi_home, monkeypatch):
    monkeypatch.setattr(backend_module, "open_player", lambda _: (None, "test: no audio"))
    write_config('engine = "ace-step"\n')
    settings = settings_for(
        *("--model", str(TURBO), "--bpm", "90", "--lyrics", "la la", "--steps", "4"),
        *("--key", "a minor", "--duration", "5"),
    )
    backend = Backend(settings)
    model_dir = backend.find_model()
    assert model_dir == TURBO.resolve()
    built = backend.build(model_dir)
    station = built.station
    assert (station.engine, station.duration_s) == ("ace-step", 5.0)
    assert station.params["bpm"] == 90 and station.params["lyrics"] == "la la"
    assert station.params["steps"] == 4 and station.params["keyscale"] == "A minor"
    assert station.params["guidance"] == 1.0  # the turbo model's own default fills the gap


def test_configured_engine_picks_its_default_model_for_the_first_run(lofi_home):
    write_config('engine = "ace-step"\n')
    settings = settings_for()
    assert (settings.engine, settings.model) == ("ace-step", "ace-step-turbo")
    # ACE-Step models are exported, not downloaded: start-up says how, and never offers MusicGen
    with pytest.raises(ModelError, match="'ace-step-turbo' is not installed") as err:
        Backend(settings).find_model()
    assert "lofi models export ace-step" in str(err.value) and "musicgen" not in str(err.value)
    installed = paths.models_dir() / "ace-step-turbo"
    shutil.copytree(TURBO, installed, ignore=shutil.ignore_patterns("reference.*"))
    assert Backend(settings).find_model() == installed
    # and MusicGen's first-run dialog offers MusicGen's default model
    missing = Backend(settings_for("--engine", "musicgen")).find_model()
    assert isinstance(missing, MissingModel) and missing.entry.name == "musicgen-small-fp16"


# -- per-engine tables, foreign options, --render's own track length -----------------------------


def test_engine_tables_in_config_set_the_players_params(lofi_home):
    write_config('[musicgen]\nguidance = 4\ntop_k = 0\n\n[ace-step]\nkeyscale = "f# maj"\n')
    loaded = load_config()
    assert loaded.config.engine_params == {
        "musicgen": {"guidance": 4.0},
        "ace-step": {"keyscale": "F# major"},
    }
    assert any("[musicgen] top-k must be >= 1" in w for w in loaded.warnings)
    settings, _ = load_settings({})
    assert settings.params == {"guidance": 4.0}
    given, _ = load_settings({"guidance": 2.0, "top_k": 5})
    assert given.params == {"guidance": 2.0, "top_k": 5}


def test_another_engines_option_is_refused_in_the_player_too(lofi_home):
    write_config('engine = "ace-step"\n')
    with pytest.raises(UsageError, match="--top-k only applies to --engine musicgen"):
        settings_for("--top-k", "5")
    with pytest.raises(UsageError, match="--lyrics, --bpm only apply to --engine ace-step"):
        settings_for("--engine", "musicgen", "--lyrics", "la", "--bpm", "90")


def test_render_keeps_its_own_track_length_over_the_players(lofi_home):
    write_config("duration = 30\n")
    assert settings_for("--render", "x").duration == 10.0
    assert settings_for("--render", "x", "--duration", "20").duration == 20.0
    assert settings_for().duration == 30.0


def test_render_reads_the_configured_engine(tmp_path: Path, cli_env: dict) -> None:
    config = tmp_path / "config" / "lofi" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('engine = "ace-step"\n')
    result = run_lofi("--render", "x", "--duration", "5", cwd=tmp_path, env=cli_env)
    assert "'ace-step-turbo' is not installed" in one_error_line(result)


# -- a third engine needs no change to the CLI or the config ---------------------------------------


class ThirdEngine(EngineBase):
    """Declarations only: enough for the parser and config.toml."""

    name = "third"
    title = "Third engine (--engine third)"
    params: ClassVar[tuple[Param, ...]] = (
        Param("grain", int, "grain size", "--grain", "N", minimum=1, maximum=9),
    )
    min_duration_s = 1.0
    max_duration_s = 10.0


def test_a_third_engine_brings_its_own_options(lofi_home, monkeypatch, capsys):
    monkeypatch.setitem(registry.ENGINES, "third", f"{__name__}:ThirdEngine")
    monkeypatch.setattr(catalog, "DEFAULT_MODELS", {**catalog.DEFAULT_MODELS, "third": "t-model"})
    parser = build_parser()
    assert "Third engine (--engine third)" in parser.format_help()
    settings = settings_for("--engine", "third", "--grain", "3")
    assert (settings.model, settings.params) == ("t-model", {"grain": 3})
    with pytest.raises(UsageError, match="grain must be between 1 and 9"):
        settings_for("--engine", "third", "--grain", "12")
    with pytest.raises(UsageError, match="--grain only applies to --engine third"):
        settings_for("--engine", "musicgen", "--grain", "3")
    write_config("[third]\ngrain = 5\n")
    assert load_config().config.engine_params == {"third": {"grain": 5}}
