"""Property tests (hypothesis) for what lofi parses (issue #13): the command line, config.toml and
prompts. Whatever comes in, the outcome is a value that keeps the documented limits, or one
clear line (a UsageError for the command line, a warning for the config); nothing else escapes.

Example counts are modest so the module runs in seconds; a failure prints the smallest input.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import string
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from lofitui.cli.options import build_parser, one_line
from lofitui.config import (
    MAX_CACHE_GB,
    Config,
    Settings,
    build_settings,
    load_config,
    max_threads,
    parse_config,
    save_setting,
)
from lofitui.engines.registry import ENGINES, engine_params
from lofitui.errors import UsageError
from lofitui.library import slugify
from lofitui.render import MAX_SEED, RenderJob
from lofitui.tui.history import PromptHistory

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- values as a user might type them --------------------------------------------------------

NOT_UTF8 = os.fsdecode(b"caf\xe9")  # what undecodable command-line bytes become
_NUMBER_WORDS = ["nan", "-nan", "inf", "-inf", "infinity", "1e309", "-0", "0x10", "1_000", "1,5"]
_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=-5, max_value=300).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-10, max_value=1000).map(lambda x: f"{x:g}"),
    st.sampled_from(_NUMBER_WORDS),
    st.just("9" * 500),
)
_texts = st.one_of(
    st.text(max_size=30),
    st.text(string.printable, max_size=12),
    st.sampled_from(["", " ", "\n", "\x00", NOT_UTF8, "-", "--", "A minor", "F♯ maj", "6/8"]),
)


def _option_table() -> list[tuple[str, argparse.Action]]:
    """Every option of ``lofi`` (the engines' included) but --help and --version."""
    return [
        (option, action)
        for action in build_parser()._actions
        if not isinstance(action, argparse._HelpAction | argparse._VersionAction)
        for option in action.option_strings
    ]


OPTIONS = _option_table()


@st.composite
def _argv(draw: st.DrawFn) -> list[str]:
    """A command line made of lofi's real options with values good and bad, plus some junk."""
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        option, action = draw(st.sampled_from(OPTIONS))
        argv.append(option)
        if action.nargs == 0:
            continue
        pool = [_numbers, _texts]
        if action.choices:
            pool.append(st.sampled_from(list(action.choices)))
        value = draw(st.one_of(pool))
        if draw(st.booleans()):
            argv.append(value)
        else:  # the --opt=value spelling also reaches values that start with a dash
            argv[-1] = f"{option}={value}"
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(_texts))  # a stray word
    return argv


def _assert_one_line(exc: BaseException) -> None:
    message = str(exc)
    assert message.strip(), "an empty message"
    assert one_line(message) == message, f"a control character in {message!r}"


# ---- the command line ------------------------------------------------------------------------


@FAST
@given(_argv())
@example(["--seed", "9223372036854775807", "--count", "2", "--render", "x"])
@example(["--duration", "nan"])
@example(["--top-k", "9" * 500])
@example(["models", "list", "a\nb"])
@example(["--render", NOT_UTF8])
def test_any_command_line_gives_settings_or_one_usage_line(argv: list[str]) -> None:
    """Parse and build the settings as ``lofi`` does: Settings within the limits, or one
    UsageError line; never another exception, never an exit."""
    try:
        given_ = vars(build_parser().parse_args(argv))
        if given_.pop("command", None) == "models":
            return
        result = build_settings(Config(), given_)
        if "render" in given_:
            _render_job(result, given_).validate()
    except UsageError as exc:
        _assert_one_line(exc)
        return
    _assert_within_limits(result)


def _render_job(settings: Settings, given_: dict[str, Any]) -> RenderJob:
    return RenderJob(
        prompt=given_["render"],
        duration_s=settings.duration,
        count=given_.get("count", 1),
        seed=given_.get("seed"),
        out_dir=given_.get("out", Path(".")),
        params=dict(settings.params),
    )


