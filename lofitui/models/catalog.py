"""The models lofi knows by name: where each one comes from and which files it needs.

Local layout (every entry, every engine): one flat directory per model,
``models_dir()/<name>/``, holding the files under their ``local`` names (``config.json``,
``tokenizer.json``, ``*.onnx``, and any ``*.onnx_data`` external weights next to the graph that
refers to them) plus ``lofi-model.json``, the manifest written after a verified download. A
directory with the same files copied in by hand works too: it is used as is, with no network.

Sizes are approximate (they tell the user what to expect before anything is fetched); the
download uses the exact sizes and SHA-256 the hub records for the pinned revision.

ACE-Step models are not downloaded ready-made: ``lofi models export ace-step`` converts a
diffusers-format checkpoint (one of ``ACESTEP_SOURCES``, fetched through the same consent and
verified download as any catalog model, or a local directory) into ONNX once. Their entries
(``export`` set) list the exporter's output files; ``repo`` names the checkpoint they come from.

MusicGen decoder choice: the small models fetch the split pair (``decoder_model.onnx`` for the
first step, ``decoder_with_past_model.onnx`` after), measured faster on CPU than the merged graph.
Medium and large fetch the merged graph only: their split pair would double a multi-GB download
for a ~5 % speed difference. The engine tells the two apart by which files are present.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from lofitui.engines.base import BUILTIN_MODEL
from lofitui.errors import UsageError

KB = 1_000
MB = 1_000_000
GB = 1_000_000_000

MANIFEST_NAME = "lofi-model.json"


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: its path in the source repo and its name in the model directory."""

    remote: str
    local: str
    size: int  # approximate, bytes

    @staticmethod
    def flat(remote: str, size: int) -> ModelFile:
        """A file stored locally under its base name (the usual case)."""
        return ModelFile(remote=remote, local=remote.rsplit("/", 1)[-1], size=size)


@dataclass(frozen=True)
class ModelEntry:
    """A named, downloadable model."""

    name: str
    engine: str
    repo: str
    files: tuple[ModelFile, ...]
    description: str
    variant: str  # short: "fp32, split decoder"
    revision: str = "main"
    params: Mapping[str, int | float | str | bool] = field(default_factory=dict)
    # Made locally, not downloaded: the ``lofi models export`` arguments that make it.
    export: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def is_export(self) -> bool:
        return self.export is not None

    @property
    def install_command(self) -> str:
        """The command that puts this model on disk."""
        if self.export is not None:
            return f"lofi models export {self.export}"
        return f"lofi models download {self.name}"

    @property
    def size(self) -> int:
        """Approximate download size in bytes."""
        return sum(f.size for f in self.files)

    @property
    def local_names(self) -> tuple[str, ...]:
        return tuple(f.local for f in self.files)


_MUSICGEN_PARAMS = {
    # audiocraft's defaults (reference §1); transformers would fall back to top_k 50.
    "top_k": 250,
    "temperature": 1.0,
    "guidance_scale": 3.0,
    "max_duration_s": 30.0,
}


def _gabotechs(
    name: str,
    size_dir: str,
    onnx_dir: str,
    onnx: Iterable[tuple[str, int]],
    *,
    description: str,
    variant: str,
) -> ModelEntry:
    files = (
        ModelFile.flat(f"{size_dir}/config.json", 8 * KB),
        ModelFile.flat(f"{size_dir}/tokenizer.json", int(2.4 * MB)),
        *(ModelFile.flat(f"{onnx_dir}/{file}", size) for file, size in onnx),
    )
    return ModelEntry(
        name=name,
        engine="musicgen",
        repo="gabotechs/music_gen",
        files=files,
        description=description,
        variant=variant,
        params=_MUSICGEN_PARAMS,
    )


