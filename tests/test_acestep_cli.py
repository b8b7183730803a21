"""ACE-Step from the command line: render, bad input, the catalog, `lofi models export ace-step`.

Runs without torch: renders use the committed tiny export (tests/fixtures/acestep-tiny), and the
export command's torch step is replaced in-process by a copy of that export, so the part lofi
owns (source resolution, consent, the verified hub download, the manifest, the listing) is real.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import ensure_model_asking as ensure_model
from cli_helpers import one_error_line, run_lofi
from hubserver import FakeHub

from lofitui.audio.wav import read_wav
from lofitui.cli import export as export_cmd
from lofitui.cli import models as commands
from lofitui.convert.acestep import absent_components
from lofitui.errors import ModelError
from lofitui.models import catalog, locate_model, store

ROOT = Path(__file__).resolve().parent.parent
TURBO = ROOT / "tests" / "fixtures" / "acestep-tiny" / "turbo"
PROMPT = "lofi hip hop, mellow piano"


def install_fixture(models_dir: Path, name: str = "ace-step-turbo") -> Path:
    """An exported model copied by hand into the models directory."""
    directory = models_dir / name
    shutil.copytree(TURBO, directory, ignore=shutil.ignore_patterns("reference.*"))
    return directory


# -- render --------------------------------------------------------------------------------------


def test_render_writes_48k_stereo_wav_and_sidecar(tmp_path: Path, cli_env: dict) -> None:
    result = run_lofi(
        *("--render", PROMPT, "--engine", "ace-step", "--model", str(TURBO)),
        *("--duration", "5", "--seed", "7", "--out", "out"),
        *("--lyrics", "[verse]\nla la la", "--bpm", "90", "--key", "a minor"),
        *("--time-signature", "4/4", "--scheduler", "heun", "--steps", "4"),
        cwd=tmp_path,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr
    wav = tmp_path / "out" / "lofi-hip-hop-mellow-piano-7.wav"
    assert result.stdout.split() == [str(Path("out") / wav.name)]
    audio = read_wav(wav)
    assert audio.sample_rate == 48000 and audio.channels == 2 and audio.frames == 5 * 48000
    assert 0.5 < float(abs(audio.samples).max()) <= 1.0
    meta = json.loads(wav.with_suffix(".json").read_text())
    assert meta["engine"] == "ace-step" and meta["model"] == str(TURBO) and meta["seed"] == 7
    assert meta["duration_s"] == 5.0 and meta["sample_rate"] == 48000 and meta["channels"] == 2
    assert meta["params"] == {
        "bpm": 90,
        "guidance": 1.0,  # the turbo model's default, recorded from its acestep.json
        "keyscale": "A minor",
        "lyrics": "[verse]\nla la la",
        "scheduler": "heun",
        "shift": 3.0,
        "steps": 4,
        "timesignature": "4",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--duration", "3"), "between 5 and 240 seconds for ace-step (got 3)"),
        (("--duration", "300"), "between 5 and 240 seconds for ace-step (got 300)"),
        (("--steps", "0"), "steps must be between 1 and 200"),
        (("--scheduler", "ddim"), "invalid choice: 'ddim'"),
        (("--bpm", "-20"), "bpm must be between"),
        (("--shift", "0"), "shift must be between 0.01 and 100"),
        (("--guidance", "-1"), "guidance must be between 0 and 100"),
        (("--key", "H minor"), "--key 'H minor'"),
        (("--time-signature", "5/4"), "--time-signature '5/4'"),
        (("--top-k", "5"), "--top-k only applies to --engine musicgen"),
    ],
)
def test_bad_acestep_input_is_one_line_before_loading(
    tmp_path: Path, cli_env: dict, args: tuple[str, ...], message: str
) -> None:
    # The model does not exist: an error about the input proves it came before loading.
    missing = str(tmp_path / "no-such-model")
    result = run_lofi(
        *("--render", PROMPT, "--engine", "ace-step", "--model", missing, "--duration", "5"),
        *args,
        cwd=tmp_path,
        env=cli_env,
    )
    line = one_error_line(result)
    assert message in line, line
    assert not list(tmp_path.glob("*.wav"))


def test_acestep_options_are_refused_for_musicgen(tmp_path: Path, cli_env: dict) -> None:
    result = run_lofi(
        *("--render", PROMPT, "--bpm", "90", "--lyrics", "la", "--duration", "2"),
        cwd=tmp_path,
        env=cli_env,
    )
    assert "--lyrics, --bpm only apply to --engine ace-step" in one_error_line(result)


def test_help_has_an_acestep_group(tmp_path: Path, cli_env: dict) -> None:
    result = run_lofi("--help", cwd=tmp_path, env=cli_env)
    assert result.returncode == 0
    assert "ACE-Step (--engine ace-step" in result.stdout
    for flag in ("--lyrics", "--bpm", "--key", "--time-signature", "--steps", "--shift"):
        assert flag in result.stdout
    assert "{euler,heun,pingpong}" in result.stdout


# -- catalog, listing, offline use ---------------------------------------------------------------


def test_exported_model_in_models_dir_is_installed_and_renders_offline(
    tmp_path: Path, cli_env: dict
) -> None:
    install_fixture(Path(cli_env["LOFI_MODELS_DIR"]))
    listing = run_lofi("models", "list", cwd=tmp_path, env=cli_env)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines() if line.strip()}
    turbo = rows["ace-step-turbo"]
    assert "ace-step" in turbo and "export" in turbo and "installed" in turbo
    assert "not installed" not in turbo and "~11.5 GB" in turbo
    assert "not installed" in rows["ace-step-base"] and "export" in rows["ace-step-base"]
    assert "lofi models export ace-step" in listing.stdout
    assert "pip install -e '.[export-acestep]'" in listing.stdout

    for model in (("--model", "ace-step-turbo"), ()):  # named, and the engine's default
        result = run_lofi(
            *("--render", PROMPT, "--engine", "ace-step", *model, "--duration", "5"),
            *("--seed", "3", "--out", "out"),
            cwd=tmp_path,
            env=cli_env,
        )
        assert result.returncode == 0, result.stderr
        wav = tmp_path / result.stdout.split()[0]
        assert read_wav(wav).channels == 2
        assert json.loads(wav.with_suffix(".json").read_text())["model"] == "ace-step-turbo"


def test_missing_exported_model_says_to_run_the_export(tmp_path: Path, cli_env: dict) -> None:
    result = run_lofi(
        *("--render", PROMPT, "--engine", "ace-step", "--duration", "5"), cwd=tmp_path, env=cli_env
    )
    line = one_error_line(result)
    assert "'ace-step-turbo' is not installed" in line
    assert "lofi models export ace-step`" in line and "[export-acestep]" in line
    download = run_lofi("models", "download", "ace-step-base", "--yes", cwd=tmp_path, env=cli_env)
    assert "lofi models export ace-step --source base" in one_error_line(download)


def test_catalog_entries_and_ensure_model(models_env: Path) -> None:
    names = [e.name for e in catalog.entries("ace-step")]
    assert names == ["ace-step-turbo", "ace-step-turbo-fp16", "ace-step-base", "ace-step-base-fp16"]
    turbo = catalog.get_entry("ace-step-turbo")
    assert turbo.is_export and turbo.install_command == "lofi models export ace-step"
    assert turbo.params["steps"] == 8 and catalog.get_entry("ace-step-base").params["steps"] == 32
    assert catalog.get_entry("ace-step-base-fp16").install_command.endswith("--source base --fp16")
    assert 11e9 < turbo.size < 12e9 and 5e9 < catalog.get_entry("ace-step-turbo-fp16").size < 6e9
    assert catalog.default_model("ace-step") == "ace-step-turbo"
    assert catalog.find_source("turbo") is catalog.find_source(
        catalog.ACESTEP_SOURCES["turbo"].repo
    )

    with pytest.raises(ModelError, match=r"run `lofi models export ace-step` \(needs pip"):
        ensure_model("ace-step-turbo", engine="ace-step", assume_yes=True, offline=False)
    with pytest.raises(ModelError, match="lofi models export ace-step"):
        locate_model("ace-step-turbo")
    directory = install_fixture(models_env)
    assert store.state_of(turbo) is store.State.MANUAL
    assert locate_model("ace-step-turbo") == directory
    assert ensure_model("ace-step-turbo", engine="ace-step", assume_yes=False, offline=True) == (
        directory
    )


# -- lofi models export ace-step ---------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_export_without_torch_names_the_extra(tmp_path: Path, cli_env: dict) -> None:
    result = run_lofi("models", "export", "ace-step", "--yes", cwd=tmp_path, env=cli_env)
    line = one_error_line(result)
    assert "torch" in line and "pip install -e '.[export-acestep]'" in line
    assert not Path(cli_env["LOFI_MODELS_DIR"]).exists()  # nothing downloaded or written


@pytest.fixture
def fake_exporter(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path, bool]]:
    """The torch step replaced by a copy of the tiny export; records what it was asked."""
    calls: list[tuple[Path, Path, bool]] = []

    def run_export(kind, source_dir: Path, dest: Path, fp16: bool, err: object, code) -> None:
        assert kind.engine == "ace-step" and code is None
        assert (source_dir / "model_index.json").is_file()
        calls.append((source_dir, dest, fp16))
        partial = dest.with_name(dest.name + ".partial")
        shutil.copytree(TURBO, partial, ignore=shutil.ignore_patterns("reference.*"))
        if dest.exists():
            shutil.rmtree(dest)
        partial.rename(dest)

    monkeypatch.setattr(export_cmd, "require_export_extra", lambda kind: None)
    monkeypatch.setattr(export_cmd, "run_export", run_export)
    return calls


# What diffusers' converter writes: two components the exporter does not read, which lofi leaves
# on the hub and hands to from_pretrained as None.
MODEL_INDEX = {
    "_class_name": "AceStepPipeline",
    "_diffusers_version": "0.37.0",
    "audio_token_detokenizer": ["diffusers", "AceStepAudioTokenDetokenizer"],
    "audio_tokenizer": ["diffusers", "AceStepAudioTokenizer"],
    "condition_encoder": ["diffusers", "AceStepConditionEncoder"],
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "Qwen3Model"],
    "tokenizer": ["transformers", "Qwen2TokenizerFast"],
    "transformer": ["diffusers", "AceStepTransformer1DModel"],
    "vae": ["diffusers", "AutoencoderOobleck"],
}
UNFETCHED = {
    "audio_tokenizer/config.json": b"{}",
    "audio_tokenizer/diffusion_pytorch_model.safetensors": b"\x07" * 20_000,
    "audio_token_detokenizer/config.json": b"{}",
    "audio_token_detokenizer/diffusion_pytorch_model.safetensors": b"\x08" * 20_000,
    "README.md": b"# a model card",
}


def source_files(entry: catalog.ModelEntry) -> dict[str, bytes]:
    files = dict(UNFETCHED)
    for f in entry.files:
        if f.remote == "model_index.json":
            files[f.remote] = json.dumps(MODEL_INDEX).encode()
        elif f.remote.endswith(".json"):
            files[f.remote] = json.dumps({"file": f.remote, "is_turbo": True}).encode()
        else:
            files[f.remote] = (f.remote.encode() * 2000)[:30_000]
    return files


def test_export_from_the_hub_asks_downloads_verifies_and_installs(
    fake_hub: FakeHub, fake_exporter: list, capsys: pytest.CaptureFixture
) -> None:
    source = catalog.ACESTEP_SOURCES["turbo"]
    fake_hub.add_repo_at(source.repo, source_files(source), source.revision)

    assert commands.main(["export", "ace-step"]) == 2  # headless, no --yes: nothing happens
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "without consent" in err[0] and source.repo in err[0]
    assert fake_hub.requests == [] and fake_exporter == []

    assert commands.main(["export", "ace-step", "--yes", "--keep-source"]) == 0
    out = capsys.readouterr().out
    assert f"ace-step-turbo: exported from {source.repo}" in out
    ((src_dir, dest, fp16),) = fake_exporter
    assert src_dir == export_cmd.sources_dir() / source.name and not fp16
    assert dest == store.model_dir("ace-step-turbo")
    for f in source.files:  # every file verified against the hub's hash before use
        assert (src_dir / f.local).read_bytes() == fake_hub.repos[source.repo].files[f.remote]
    assert store.state_of(source, src_dir) is store.State.INSTALLED
    # chosen from the listing at the pinned commit: the components the exporter reads, no more
    trees = [r.path for r in fake_hub.requests if "/tree/" in r.path]
    assert trees == [f"/api/models/{source.repo}/tree/{source.revision}"]
    fetched = {str(p.relative_to(src_dir)) for p in src_dir.rglob("*") if p.is_file()}
    assert fetched == {f.local for f in source.files} | {catalog.MANIFEST_NAME}
    # ... and the pipeline is loaded with the components it did not fetch passed as None
    assert absent_components(src_dir) == {"audio_tokenizer": None, "audio_token_detokenizer": None}

    turbo = catalog.get_entry("ace-step-turbo")
    assert store.state_of(turbo) is store.State.INSTALLED
    manifest = store.read_manifest(dest)
    assert manifest is not None and manifest.engine == "ace-step" and manifest.repo == source.repo
    assert manifest.commit == fake_hub.repos[source.repo].commit
    assert "transformer.onnx" in manifest.files and "null_condition_emb.npy" in manifest.files
    assert commands.main(["verify", "ace-step-turbo"]) == 0
    assert commands.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert ".sources" not in listing and "ace-step-turbo.partial" not in listing

    # Again, offline: the kept checkpoint is used; replacing needs --yes; the source is deleted.
    asked = len(fake_hub.requests)
    assert commands.main(["export", "ace-step", "--offline"]) == 2
    assert "already exists: pass --yes" in capsys.readouterr().err
    assert commands.main(["export", "ace-step", "--offline", "--yes"]) == 0
    assert "deleted the downloaded checkpoint" in capsys.readouterr().out
    assert len(fake_hub.requests) == asked and not src_dir.exists()
    assert store.state_of(turbo) is store.State.INSTALLED


def test_export_offline_without_the_checkpoint(
    models_env: Path, fake_exporter: list, capsys: pytest.CaptureFixture
) -> None:
    assert commands.main(["export", "ace-step", "--source", "base", "--offline", "--yes"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    repo = catalog.ACESTEP_SOURCES["base"].repo
    assert f"cannot download the checkpoint {repo}" in line and "--source DIR" in line
    assert fake_exporter == []


def test_export_from_a_local_directory_uses_no_network(
    models_env: Path, tmp_path: Path, fake_exporter: list, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "checkpoint"
    (src / "transformer").mkdir(parents=True)
    (src / "model_index.json").write_text("{}")
    (src / "transformer" / "config.json").write_text(
        json.dumps({"is_turbo": False, "model_version": "sft", "hidden_size": 2048})
    )
    assert commands.main(["export", "ace-step", "--source", str(src), "--fp16"]) == 0
    ((called_src, dest, fp16),) = fake_exporter
    assert called_src == src.resolve() and fp16 and dest.name == "ace-step-sft-fp16"
    manifest = store.read_manifest(dest)
    assert manifest is not None and manifest.repo == str(src.resolve())
    assert "ace-step-sft-fp16" in capsys.readouterr().out
    assert locate_model("ace-step-sft-fp16") == dest

    cases = [
        (["--source", str(tmp_path)], "no model_index.json"),
        (["--source", "someone/other-ace-step"], "hf download someone/other-ace-step"),
        (["--source", "nowhere"], "no such directory"),
        (["--source", str(src), "--name", "../x"], "--name '../x'"),
        (["--source", str(src), "--name", "musicgen-small"], "catalog's musicgen model"),
    ]
    for args, message in cases:
        assert commands.main(["export", "ace-step", *args]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("lofi: error: ") and message in line, line
    assert commands.main(["export", "musicgen"]) == 2
    assert "lofi exports ace-step and ace-step-v1" in capsys.readouterr().err
    assert len(fake_exporter) == 1
