"""Bad input to ``lofi`` (issue #13): one table of cases for the command line, its paths,
config.toml and model directories, each run through the real ``lofi`` main in-process (stdout
and stderr captured at the file descriptors; a subprocess costs a second of imports per case).

Each case asserts the exit code (2: the user's error; 0: valid, and it works), that stderr holds
exactly one ``lofi:`` line saying what the case expects (the error, or config.toml's warning;
none for a clean run) and never a traceback; a run that worked printed one path per track and
wrote them complete (finite audio and a sidecar). Values at a limit that would take long to
render are shown to pass validation by the next check failing instead: the model is missing.
A case's own options come after the base command line's, and the last of an option counts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from musicgen_fixture import require_fixture

from lofitui.audio.wav import read_wav
from lofitui.cli import main
from lofitui.config import max_threads

TINY = require_fixture()
ACE = Path(__file__).parent / "fixtures" / "acestep-tiny" / "turbo"
MISSING = "{tmp}/no-model"  # the model a case names when only validation should pass
RENDER = ("--render", "piano", "--duration", "1", "--seed", "1", "--out", "{tmp}/out")
TINY_RENDER = (*RENDER, "--model", "{tiny}")
ACE_RENDER = (*RENDER[:3], "5", *RENDER[4:], "--engine", "ace-step", "--model", "{ace}")
NOT_UTF8 = os.fsdecode(b"caf\xe9")  # Latin-1 bytes in a UTF-8 system: surrogate escapes
LONG_NAME = "x" * 300  # one path component longer than NAME_MAX (255)
BIG = "9" * 400  # more digits than any float holds
ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Case:
    """One bad (or borderline) input: the command line, the files it needs, what must happen."""

    group: str
    id: str
    argv: tuple[str, ...]
    code: int = 2
    says: str = ""  # in the one lofi: line; "" for a clean exit-0 run
    not_says: str = ""  # must not be in that line (a message the tidy list calls unclear)
    config: str | bytes | None = None  # config.toml's content
    setup: Callable[[Path], None] | None = None  # makes the paths the case names, in tmp

    def param(self) -> pytest.param:
        return pytest.param(self, id=f"{self.group}:{self.id}")


TRIED: set[str] = set()  # the numeric options the table tries


def _num(id: str, *args: str, code: int = 2, says: str = "", model: str = "{tiny}") -> Case:
    TRIED.add(args[0])
    return Case("numbers", id, (*RENDER, "--model", model, *args), code, says)


def _ace(id: str, *args: str, code: int = 2, says: str = "", model: str = "{ace}") -> Case:
    TRIED.add(args[0])
    return Case("numbers", id, (*ACE_RENDER[:-1], model, *args), code, says)


def _v1(id: str, *args: str, says: str) -> Case:
    """ACE-Step v1's own numbers: checked before any model is looked for."""
    TRIED.add(args[0])
    argv = (*ACE_RENDER[:-4], "--engine", "ace-step-v1", "--model", MISSING, *args)
    return Case("numbers", id, argv, 2, says)


NOT_FOUND = "not found"  # at a limit: accepted, so the missing model is what stops the run
TEMPERATURE = "temperature must be between 0.01 and 100"
GUIDANCE = "guidance must be between 1 and 100"
LOUDNESS = 'loudness must be a number of LUFS between -40 and -5, or "off"'