MUSICGEN_ENTRIES: tuple[ModelEntry, ...] = (
    _gabotechs(
        "musicgen-small",
        "small",
        "small_fp32",
        [
            ("text_encoder.onnx", 439 * MB),
            ("decoder_model.onnx", int(1.69 * GB)),
            ("decoder_with_past_model.onnx", int(1.49 * GB)),
            ("encodec_decode.onnx", 118 * MB),
        ],
        description="MusicGen small (300M), full precision: the default, best on CPU",
        variant="fp32, split decoder",
    ),
    _gabotechs(
        "musicgen-small-fp16",
        "small",
        "small_fp16",
        [
            ("text_encoder.onnx", 219 * MB),
            ("decoder_model.onnx", 846 * MB),
            ("decoder_with_past_model.onnx", 744 * MB),
            ("encodec_decode.onnx", int(59.1 * MB)),
        ],
        description="MusicGen small, half precision: half the download; for GPUs/CoreML "
        "(slower than fp32 on most CPUs)",
        variant="fp16, split decoder",
    ),
    _gabotechs(
        "musicgen-medium",
        "medium",
        "medium_fp32",
        [
            ("text_encoder.onnx", 439 * MB),
            ("decoder_model_merged.onnx", 2 * MB),
            ("decoder_model_merged.onnx_data", int(6.2 * GB)),
            ("encodec_decode.onnx", 118 * MB),
        ],
        description="MusicGen medium (1.5B), full precision: richer, about 5x slower than small",
        variant="fp32, merged decoder",
    ),
    _gabotechs(
        "musicgen-medium-fp16",
        "medium",
        "medium_fp16",
        [
            ("text_encoder.onnx", 219 * MB),
            ("decoder_model_merged.onnx", 2 * MB),
            ("decoder_model_merged.onnx_data", int(3.1 * GB)),
            ("encodec_decode.onnx", int(59.1 * MB)),
        ],
        description="MusicGen medium, half precision: for GPUs/CoreML",
        variant="fp16, merged decoder",
    ),
    _gabotechs(
        "musicgen-large",
        "large",
        "large_fp32",
        [
            ("text_encoder.onnx", 439 * MB),
            ("decoder_model_merged.onnx", 3 * MB),
            ("decoder_model_merged.onnx_data", int(13.2 * GB)),
            ("encodec_decode.onnx", 118 * MB),
        ],
        description="MusicGen large (3.3B), full precision: needs a GPU to keep up",
        variant="fp32, merged decoder",
    ),
    ModelEntry(
        name="musicgen-small-q8",
        engine="musicgen",
        repo="Xenova/musicgen-small",
        files=(
            ModelFile.flat("config.json", 8 * KB),
            ModelFile.flat("generation_config.json", 1 * KB),
            ModelFile.flat("tokenizer.json", int(2.4 * MB)),
            ModelFile.flat("onnx/text_encoder.onnx", 439 * MB),
            # The 8-bit decoder is stored under the plain name: the engine needs no special case.
            ModelFile(
                "onnx/decoder_model_merged_quantized.onnx", "decoder_model_merged.onnx", 430 * MB
            ),
            ModelFile.flat("onnx/encodec_decode.onnx", 118 * MB),
        ),
        description="MusicGen small with an 8-bit decoder (Transformers.js export): "
        "the smallest download, about twice as fast on CPU, slightly lower quality",
        variant="int8, merged decoder",
        params=_MUSICGEN_PARAMS,
    ),
)

# -- ACE-Step 1.5 --------------------------------------------------------------------------------
#
# Sources: diffusers-format checkpoints the exporter reads (``AceStepPipeline.from_pretrained``
# layout). The 2B turbo and base (hidden 2048, 24 layers; the sizes measured in
# ../shared/reference/ace-step.md) are published in diffusers format as conversions made with
# diffusers' ``scripts/convert_ace_step_to_diffusers.py``; the ACE-Step team's own diffusers repos
# hold the XL models (4B DiT). The repo ids and file lists below are taken from diffusers' docs
# and public code, NOT checked against the live hub (lofi was built without network): a file
# the hub lacks at the pinned revision stops the download with a message naming it, and any
# other diffusers-format checkpoint works as ``--source DIR`` after ``hf download REPO``.

_DIFFUSERS_CONFIGS = ("model_index.json", "scheduler/scheduler_config.json")


def _diffusers_source(
    name: str,
    repo: str,
    weights: Iterable[tuple[str, int]],
    *,
    description: str,
    variant: str,
) -> ModelEntry:
    """A diffusers checkpoint, stored under its own layout (sub-folders kept)."""
    folders = ("text_encoder", "condition_encoder", "transformer", "vae")
    files = (
        *(ModelFile(f, f, 1 * KB) for f in _DIFFUSERS_CONFIGS),
        *(
            ModelFile(f"{folder}/config.json", f"{folder}/config.json", 2 * KB)
            for folder in folders
        ),
        ModelFile("tokenizer/tokenizer.json", "tokenizer/tokenizer.json", int(11.4 * MB)),
        ModelFile("tokenizer/tokenizer_config.json", "tokenizer/tokenizer_config.json", 10 * KB),
        *(ModelFile(remote, remote, size) for remote, size in weights),
    )
    return ModelEntry(
        name=name,
        engine=SOURCE_ENGINE,
        repo=repo,
        files=files,
        description=description,
        variant=variant,
    )


SOURCE_ENGINE = "diffusers"
_ST = "diffusion_pytorch_model.safetensors"

# Keyed by the short name ``--source`` accepts (the repo id works too).
ACESTEP_SOURCES: Mapping[str, ModelEntry] = MappingProxyType(
    {
        "turbo": _diffusers_source(
            "acestep-v15-turbo-diffusers",
            "Runware/acestep-v15-turbo-diffusers",
            [
                ("text_encoder/model.safetensors", int(1.19 * GB)),
                (f"condition_encoder/{_ST}", int(1.22 * GB)),
                (f"transformer/{_ST}", int(3.15 * GB)),
                (f"vae/{_ST}", 337 * MB),
            ],
            description="ACE-Step 1.5 turbo (2B DiT), diffusers format, bf16",
            variant="diffusers, bf16",
        ),
        "base": _diffusers_source(
            "acestep-v15-base-diffusers",
            "Runware/acestep-v15-base-diffusers",
            [
                ("text_encoder/model.safetensors", int(1.19 * GB)),
                (f"condition_encoder/{_ST}", int(1.22 * GB)),
                (f"transformer/{_ST}", int(3.15 * GB)),
                (f"vae/{_ST}", 337 * MB),
            ],
            description="ACE-Step 1.5 base (2B DiT, needs guidance), diffusers format, bf16",
            variant="diffusers, bf16",
        ),
    }
)