def _assert_within_limits(result: Settings) -> None:
    assert isinstance(result, Settings)
    assert 0 <= result.threads <= max_threads()
    assert math.isfinite(result.duration)
    assert result.engine in ENGINES
    declared = {p.name: p for p in engine_params()[result.engine]}
    for name, value in result.params.items():
        assert declared[name].convert(value) == value  # normalised, and within its bounds


@FAST
@given(
    seed=st.integers(min_value=-(2**64), max_value=2**64),
    count=st.integers(min_value=-3, max_value=1003),
)
@example(seed=MAX_SEED, count=2)
@example(seed=MAX_SEED - 999, count=1000)
def test_a_seed_series_stays_within_the_seeds_lofi_accepts(seed: int, count: int) -> None:
    """Every seed of an accepted ``--seed N --count M`` series is one ``--seed`` accepts."""
    job = RenderJob("piano", 10.0, count=count, seed=seed)
    try:
        job.validate()
    except UsageError as exc:
        _assert_one_line(exc)
        return
    for one in job.seeds():
        RenderJob("piano", 10.0, seed=one).validate()


# ---- config.toml -----------------------------------------------------------------------------

_KEYS = [f for f in Config.__dataclass_fields__ if f != "engine_params"]
_toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-3, max_value=400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2, max_value=400),
    st.text(max_size=12),
    st.sampled_from(["musicgen", "ace-step", "cpu", "AUTO", "lofi", "n,right", "q", " "]),
)
_toml_values = st.recursive(
    _toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_param_names = sorted({p.name for params in engine_params().values() for p in params})
_engine_tables = st.dictionaries(
    st.sampled_from([*_param_names, "bogus"]), _toml_values, max_size=4
)
_keymaps = st.dictionaries(
    st.sampled_from(["lofi.quit", "lofi.skip", "lofi.pause", "lofi.dance"]),
    st.one_of(st.sampled_from(["q", "n", "space", "x,y", "ctrl+q", "", "Q!"]), _toml_scalars),
    max_size=3,
)
_documents = st.dictionaries(
    st.one_of(st.sampled_from([*_KEYS, *ENGINES, "engine_params"]), st.text(max_size=8)),
    _toml_values,
    max_size=8,
).flatmap(
    lambda doc: st.fixed_dictionaries(
        {},
        optional={
            **{name: _engine_tables for name in ENGINES},
            "keymap": _keymaps,
        },
    ).map(lambda extra: {**doc, **extra})
)


@FAST
@given(_documents)
@example({"threads": 2**63 - 1})
@example({"cache_max_gb": math.inf, "volume": math.nan, "musicgen": 3})
@example({"musicgen": {"top_k": 10**400}})
def test_any_config_gives_a_config_within_limits_and_warnings(data: dict[str, Any]) -> None:
    """Bad keys are named in one-line warnings and left at their defaults; the rest applies;
    too many threads are clamped with a warning."""
    config, warnings = parse_config(data)
    assert isinstance(config, Config)
    for warning in warnings:
        assert warning.startswith("config.toml: ") and one_line(warning) == warning, warning
    assert 0 <= config.threads <= max_threads()
    assert 1 <= config.duration <= 300 and 1 <= config.lookahead <= 8
    assert 0 <= config.crossfade <= 10 and 0 <= config.volume <= 1
    assert 0 <= config.cache_max_gb <= MAX_CACHE_GB
    assert config.prompts and all(p.strip() == p and p for p in config.prompts)
    assert config.engine in ENGINES and config.theme.strip()
    for engine, params in config.engine_params.items():
        declared = {p.name: p for p in engine_params()[engine]}
        assert all(declared[name].convert(v) == v for name, v in params.items())
    for key, value in data.items():  # a key that was not warned about was applied
        if key in _KEYS and not any(f": {key} " in w or f"{key} =" in w for w in warnings):
            assert getattr(config, key) is not None
            if isinstance(value, str) and key not in ("device",):
                assert getattr(config, key) == value.strip()
    if isinstance(data.get("threads"), int) and data["threads"] > max_threads():
        assert config.threads == max_threads()
        assert any(f"using {max_threads()}" in w for w in warnings)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@example(b"\xef\xbb\xbfvolume = 0.5\n")
@example(b"[musicgen\n")
def test_any_config_file_loads_with_warnings(tmp_path_factory, raw: bytes) -> None:
    """Whatever bytes the file holds, lofi starts: the defaults and a one-line warning."""
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_bytes(raw)
    loaded = load_config(path, create=False)
    assert isinstance(loaded.config, Config)
    assert all(one_line(w) == w for w in loaded.warnings), loaded.warnings


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=40) | st.sampled_from(["a\nb", 'say "hi"', "back\\slash", "\x7f", "é"]))
def test_a_saved_theme_reads_back(tmp_path_factory, name: str) -> None:
    """``save_setting`` writes TOML that reads back as the same value, whatever the name holds
    (quotes, backslashes, newlines, control characters), keeping the file valid."""
    assume(name.strip())
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    save_setting("theme", name, path)
    save_setting("theme", name, path)  # replacing an active line too
    assert tomllib.loads(path.read_text(encoding="utf-8"))["theme"] == name
    loaded = load_config(path, create=False)
    assert loaded.warnings == () and loaded.config.theme == name.strip()