NUMBER_CASES = [
    _num("duration-below-min", "--duration", "0.999", says="between 1 and 600"),
    _num("duration-min", "--duration", "1", code=0),
    _num("duration-max", "--duration", "600", says=NOT_FOUND, model=MISSING),
    _num("duration-past-max", "--duration", "600.001", says="between 1 and 600"),
    _num("duration-zero", "--duration", "0", says="duration must be > 0"),
    _num("duration-minus-zero", "--duration", "-0", says="duration must be > 0"),
    _num("duration-nan", "--duration", "nan", says="'nan' is not a finite number"),
    _num("duration-inf", "--duration", "inf", says="not a finite number"),
    _num("duration-minus-inf", "--duration=-inf", says="not a finite number"),
    _num("duration-overflow", "--duration", "1e309", says="not a finite number"),
    _num("duration-huge-digits", "--duration", BIG, says="not a finite number"),
    _num("duration-hex", "--duration", "0x10", says="invalid float value: '0x10'"),
    _num("duration-empty", "--duration", "", says="invalid float value: ''"),
    _num("duration-comma", "--duration", "1,5", says="invalid float value"),
    _num("count-zero", "--count", "0", says="count must be between 1 and 1000"),
    _num("count-two", "--count", "2", code=0),
    _num("count-max", "--count", "1000", says=NOT_FOUND, model=MISSING),
    _num("count-past-max", "--count", "1001", says="count must be between 1 and 1000"),
    _num("count-negative", "--count", "-1", says="count must be between 1 and 1000"),
    _num("count-huge", "--count", "1" + "0" * 30, says="count must be between 1 and 1000"),
    _num("count-fraction", "--count", "1.5", says="invalid int value: '1.5'"),
    _num("count-hex", "--count", "0x10", says="invalid int value"),
    _num("seed-negative", "--seed", "-1", says="seed must be between 0 and"),
    _num("seed-max", "--seed", str(2**63 - 1), code=0),
    _num("seed-past-max", "--seed", str(2**63), says="seed must be between 0 and"),
    _num(
        "seed-series-overflows",
        "--seed",
        str(2**63 - 1),
        "--count",
        "2",
        says=f"seed must be between 0 and {2**63 - 2} for 2 tracks",
    ),
    _num("seed-series-at-max", "--seed", str(2**63 - 2), "--count", "2", code=0),
    _num("seed-float", "--seed", "1e3", says="invalid int value: '1e3'"),
    _num("loudness-min", "--loudness=-40", says=NOT_FOUND, model=MISSING),
    _num("loudness-past-max", "--loudness", "-4.9", says=LOUDNESS),
    _num("loudness-positive", "--loudness", "3", says=LOUDNESS),
    _num("loudness-word", "--loudness", "loud", says=LOUDNESS),
    _num("loudness-nan", "--loudness", "nan", says=LOUDNESS),
    _num("loudness-off", "--loudness", "OFF", says=NOT_FOUND, model=MISSING),
    _num("seed-5000-digits", "--seed", "9" * 5000, says="invalid int value"),
    _num("threads-negative", "--threads", "-1", says="threads must be >= 0"),
    _num("threads-zero", "--threads", "0", code=0),
    _num("threads-max", "--threads", str(max_threads()), code=0),
    _num("threads-past-max", "--threads", str(max_threads() + 1), says="threads must be at most"),
    _num("threads-trillion", "--threads", str(10**12), says="threads must be at most"),
    _num("top-k-zero", "--top-k", "0", says="top-k must be >= 1"),
    _num("top-k-greedy", "--top-k", "1", code=0),
    _num("top-k-vocab", "--top-k", "2048", code=0),  # the tiny model's vocabulary
    _num("top-k-past-vocab", "--top-k", "2049", says="top-k must be <= 2048"),
    _num("top-k-huge-digits", "--top-k", BIG, says="top-k must be <= 2048"),
    _num("top-k-huge-negative", "--top-k", "-" + BIG, says="top-k must be >= 1"),
    # Past these bounds float32 sampling overflows into noise (and numpy warnings on stderr).
    _num("temperature-zero", "--temperature", "0", says=TEMPERATURE),
    _num("temperature-negative", "--temperature", "-1", says=TEMPERATURE),
    _num("temperature-tiny", "--temperature", "1e-300", says=TEMPERATURE),
    _num("temperature-min", "--temperature", "0.01", code=0),
    _num("temperature-max", "--temperature", "100", code=0),
    _num("temperature-past-max", "--temperature", "100.001", says=TEMPERATURE),
    _num("temperature-huge", "--temperature", "1e308", says=TEMPERATURE),
    _num("temperature-nan", "--temperature", "nan", says="not a finite number"),
    _num("guidance-below-min", "--guidance", "0.999", says=GUIDANCE),
    _num("guidance-off", "--guidance", "1", code=0),
    _num("guidance-max", "--guidance", "100", code=0),
    _num("guidance-huge", "--guidance", "1e308", says=GUIDANCE),
    _num("guidance-inf", "--guidance", "inf", says="not a finite number"),
    _num("bpm-on-musicgen", "--bpm", "90", says="--bpm only applies to --engine ace-step"),
    _ace("ace-duration-below-min", "--duration", "4.99", says="between 5 and 240"),
    _ace("ace-duration-past-max", "--duration", "240.01", says="between 5 and 240"),
    _ace("ace-duration-max", "--duration", "240", says=NOT_FOUND, model=MISSING),
    _ace("bpm-zero", "--bpm", "0", says="bpm must be between 1 and 400"),
    _ace("bpm-max", "--bpm", "400", code=0),
    _ace("bpm-past-max", "--bpm", "401", says="bpm must be between 1 and 400"),
    _ace("bpm-fraction", "--bpm", "90.5", says="invalid int value"),
    _ace("steps-zero", "--steps", "0", says="steps must be between 1 and 200"),
    _ace("steps-max", "--steps", "200", says=NOT_FOUND, model=MISSING),
    _ace("steps-past-max", "--steps", "201", says="steps must be between 1 and 200"),
    _ace("shift-zero", "--shift", "0", says="shift must be between 0.01 and 100"),
    _ace("shift-tiny", "--shift", "1e-300", says="shift must be between 0.01 and 100"),
    _ace("shift-min", "--shift", "0.01", says=NOT_FOUND, model=MISSING),
    _ace("shift-past-max", "--shift", "100.001", says="shift must be between 0.01 and 100"),
    _ace("shift-nan", "--shift", "nan", says="not a finite number"),
    _ace("ace-guidance-negative", "--guidance", "-0.001", says="guidance must be between 0 and"),
    _ace("ace-guidance-zero", "--guidance", "0", code=0),
    _ace("ace-guidance-max", "--guidance", "100", says=NOT_FOUND, model=MISSING),
    _ace("ace-guidance-huge", "--guidance", "1e308", says="guidance must be between 0 and 100"),
    _v1("omega-past-max", "--omega", "100.5", says="omega must be between -100 and 100"),
    _v1("omega-max", "--omega", "100", says=NOT_FOUND),
    _v1("interval-past-max", "--guidance-interval", "1.01", says="between 0 and 1"),
    _v1("interval-min", "--guidance-interval", "0", says=NOT_FOUND),
    _v1("decay-negative", "--guidance-decay", "-0.1", says="guidance-decay must be between 0"),
    _v1("min-guidance-past-max", "--min-guidance", "101", says="min-guidance must be between"),
]