# Exported model -> the source it is made from by default.
_EXPORT_NAMES = {"turbo": "ace-step-turbo", "base": "ace-step-base"}

# The runtime reads its defaults from the exported acestep.json; these are shown in the catalog.
_ACESTEP_TURBO_PARAMS = {"steps": 8, "shift": 3.0, "guidance": 1.0, "scheduler": "euler"}
_ACESTEP_BASE_PARAMS = {"steps": 32, "shift": 3.0, "guidance": 7.0, "scheduler": "euler"}


def _acestep(
    name: str, source: str, fp16: bool, sizes: tuple[int, int, int, int], params: Mapping
) -> ModelEntry:
    """An exported ACE-Step model. Graph sizes include their ``.onnx.data`` companions (weights
    over ~1.9 GB are stored next to the graph); the manifest written by the export lists them."""
    text, cond, dit, vae = sizes
    files = (
        ModelFile.flat("acestep.json", 2 * KB),
        ModelFile.flat("tokenizer.json", int(11.4 * MB)),
        ModelFile.flat("silence_latent.npy", int(3.8 * MB)),
        ModelFile.flat("text_encoder.onnx", text),
        ModelFile.flat("condition_encoder.onnx", cond),
        ModelFile.flat("transformer.onnx", dit),
        ModelFile.flat("vae_decoder.onnx", vae),
    )
    kind = ACESTEP_SOURCES[source]
    precision = "fp16" if fp16 else "fp32"
    args = "ace-step" + ("" if source == "turbo" else f" --source {source}")
    return ModelEntry(
        name=name,
        engine="ace-step",
        repo=kind.repo,
        files=files,
        description=f"ACE-Step 1.5 {source} (2B), exported to ONNX in {precision}"
        + (": 8 steps, no guidance" if source == "turbo" else ": 32 steps with APG guidance")
        + ("; for GPUs/CoreML" if fp16 else ""),
        variant=f"{precision}, {source}",
        params={**params, "max_duration_s": 240.0},
        export=args + (" --fp16" if fp16 else ""),
    )


_FP32_SIZES = (int(2.38 * GB), int(2.43 * GB), int(6.30 * GB), 333 * MB)
_FP16_SIZES = (int(1.19 * GB), int(1.22 * GB), int(3.15 * GB), 167 * MB)

ACESTEP_ENTRIES: tuple[ModelEntry, ...] = (
    _acestep("ace-step-turbo", "turbo", False, _FP32_SIZES, _ACESTEP_TURBO_PARAMS),
    _acestep("ace-step-turbo-fp16", "turbo", True, _FP16_SIZES, _ACESTEP_TURBO_PARAMS),
    _acestep("ace-step-base", "base", False, _FP32_SIZES, _ACESTEP_BASE_PARAMS),
    _acestep("ace-step-base-fp16", "base", True, _FP16_SIZES, _ACESTEP_BASE_PARAMS),
)

CATALOG: Mapping[str, ModelEntry] = MappingProxyType(
    {entry.name: entry for entry in (*MUSICGEN_ENTRIES, *ACESTEP_ENTRIES)}
)

# The model each engine uses when none is named (the one place this is decided).
DEFAULT_MODELS: Mapping[str, str] = MappingProxyType(
    {"musicgen": "musicgen-small", "ace-step": "ace-step-turbo", "synth": BUILTIN_MODEL}
)


def default_model(engine: str) -> str:
    """The model ``engine`` uses when none is named."""
    try:
        return DEFAULT_MODELS[engine]
    except KeyError:
        raise UsageError(f"engine {engine!r} has no default model: name one with --model") from None


def find_source(source: str) -> ModelEntry | None:
    """A known diffusers checkpoint by short name (``turbo``), entry name or repo id."""
    if source in ACESTEP_SOURCES:
        return ACESTEP_SOURCES[source]
    for entry in ACESTEP_SOURCES.values():
        if source in (entry.name, entry.repo):
            return entry
    return None


def export_name(source: ModelEntry | None, fp16: bool) -> str | None:
    """The catalog name an export of ``source`` gets by default (None: the caller must choose)."""
    for key, entry in ACESTEP_SOURCES.items():
        if entry is source:
            return _EXPORT_NAMES[key] + ("-fp16" if fp16 else "")
    return None


def entries(engine: str | None = None) -> list[ModelEntry]:
    """Every known model, in catalog order, optionally only one engine's."""
    return [e for e in CATALOG.values() if engine is None or e.engine == engine]


def find_entry(name: str) -> ModelEntry | None:
    return CATALOG.get(name)


def get_entry(name: str) -> ModelEntry:
    """The catalog entry called ``name``; a UsageError listing the known names otherwise."""
    entry = CATALOG.get(name)
    if entry is None:
        known = ", ".join(CATALOG)
        raise UsageError(f"unknown model {name!r}; known models: {known}")
    return entry
