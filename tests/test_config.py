"""config.toml: commented defaults on first run, per-key validation, keymap checks, saving."""

from __future__ import annotations

import tomllib

from lofitui.config import (
    DEFAULT_CONFIG_TEXT,
    Config,
    load_config,
    parse_config,
    save_setting,
    save_settings,
)


def test_first_run_writes_commented_defaults(tui_env):
    loaded = load_config()
    assert loaded.created and loaded.path.is_file()
    assert loaded.path.is_relative_to(tui_env)
    assert loaded.config == Config() and loaded.warnings == ()
    # every setting is present, commented out, and uncommenting all of them is valid TOML
    text = loaded.path.read_text()
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and "=" in line.split("#")[1] else line
        for line in DEFAULT_CONFIG_TEXT.splitlines()
    )
    for key in (
        "prompts",
        "engine",
        "model",
        "device",
        "lookahead",
        "crossfade",
        "cache_max_gb",
        "theme",
        "keymap",
    ):
        assert key in text
    assert "engine = " in uncommented
    assert not load_config().created


def test_bad_values_are_named_and_the_rest_applies(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        'model = "musicgen-small-q8"\nvolume = 1.5\nlookahead = "two"\ndevice = "tpu"\n'
        "colour = 3\ncrossfade = 0\n"
    )
    loaded = load_config(path)
    config, warnings = loaded.config, " | ".join(loaded.warnings)
    assert config.model == "musicgen-small-q8" and config.crossfade == 0.0
    assert config.volume == Config().volume and config.lookahead == 2 and config.device == "auto"
    assert "volume must be a number between 0 and 1" in warnings
    assert "lookahead must be an integer between 1 and 8" in warnings
    assert "device must be one of auto, cuda, coreml, cpu" in warnings
    assert "unknown key 'colour'" in warnings


def test_broken_toml_falls_back_to_defaults(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("volume = = 1\n")
    loaded = load_config(path)
    assert loaded.config == Config()
    assert len(loaded.warnings) == 1 and "line 1" in loaded.warnings[0]


def test_prompts_and_keymap():
    config, warnings = parse_config(
        {
            "prompts": ["  rainy jazz  ", "city pop"],
            "keymap": {
                "lofi.skip": "k, right",
                "lofi.bogus": "x",
                "lofi.mute": "n",
                "lofi.save": 5,
            },
        }
    )
    assert config.prompt == "rainy jazz" and config.prompts[1] == "city pop"
    assert config.keymap == {"lofi.skip": "k,right", "lofi.mute": "n"}  # n was freed by skip
    text = " | ".join(warnings)
    assert "unknown binding id 'lofi.bogus'" in text
    assert "lofi.save must be keys" in text
    # a key still bound by default to another id is a conflict
    config, warnings = parse_config({"keymap": {"lofi.mute": "q"}})
    assert config.keymap == {} and "conflicts with lofi.quit" in warnings[0]
    config, warnings = parse_config({"keymap": {"lofi.skip": "k", "lofi.mute": "n"}})
    assert config.keymap == {"lofi.skip": "k", "lofi.mute": "n"} and warnings == []
    _, warnings = parse_config({"prompts": []})
    assert "prompts must be a non-empty list" in warnings[0]


def test_save_setting_keeps_comments(tmp_path):
    path = tmp_path / "config.toml"
    save_setting("theme", "paper", path)  # creates the default file first
    text = path.read_text()
    assert 'theme = "paper"' in text and "# engine = " in text and "[keymap]" in text
    assert tomllib.loads(text)["theme"] == "paper"
    save_setting("theme", "midnight", path)
    assert tomllib.loads(path.read_text())["theme"] == "midnight"
    assert path.read_text().count("theme = ") == 1
    plain = tmp_path / "plain.toml"
    plain.write_text('[keymap]\n"lofi.skip" = "k"\n')
    save_setting("theme", "paper", plain)
    data = tomllib.loads(plain.read_text())
    assert data["theme"] == "paper" and data["keymap"] == {"lofi.skip": "k"}


def test_save_settings_sets_table_keys_in_one_write(tmp_path):
    path = tmp_path / "config.toml"
    save_settings({"engine": "ace-step"}, {"ace-step": {"keyscale": "F# major", "bpm": 85}}, path)
    save_settings(
        {"duration": 45.0},
        {"ace-step": {"keyscale": "A minor", "bpm": None}, "synth": {"bpm": 70}},
        path,
    )
    text = path.read_text()
    assert 'keyscale = "A minor"' in text and "# major" not in text  # a # inside a string
    assert "# bpm = 85" in text  # None: back to the default, commented out
    assert "# steps = 8                  # the model's own default" in text  # comments kept
    loaded = load_config(path, create=False)
    assert loaded.warnings == ()
    assert (loaded.config.engine, loaded.config.duration) == ("ace-step", 45.0)
    assert loaded.config.engine_params == {
        "ace-step": {"keyscale": "A minor"},
        "synth": {"bpm": 70},
    }