def _str(id: str, *argv: str, code: int = 2, says: str = "") -> Case:
    return Case("strings", id, argv, code, says)


EMPTY_PROMPT = "the prompt is empty"
STRING_CASES = [
    _str("prompt-empty", *TINY_RENDER, "--render", "", says=EMPTY_PROMPT),
    _str("prompt-blank", *TINY_RENDER, "--render", "   ", says=EMPTY_PROMPT),
    _str("prompt-whitespace-controls", *TINY_RENDER, "--render", "\t\n\r\x0b", says=EMPTY_PROMPT),
    _str("prompt-1mb", *TINY_RENDER, "--render", "lofi piano " * 95_325, code=0),
    _str("prompt-unicode", *TINY_RENDER, "--render", "🎹 日本語のピアノ ﷽ café", code=0),
    _str("prompt-ansi-escapes", *TINY_RENDER, "--render", "\x1b[31mred\x1b[0m\x07 piano", code=0),
    _str("prompt-nul", *TINY_RENDER, "--render", "piano\x00jazz", code=0),
    _str("prompt-zero-width", *TINY_RENDER, "--render", "\u200b\u200d", code=0),
    _str("prompt-bidi-override", *TINY_RENDER, "--render", "\u202eonaip", code=0),
    _str("prompt-not-utf8", *TINY_RENDER, "--render", NOT_UTF8, says="not valid UTF-8 text"),
    _str("prompt-missing", "--render", says="argument --render: expected one argument"),
    _str("key-unknown-note", *ACE_RENDER, "--key", "H major", says="--key 'H major'"),
    _str("key-empty", *ACE_RENDER, "--key", "", says="--key ''"),
    _str("key-nul", *ACE_RENDER, "--key", "A\x00 minor", says="--key 'A\\x00 minor'"),
    _str("key-sharp-unicode", *ACE_RENDER, "--key", "F♯ major", code=0),
    _str("time-signature-5", *ACE_RENDER, "--time-signature", "5", says="--time-signature '5'"),
    _str("time-signature-empty", *ACE_RENDER, "--time-signature", "", says="use 2, 3, 4 or 6"),
    _str("time-signature-6-8", *ACE_RENDER, "--time-signature", "6/8", code=0),
    _str("scheduler-unknown", *ACE_RENDER, "--scheduler", "ddim", says="invalid choice: 'ddim'"),
    _str("lyrics-on-musicgen", *TINY_RENDER, "--lyrics", "la la", says="--lyrics only applies"),
    _str("lyrics-not-utf8", *ACE_RENDER, "--lyrics", NOT_UTF8, says="not valid UTF-8 text"),
    _str("engine-empty", *TINY_RENDER, "--engine", "", says="unknown engine ''"),
    _str("engine-wrong-case", *TINY_RENDER, "--engine", "MusicGen", says="unknown engine"),
    _str("device-unknown", *TINY_RENDER, "--device", "tpu", says="invalid choice: 'tpu'"),
    _str("format-unknown", *TINY_RENDER, "--format", "mp3", says="invalid choice: 'mp3'"),
    _str("option-unknown", *TINY_RENDER, "--bogus", says="unrecognized arguments: --bogus"),
    _str("option-newline", *TINY_RENDER, "--x\ny", says="unrecognized arguments: --x\\ny"),
    _str("command-unknown", "play", says="invalid choice: 'play'"),
    _str("models-extra-newline", "models", "list", "a\nb", says="unrecognized arguments: a\\nb"),
    _str("models-download-empty", "models", "download", "", says="unknown model ''"),
    _str("models-show-escape", "models", "show", "a\x1bb", says="unknown model 'a\\x1bb'"),
    _str("models-path-long-name", "models", "path", LONG_NAME, says="unknown model"),
    _str("model-empty", *RENDER, "--model", "", says="argument --model: empty"),
    _str("model-blank", *RENDER, "--model", "  ", says="argument --model: empty"),
    _str("out-empty", *RENDER, "--model", "{tiny}", "--out", "", says="argument --out: empty"),
]