# ---- prompts ---------------------------------------------------------------------------------

_prompts = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.sampled_from(["", " \t", "\u200b", "a\x00b", "\x1b[31mred", "🎹" * 30, "\u202eabc"]),
)


@FAST
@given(_prompts)
def test_a_prompt_renders_or_is_refused_as_empty(prompt: str) -> None:
    """``--render=PROMPT``: a prompt with something in it is taken as it is; a blank one is
    refused in one line. (``--render -x`` reads -x as an option; the error says to write =.)"""
    given_ = vars(build_parser().parse_args([f"--render={prompt}"]))
    assert given_["render"] == prompt
    job = RenderJob(prompt, 10.0)
    if prompt.strip():
        job.validate()
    else:
        with pytest.raises(UsageError, match="the prompt is empty"):
            job.validate()


_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@FAST
@given(_prompts)
def test_a_prompt_names_a_safe_file(prompt: str) -> None:
    """The file name made from any prompt is short, ASCII, and has no separators or dots."""
    slug = slugify(prompt)
    assert _SLUG.match(slug) and len(slug) <= 48, slug


@FAST
@given(st.lists(_prompts, max_size=5))
def test_prompt_history_reads_back_what_was_typed(tmp_path_factory, typed: list[str]) -> None:
    """The history file gives back each prompt typed (whitespace runs made one space), newest
    last, whatever the prompts hold (newlines, NUL, escapes, other scripts)."""
    path = tmp_path_factory.mktemp("hist") / "prompt-history.txt"
    history = PromptHistory(path=path)
    for prompt in typed:
        history.add(prompt)
    expected: list[str] = []
    for prompt in typed:
        clean = " ".join(prompt.split())
        if clean:
            expected = [e for e in expected if e != clean] + [clean]
    assert PromptHistory.load(path=path).entries == expected


@settings(max_examples=40, deadline=None)
@given(_prompts.filter(str.strip))
def test_any_prompt_tokenizes_within_the_model_limit(tiny_engine, prompt: str) -> None:
    """MusicGen's tokenizer takes any text and keeps at most its 256 tokens."""
    from lofitui.engines.musicgen import MAX_PROMPT_TOKENS

    hidden, mask = tiny_engine.encode_text(prompt)
    assert 1 <= mask.shape[1] <= MAX_PROMPT_TOKENS and hidden.shape[1] == mask.shape[1]


def test_a_prompt_that_is_not_utf8_is_one_usage_line() -> None:
    with pytest.raises(UsageError, match="not valid UTF-8 text") as caught:
        build_parser().parse_args(["--render", NOT_UTF8])
    _assert_one_line(caught.value)