def _fifo(name: str) -> Callable[[Path], None]:
    return lambda tmp: os.mkfifo(tmp / name)


def _file(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_text("not a directory")


def _loop(tmp: Path) -> None:
    (tmp / "loop-a").symlink_to(tmp / "loop-b")
    (tmp / "loop-b").symlink_to(tmp / "loop-a")


def _out(id: str, out: str, code: int = 2, says: str = "", **kw) -> Case:
    return Case("paths", id, (*RENDER[:-1], out, "--model", "{tiny}"), code, says, **kw)


def _model(id: str, model: str, says: str, **kw) -> Case:
    return Case("paths", id, (*RENDER, "--model", model), 2, says, **kw)


CANNOT_WRITE = "cannot write to output directory"
PATH_CASES = [
    _out("out-new-nested", "{tmp}/a/b/c", code=0),
    _out("out-is-file", "{tmp}/afile", says=CANNOT_WRITE, setup=_file("afile")),
    _out("out-is-fifo", "{tmp}/fifo", says=CANNOT_WRITE, setup=_fifo("fifo")),
    _out("out-dev-null", "/dev/null", says=CANNOT_WRITE),
    _out(
        "out-under-file", "{tmp}/afile/sub", says="is a file, not a directory", setup=_file("afile")
    ),
    _out("out-long-name", f"{{tmp}}/{LONG_NAME}", says="File name too long"),
    _out("out-not-utf8", f"{{tmp}}/{NOT_UTF8}", code=0),
    _out("out-spaces-unicode", "{tmp}/my música ♪", code=0),
    _out("out-proc", "/proc", says="/proc: it is not writable"),
    _out(
        "out-symlink-loop",
        "{tmp}/loop-a",
        says=CANNOT_WRITE,
        not_says="File exists",
        setup=_loop,
    ),
    _model("model-nonexistent-dir", "{tmp}/nowhere/", says="not found"),
    Case(
        "paths",
        "models-optimize-file",
        ("models", "optimize", "{tmp}/afile"),
        2,
        "not found",
        setup=_file("afile"),
    ),
    _model("model-is-file", "{tmp}/afile", says="not found", setup=_file("afile")),
    _model("model-is-fifo", "{tmp}/fifo", says="not found", setup=_fifo("fifo")),
    _model("model-dev-null", "/dev/null", says="not found"),
    _model("model-symlink-loop", "{tmp}/loop-a", says="not found", setup=_loop),
    _model("model-long-name", f"{{tmp}}/{LONG_NAME}", says="File name too long"),
    _model("model-not-utf8", f"{{tmp}}/{NOT_UTF8}", says="not found"),
    _model("model-unknown-name", "musicgen-enormous", says="not a known model"),
    _model("model-not-installed-offline", "musicgen-small", says="offline"),
    Case(
        "paths",
        "model-other-engine",
        (*ACE_RENDER[:-1], "musicgen-small"),
        says="is a musicgen model, not ace-step",
    ),
]
if not ROOT:  # root reads and writes through any permission bits
    PATH_CASES += [
        _out(
            "out-read-only-dir",
            "{tmp}/ro/out",
            says="Permission denied",
            setup=lambda tmp: (tmp / "ro").mkdir(mode=0o555),
        ),
        _model(
            "model-unreadable-dir",
            "{tmp}/locked",
            says="Permission denied",
            setup=lambda tmp: (tmp / "locked").mkdir(mode=0o000),
        ),
    ]


def _config(id: str, text: str | bytes, says: str = "", code: int = 0) -> Case:
    return Case("config", id, TINY_RENDER, code, says, config=text)


CONFIG_CASES = [
    _config("syntax-missing-value", "duration = \n", "Invalid value"),
    _config("syntax-unclosed-table", "[musicgen\ntop_k = 5\n", "using the defaults"),
    _config("syntax-duplicate-key", "threads = 1\nthreads = 2\n", "using the defaults"),
    _config("syntax-bare-string", "theme = midnight\n", "using the defaults"),
    _config("not-utf8", b'theme = "caf\xe9"\n', "not UTF-8 text"),
    _config("byte-order-mark", "\ufeffvolume = 0.5\n"),
    _config("nul-in-file", "volume = 0.5\x00\n", "using the defaults"),
    _config("threads-text", 'threads = "4"\n', "threads must be an integer >= 0"),
    _config("threads-negative", "threads = -1\n", "threads must be an integer >= 0"),
    _config("threads-huge", "threads = 9223372036854775807\n", f"using {max_threads()}"),
    _config("threads-float", "threads = 2.5\n", "threads must be an integer"),
    _config("duration-text", 'duration = "long"\n', "duration must be a number of seconds"),
    _config("duration-nan", "duration = nan\n", "duration must be a number"),
    _config("duration-zero", "duration = 0\n", "between 1 and 300"),
    _config("volume-past-max", "volume = 1.5\n", "volume must be a number between 0 and 1"),
    _config("volume-inf", "volume = inf\n", "volume must be a number between 0 and 1"),
    _config("volume-bool", "volume = true\n", "volume must be a number"),
    _config("loudness-word", 'loudness = "quiet"\n', LOUDNESS),
    _config("cache-inf", "cache_max_gb = inf\n", "cache_max_gb must be a number of GB"),
    _config("cache-huge", "cache_max_gb = 1e300\n", "cache_max_gb must be a number of GB"),
    _config("cache-negative", "cache_max_gb = -1\n", "cache_max_gb must be"),
    _config("lookahead-zero", "lookahead = 0\n", "lookahead must be an integer between 1 and 8"),
    _config("lookahead-past-max", "lookahead = 9\n", "lookahead must be an integer between"),
    _config("crossfade-negative", "crossfade = -1\n", "crossfade must be a number of seconds"),
    _config("flow-text", 'flow = "yes"\n', "flow must be true or false"),
    _config("prompts-empty-list", "prompts = []\n", "prompts must be a non-empty list"),
    _config("prompts-string", 'prompts = "rain"\n', "prompts must be a list of strings"),
    _config("prompts-blank", 'prompts = ["", "  "]\n', "prompts must be a non-empty list"),
    _config("prompts-numbers", "prompts = [1, 2]\n", "prompts must be a non-empty list"),
    _config("prompts-nul-and-unicode", 'prompts = ["a\\u0000b", "雨の夜 ♪"]\n'),
    _config("engine-unknown", 'engine = "foo"\n', "engine must be one of musicgen, ace-step"),
    _config("device-unknown", 'device = "tpu"\n', "device must be one of"),
    _config("theme-empty", 'theme = ""\n', "theme must be a theme name"),
    _config("unknown-key", "colour = 1\n", "unknown key 'colour'"),
    _config("unknown-key-control-chars", '"a\\nb" = 1\n', "unknown key 'a\\nb'"),
    _config("unknown-table", "[foo]\nbar = 1\n", "unknown key 'foo'"),
    _config("engine-table-not-table", "musicgen = 3\n", "musicgen must be a table"),
    _config("engine-params-key", "engine_params = 1\n", "unknown key 'engine_params'"),
    _config("musicgen-top-k-zero", "[musicgen]\ntop_k = 0\n", "top-k must be >= 1"),
    _config("musicgen-top-k-text", '[musicgen]\ntop_k = "all"\n', "top-k must be a whole number"),
    # Declared without a maximum: the model's vocabulary refuses it when the run starts.
    _config("musicgen-top-k-huge", f"[musicgen]\ntop_k = {BIG}\n", "top-k must be <= 2048", 2),
    _config("musicgen-temperature-nan", "[musicgen]\ntemperature = nan\n", "must be a number"),
    _config("musicgen-unknown-param", "[musicgen]\nsteps = 8\n", "unknown key 'steps'"),
    _config("musicgen-nested-table", "[musicgen.top_k]\nx = 1\n", "top-k must be a whole number"),
    _config("ace-bpm-past-max", "[ace-step]\nbpm = 1000\n", "bpm must be between 1 and 400"),
    _config("ace-key-number", "[ace-step]\nkeyscale = 5\n", "must be text"),
    _config("keymap-not-table", 'keymap = "q"\n', "keymap must be a table"),
    _config("keymap-value-number", '[keymap]\n"lofi.quit" = 5\n', "lofi.quit must be keys"),
    _config("keymap-unknown-id", '[keymap]\n"lofi.dance" = "d"\n', "unknown binding id"),
    _config("keymap-conflict", '[keymap]\n"lofi.quit" = "n"\n', "conflicts with lofi.skip"),
    _config("megabyte-of-comments", "# " + "x" * 1_000_000 + "\nvolume = 0.5\n"),
]


def _broken_copy(
    source: Path, change: Callable[[Path], None], *, keep: tuple[str, ...] = ()
) -> Callable[[Path], None]:
    """A model dir in tmp/model: links to ``source``'s files, then ``change`` applied."""

    def setup(tmp: Path) -> None:
        model = tmp / "model"
        model.mkdir()
        for item in source.iterdir():
            if item.is_file():
                (model / item.name).symlink_to(item)
        change(model)

    return setup


def _replace(name: str, content: bytes | str | None) -> Callable[[Path], None]:
    """Replace ``name`` by ``content`` (None: remove it)."""

    def change(model: Path) -> None:
        target = model / name
        target.unlink()
        if isinstance(content, str):
            target.write_text(content)
        elif content is not None:
            target.write_bytes(content)

    return change


DECODERS = ("decoder_model_merged.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")


def _truncate(*names: str) -> Callable[[Path], None]:
    def change(model: Path) -> None:
        for name in names:
            data = (model / name).read_bytes()
            _replace(name, data[: len(data) // 3])(model)

    return change


def _json_edit(name: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def change(model: Path) -> None:
        data = json.loads((model / name).read_text())
        edit(data)
        _replace(name, json.dumps(data))(model)

    return change


def _sub(section: str, key: str, value: object) -> Callable[[dict], None]:
    return lambda data: data[section].__setitem__(key, value)


def _md(
    id: str,
    change: Callable[[Path], None],
    says: str,
    source: Path = TINY,
    code: int = 2,
) -> Case:
    engine = ("--engine", "ace-step", "--duration", "5") if source == ACE else ()
    argv = (*RENDER, *engine, "--model", "{tmp}/model")
    return Case("model dirs", id, argv, code, says, setup=_broken_copy(source, change))


def _empty(model: Path) -> None:
    for item in model.iterdir():
        item.unlink()


def _onnx_dir(model: Path) -> None:
    (model / "text_encoder.onnx").unlink()
    (model / "text_encoder.onnx").mkdir()


def _dangling(model: Path) -> None:
    (model / "encodec_decode.onnx").unlink()
    (model / "encodec_decode.onnx").symlink_to(model / "gone.onnx")


MODEL_CASES = [
    _md("empty-dir", _empty, "missing"),
    _md("no-config-json", _replace("config.json", None), "config.json"),
    _md("config-json-invalid", _replace("config.json", "{ not json"), "config.json"),
    _md("config-json-array", _replace("config.json", "[]"), "config.json"),
    _md("config-json-empty-file", _replace("config.json", ""), "config.json"),
    _md(
        "config-json-wrong-type",
        _json_edit("config.json", _sub("decoder", "num_codebooks", "four")),
        "config.json",
    ),
    _md(
        "config-sampling-rate-zero",
        _json_edit("config.json", _sub("audio_encoder", "sampling_rate", 0)),
        "sampling_rate",
    ),
    _md(
        "config-codebooks-disagree-with-graph",
        _json_edit("config.json", _sub("decoder", "num_codebooks", 8)),
        "num_codebooks",
    ),
    _md(
        "generation-config-invalid",
        _replace("generation_config.json", "{ not json"),
        "generation_config.json",
    ),
    _md(
        "generation-config-wrong-type",
        _json_edit("generation_config.json", lambda data: data.update(guidance_scale="high")),
        "generation_config.json",
    ),
    _md("no-generation-config", _replace("generation_config.json", None), "", code=0),
    _md("no-tokenizer", _replace("tokenizer.json", None), "tokenizer.json"),
    _md("tokenizer-invalid-json", _replace("tokenizer.json", "{ nope"), "tokenizer.json"),
    _md("tokenizer-wrong-content", _replace("tokenizer.json", "{}"), "tokenizer.json"),
    _md("decoders-truncated", _truncate(*DECODERS), "decoder"),
    _md("encodec-empty", _replace("encodec_decode.onnx", b""), "encodec_decode.onnx"),
    _md("encodec-dangling-link", _dangling, "encodec_decode.onnx"),
    _md("text-encoder-random", _replace("text_encoder.onnx", os.urandom(4096)), "text_encoder"),
    _md("text-encoder-is-dir", _onnx_dir, "text_encoder.onnx"),
    _md("ace-no-manifest", _replace("acestep.json", None), "acestep.json", source=ACE),
    _md("ace-manifest-invalid", _replace("acestep.json", "{"), "acestep.json", source=ACE),
    _md(
        "ace-silence-latent-corrupt",
        _replace("silence_latent.npy", b"\x93NUMPY garbage"),
        "silence_latent.npy",
        source=ACE,
    ),
    _md("ace-transformer-truncated", _truncate("transformer.onnx"), "transformer", source=ACE),
    Case("model dirs", "musicgen-as-ace-step", (*ACE_RENDER[:-1], "{tiny}"), says="acestep.json"),
]

CASES = NUMBER_CASES + STRING_CASES + PATH_CASES + CONFIG_CASES + MODEL_CASES


@pytest.fixture(scope="session")
def tiny_derived(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny fixture's fast decoder, built once into a models directory of its own: each
    case starts from a copy, as on a machine where lofi has run before, so the one line the
    case checks is its own and not the first-use build notice."""
    from lofitui.engines.musicgen import MusicGenEngine
    from lofitui.engines.runtime import RuntimeOptions
    from lofitui.models.derived import cache_root, derived_dir

    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOFI_MODELS_DIR", str(root))
        options = RuntimeOptions("cpu", 1)
        MusicGenEngine.prepare(TINY, options, lambda _msg: None, derived=derived_dir(TINY))
        return cache_root()


@pytest.fixture
def lofi_run(
    lofi_home: Path, monkeypatch: pytest.MonkeyPatch, capfdbinary, tiny_derived: Path
) -> Iterator[Callable]:
    """``lofi ARGV`` in-process in an isolated home; (exit code, stdout, stderr)."""
    shutil.copytree(tiny_derived, lofi_home / "models" / tiny_derived.name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(lofi_home)
    logger = logging.getLogger("lofitui")
    before = list(logger.handlers)

    def run(argv: list[str]) -> tuple[int, str, str]:
        code = main(argv)
        out, err = capfdbinary.readouterr()  # bytes: paths that are not UTF-8 come back intact
        return code, os.fsdecode(out), err.decode("utf-8", "backslashreplace")

    yield run
    for handler in logger.handlers[len(before) :]:  # main adds the log file's handler
        logger.removeHandler(handler)
        handler.close()


def _expand(arg: str, tmp: Path) -> str:
    return arg.replace("{tmp}", str(tmp)).replace("{tiny}", str(TINY)).replace("{ace}", str(ACE))


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_bad_input(case: Case, lofi_run, lofi_home: Path) -> None:
    if case.setup is not None:
        case.setup(lofi_home)
    if case.config is not None:
        path = lofi_home / "xdg-config" / "lofi" / "config.toml"
        path.parent.mkdir(parents=True)
        data = case.config.encode() if isinstance(case.config, str) else case.config
        path.write_bytes(data)
    argv = [_expand(arg, lofi_home) for arg in case.argv]
    code, out, err = lofi_run(argv)
    assert "Traceback" not in err + out
    said = [line for line in err.splitlines() if line.startswith("lofi:")]
    assert code == case.code, err
    if code == 2:
        assert err.count("\n") == 1 and len(said) == 1, err  # nothing else on stderr
        assert said[0].startswith("lofi: error: ") and case.says in said[0], said
    elif case.says:
        assert len(said) == 1 and said[0].startswith("lofi: warning: "), err
        assert case.says in said[0], said
    else:
        assert said == [], err
    if case.not_says:
        assert case.not_says not in said[0]
    if case.config is not None and case.says and code == 0:  # each warning is logged too
        log = (lofi_home / "xdg-state" / "lofi" / "log" / "lofi.log").read_text()
        assert said[0].removeprefix("lofi: warning: ") in log
    if code == 0:  # one path printed per track, each a complete WAV (finite audio) + sidecar
        out_dir = Path(argv[max(i for i, arg in enumerate(argv) if arg == "--out") + 1])
        wavs = sorted(out_dir.glob("*.wav"))
        assert len(wavs) == len(out.splitlines()) >= 1, (out, err)
        for wav in wavs:
            assert read_wav(wav).frames > 0
            assert wav.with_suffix(".json").is_file()


def test_a_path_that_is_not_utf8_prints_on_a_strict_stdout(tmp_path: Path, cli_env: dict) -> None:
    out = os.fsencode(tmp_path) + b"/caf\xe9"
    result = subprocess.run(
        [sys.executable, "-m", "lofitui", *RENDER[:-2], "--out", out, "--model", str(TINY)],
        env={**os.environ, **cli_env, "PYTHONIOENCODING": "utf-8:strict"},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == out + b"/piano-1.wav\n"


def test_the_table_covers_every_group_and_is_big_enough() -> None:
    """The issue asks for at least 60 distinct cases across these groups."""
    groups = {case.group for case in CASES}
    assert groups == {"numbers", "strings", "paths", "config", "model dirs"}
    assert len({(case.group, case.id) for case in CASES}) == len(CASES) >= 60


def test_every_numeric_option_is_in_the_table() -> None:
    """Each option taking a number appears at and past its limits: none is forgotten when an
    engine declares a new parameter."""
    from lofitui.cli.options import build_parser

    numeric = {
        option
        for action in build_parser()._actions
        if getattr(action.type, "__name__", "") in ("int", "float")
        for option in action.option_strings
    }
    assert len(numeric) >= 10 and numeric <= TRIED, numeric - TRIED


def test_many_config_warnings_all_reach_the_log(lofi_run, lofi_home: Path) -> None:
    """More bad keys than fit on a screen: each warning printed and each in the log file."""
    path = lofi_home / "xdg-config" / "lofi" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"bad_key_{i} = {i}\n" for i in range(40)))
    code, _, err = lofi_run([_expand(arg, lofi_home) for arg in TINY_RENDER])
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("lofi: warning:")]
    assert len(warnings) == 40
    log = (lofi_home / "xdg-state" / "lofi" / "log" / "lofi.log").read_text()
    assert all(f"unknown key 'bad_key_{i}'" in log for i in range(40))


def test_config_fifo_is_not_read(lofi_run, lofi_home: Path) -> None:
    """A FIFO named config.toml would block the read forever: it is skipped with a warning."""
    path = lofi_home / "xdg-config" / "lofi" / "config.toml"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    code, _, err = lofi_run([_expand(arg, lofi_home) for arg in TINY_RENDER])
    assert code == 0, err
    [line] = [line for line in err.splitlines() if line.startswith("lofi:")]
    assert line == f"lofi: warning: {path} is not a file; using the defaults"


def test_config_directory_is_not_read(lofi_run, lofi_home: Path) -> None:
    path = lofi_home / "xdg-config" / "lofi" / "config.toml"
    path.mkdir(parents=True)
    code, _, err = lofi_run([_expand(arg, lofi_home) for arg in TINY_RENDER])
    assert code == 0, err
    assert err.count("lofi: warning:") == 1 and "is not a file" in err
