"""The models lofi knows by name: where each one comes from and how its files are chosen.

Local layout (every entry, every engine): one flat directory per model,
``models_dir()/<name>/``, holding the files under their ``local`` names (``config.json``,
``tokenizer.json``, ``*.onnx``, and any ``*.onnx_data`` external weights next to the graph that
refers to them) plus ``lofi-model.json``, the manifest written after a verified download. A
directory with the same files copied in by hand works too: it is used as is, with no network.

No file list here is a guess the download relies on: each downloadable entry has a ``layout``
(:mod:`lofitui.models.layout`) that picks the files from the hub's own listing of the folders at
the pinned ``revision``, with the sizes and hashes the hub records there; the download verifies
against those. ``files`` is what the catalog expects at that revision, with approximate sizes:
shown before anything is fetched (``lofi models list``/``show``, the consent prompt's estimate)
and the names to place by hand.

Revisions: every entry pins a commit where one is known. The commits below were not read from
the hub by lofi (it was built without network access); each constant's note says where it comes
from. A revision that is a branch name is explicit and says so: it is what the hub serves today.

ACE-Step 1.5 models are not downloaded ready-made: ``lofi models export ace-step`` converts a
diffusers-format checkpoint (one of ``ACESTEP_SOURCES``, fetched through the same consent and
verified download as any catalog model, or a local directory) into ONNX once. Their entries
(``export`` set) list the exporter's output files; ``repo`` names the checkpoint they come from.
ACE-Step v1 is also downloaded as lofi.nvim publishes it (``ace-step-v1``, one folder of fixed
file names: :class:`~lofitui.models.layout.FolderLayout`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from lofitui.convert.formats import ACESTEP_PIPELINE_COMPONENTS, ACESTEP_V1_DEFAULTS
from lofitui.engines.base import BUILTIN_MODEL
from lofitui.errors import UsageError
from lofitui.models.layout import (
    DiffusersLayout,
    FolderLayout,
    FoldersLayout,
    Layout,
    MusicGenLayout,
)

KB = 1_000
MB = 1_000_000
GB = 1_000_000_000

MANIFEST_NAME = "lofi-model.json"

# gabotechs/music_gen (MusicGPT's exports). Commit from a public project that pins this repo to
# download small/ + small_fp32/ with recorded sizes and SHA-256 (diamondfsd's luna-ai-cut model
# manifest, "musicgen-small-onnx-675386ca"); the other folders at this commit are what the listing
# says when lofi downloads them.
GABOTECHS_REVISION = "675386ca686a378fe9ff739b60fdf29c310b3560"
# Xenova/musicgen-small (Transformers.js): no commit of it was found in any public source lofi
# could read; the branch is pinned by name until one is.
XENOVA_MUSICGEN_SMALL_REVISION = "main"
# Runware/acestep-v15-turbo-diffusers: commit pinned by a public project's ACE-Step LoRA preset
# (the same checkpoint as base model).
RUNWARE_TURBO_REVISION = "be23effe449c5957947f3020fd63bee23c64abe4"
# Runware/acestep-v15-base-diffusers: no commit found in any public source; branch by name.
RUNWARE_BASE_REVISION = "main"


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: its path in the source repo and its name in the model directory."""

    remote: str
    local: str
    size: int  # approximate, bytes: for display before the hub is asked

    @staticmethod
    def flat(remote: str, size: int) -> ModelFile:
        """A file stored locally under its base name (the usual case)."""
        return ModelFile(remote=remote, local=remote.rsplit("/", 1)[-1], size=size)


@dataclass(frozen=True)
class ModelEntry:
    """A named model: downloadable (``layout`` set) or made by ``lofi models export``."""

    name: str
    engine: str
    repo: str
    files: tuple[ModelFile, ...]
    description: str
    variant: str  # short: "fp32, split decoder"
    revision: str = "main"
    params: Mapping[str, int | float | str | bool] = field(default_factory=dict)
    # How the download picks files from the hub's listing (None: never downloaded).
    layout: Layout | None = None
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
        """Approximate download size in bytes (the listing gives the exact one)."""
        return sum(f.size for f in self.files)

    @property
    def local_names(self) -> tuple[str, ...]:
        return tuple(f.local for f in self.files)

    def complete_sets(self) -> list[set[str]]:
        """Sets of local names, any of which is a whole copy of this model (placed by hand)."""
        if self.layout is None:
            return [set(self.local_names)]
        return self.layout.complete_sets()


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
        revision=GABOTECHS_REVISION,
        params=_MUSICGEN_PARAMS,
        layout=MusicGenLayout(size_dir, onnx_dir),
    )


# Display sizes: small fp32 from the pinned commit's recorded sizes; small fp16 from MusicGPT's
# table; medium fp32 from the hub's public listing (graph 5.17 MB, weights 7.37 GB); the rest
# estimated from the parameter counts. The download uses the listing's exact sizes.
MUSICGEN_ENTRIES: tuple[ModelEntry, ...] = (
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
        description="MusicGen small (300M), half precision: the default; the smallest download "
        "with both the fast CPU decoder (built on this machine) and the GPU path",
        variant="fp16, split decoder",
    ),
    _gabotechs(
        "musicgen-small",
        "small",
        "small_fp32",
        [
            ("text_encoder.onnx", 438_689_759),
            ("decoder_model_merged.onnx", 1_692_230_645),
            ("encodec_decode.onnx", 118_056_304),
        ],
        description="MusicGen small (300M), full precision: the exported fp32 graphs",
        variant="fp32, merged decoder",
    ),
    _gabotechs(
        "musicgen-medium",
        "medium",
        "medium_fp32",
        [
            ("text_encoder.onnx", 439 * MB),
            ("decoder_model_merged.onnx", int(5.17 * MB)),
            ("decoder_model_merged.onnx_data", int(7.37 * GB)),
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
            ("decoder_model.onnx", int(3.7 * GB)),
            ("decoder_with_past_model.onnx", int(3.3 * GB)),
            ("encodec_decode.onnx", int(59.1 * MB)),
        ],
        description="MusicGen medium, half precision: for GPUs/CoreML",
        variant="fp16",
    ),
    _gabotechs(
        "musicgen-large",
        "large",
        "large_fp32",
        [
            ("text_encoder.onnx", 439 * MB),
            ("decoder_model_merged.onnx", 6 * MB),
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
        "no fast decoder can be built from it; slightly lower quality",
        variant="int8, merged decoder",
        revision=XENOVA_MUSICGEN_SMALL_REVISION,
        params=_MUSICGEN_PARAMS,
        layout=MusicGenLayout("", "onnx", {"decoder_model_merged": "_quantized"}),
    ),
)

# -- ACE-Step 1.5 --------------------------------------------------------------------------------
#
# Sources: diffusers-format checkpoints the exporter reads (``AceStepPipeline.from_pretrained``
# layout). The 2B turbo and base (hidden 2048, 24 layers; the sizes measured in
# ../shared/reference/ace-step.md) are published in diffusers format as conversions made with
# diffusers' ``scripts/convert_ace_step_to_diffusers.py``; the ACE-Step team's own diffusers repos
# hold the XL models (4B DiT). The repo ids come from diffusers' docs and public code; the files
# are whatever the listing holds for the components the exporter reads (others, such as the
# converter's ``audio_tokenizer`` and ``audio_token_detokenizer``, stay on the hub). Any other
# diffusers-format checkpoint works as ``--source DIR`` after ``hf download REPO``.

_DIFFUSERS_CONFIGS = ("model_index.json", "scheduler/scheduler_config.json")


def _diffusers_source(
    name: str,
    repo: str,
    revision: str,
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
        revision=revision,
        layout=DiffusersLayout(ACESTEP_PIPELINE_COMPONENTS),
    )


SOURCE_ENGINE = "diffusers"
_ST = "diffusion_pytorch_model.safetensors"

# Keyed by the short name ``--source`` accepts (the repo id works too).
ACESTEP_SOURCES: Mapping[str, ModelEntry] = MappingProxyType(
    {
        "turbo": _diffusers_source(
            "acestep-v15-turbo-diffusers",
            "Runware/acestep-v15-turbo-diffusers",
            RUNWARE_TURBO_REVISION,
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
            RUNWARE_BASE_REVISION,
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

# -- ACE-Step v1 exports (`lofi models export ace-step-v1`) ------------------------------------
#
# The source: the original checkpoint in its own layout (ACEStepPipeline.load_checkpoint reads the
# four sub-folders). Its commit is pinned by a public project's licence notes, which fetch this
# repo's README.md at it (another project's hub cache shows the same snapshot). Weight sizes from
# lofi.nvim's docs (docs/features/ace-step.md); a public artifact list of this repo names the same
# eleven files, 8.28 GB in all.
ACESTEP_V1_REVISION = "82cd0d7b6322bd28cd4e830fe675ddb6180ce36c"
ACESTEP_V1_FOLDERS = ("ace_step_transformer", "music_dcae_f8c8", "music_vocoder", "umt5-base")
ACESTEP_V1_SOURCES: Mapping[str, ModelEntry] = MappingProxyType(
    {
        "v1": ModelEntry(
            name="acestep-v1-3.5b-checkpoint",
            engine="checkpoint",
            repo="ACE-Step/ACE-Step-v1-3.5B",
            files=(
                *(
                    ModelFile(f"{f}/config.json", f"{f}/config.json", 2 * KB)
                    for f in ACESTEP_V1_FOLDERS
                ),
                ModelFile(
                    f"ace_step_transformer/{_ST}", f"ace_step_transformer/{_ST}", int(6.2 * GB)
                ),
                ModelFile(f"music_dcae_f8c8/{_ST}", f"music_dcae_f8c8/{_ST}", 299 * MB),
                ModelFile(f"music_vocoder/{_ST}", f"music_vocoder/{_ST}", 197 * MB),
                ModelFile(
                    "umt5-base/model.safetensors", "umt5-base/model.safetensors", int(1.1 * GB)
                ),
                ModelFile("umt5-base/tokenizer.json", "umt5-base/tokenizer.json", int(16.8 * MB)),
                *(
                    ModelFile(f"umt5-base/{name}", f"umt5-base/{name}", 3 * KB)
                    for name in ("special_tokens_map.json", "tokenizer_config.json")
                ),
            ),
            description="ACE-Step v1 (3.5B), the original checkpoint (Apache-2.0), bf16",
            variant="original layout, bf16",
            revision=ACESTEP_V1_REVISION,
            layout=FoldersLayout(ACESTEP_V1_FOLDERS),
        )
    }
)
ACESTEP_V1_EXPORT_NAME = "ace-step-v1-export"
_ACESTEP_V1_PARAMS = {**ACESTEP_V1_DEFAULTS, "max_duration_s": 240.0}


def _acestep_v1_export(fp16: bool) -> ModelEntry:
    """An export of the original checkpoint: the file set lofi.nvim publishes (sizes: its docs
    for fp32; fp16 halves all but the DCAE, which stays float32)."""
    half = 2 if fp16 else 1
    files = (
        ModelFile.flat("acestep_v1.json", 2 * KB),
        ModelFile.flat("tokenizer.json", int(16.8 * MB)),
        ModelFile.flat("text_encoder.onnx", int(1.13 * GB) // half),
        ModelFile.flat("transformer_encoder.onnx", 424 * MB // half),
        ModelFile.flat("transformer_decoder.onnx", int(35.7 * MB)),
        ModelFile.flat("transformer_decoder_weights.bin", int(9.97 * GB) // half),
        ModelFile.flat("dcae_decoder.onnx", 317 * MB),
        ModelFile.flat("vocoder.onnx", 412 * MB // half),
    )
    precision = "fp16" if fp16 else "fp32"
    return ModelEntry(
        name=ACESTEP_V1_EXPORT_NAME + ("-fp16" if fp16 else ""),
        engine="ace-step-v1",
        repo=ACESTEP_V1_SOURCES["v1"].repo,
        files=files,
        description=f"ACE-Step v1 (3.5B) exported here from the original checkpoint, {precision}"
        + ("; float32 inputs and outputs, for GPUs" if fp16 else "; the published interface"),
        variant=f"{precision}, exported",
        params=_ACESTEP_V1_PARAMS,
        export="ace-step-v1" + (" --fp16" if fp16 else ""),
    )


ACESTEP_V1_EXPORT_ENTRIES: tuple[ModelEntry, ...] = (
    _acestep_v1_export(False),
    _acestep_v1_export(True),
)

# -- ACE-Step v1 as lofi.nvim publishes it ------------------------------------------------------
#
# willibrandon/lofi-models, folder ace-step/: the files lofi.nvim downloads (its MODEL_URLS),
# with the sizes its specs record (~12.3 GB, fp32). No commit of the repo is published anywhere
# lofi could read: the branch is pinned by name and the manifest records the commit it resolved
# to at download. The engine runs the files as they are (lofitui.engines.acestep_v1).
LOFI_MODELS_REVISION = "main"
ACESTEP_V1_FILES: tuple[ModelFile, ...] = tuple(
    ModelFile.flat(f"ace-step/{name}", size)
    for name, size in (
        ("tokenizer.json", int(16.8 * MB)),
        ("text_encoder.onnx", int(1.13 * GB)),
        ("transformer_encoder.onnx", 424 * MB),
        ("transformer_decoder.onnx", int(35.7 * MB)),
        ("transformer_decoder_weights.bin", int(9.97 * GB)),
        ("dcae_decoder.onnx", 317 * MB),
        ("vocoder.onnx", 412 * MB),
    )
)
ACESTEP_V1_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="ace-step-v1",
        engine="ace-step-v1",
        repo="willibrandon/lofi-models",
        files=ACESTEP_V1_FILES,
        description="ACE-Step v1 (3.5B) as lofi.nvim publishes it: 60 steps with APG guidance, "
        "up to 240 s; a 12.3 GB download",
        variant="fp32, published ONNX",
        revision=LOFI_MODELS_REVISION,
        params=_ACESTEP_V1_PARAMS,
        layout=FolderLayout("ace-step", tuple(f.local for f in ACESTEP_V1_FILES)),
    ),
)

CATALOG: Mapping[str, ModelEntry] = MappingProxyType(
    {
        entry.name: entry
        for entry in (
            *MUSICGEN_ENTRIES,
            *ACESTEP_ENTRIES,
            *ACESTEP_V1_ENTRIES,
            *ACESTEP_V1_EXPORT_ENTRIES,
        )
    }
)

# The model each engine uses when none is named (the one place this is decided).
DEFAULT_MODELS: Mapping[str, str] = MappingProxyType(
    {
        "musicgen": "musicgen-small-fp16",
        "ace-step": "ace-step-turbo",
        "ace-step-v1": "ace-step-v1",
        "synth": BUILTIN_MODEL,
    }
)


def default_model(engine: str) -> str:
    """The model ``engine`` uses when none is named."""
    try:
        return DEFAULT_MODELS[engine]
    except KeyError:
        raise UsageError(f"engine {engine!r} has no default model: name one with --model") from None


def find_source(
    source: str, sources: Mapping[str, ModelEntry] = ACESTEP_SOURCES
) -> ModelEntry | None:
    """A known checkpoint of ``sources`` by short name (``turbo``), entry name or repo id."""
    if source in sources:
        return sources[source]
    for entry in sources.values():
        if source in (entry.name, entry.repo):
            return entry
    return None


def export_name(source: ModelEntry | None, fp16: bool) -> str | None:
    """The catalog name an export of ``source`` gets by default (None: the caller must choose)."""
    names = {
        **{id(entry): _EXPORT_NAMES[key] for key, entry in ACESTEP_SOURCES.items()},
        **{id(entry): ACESTEP_V1_EXPORT_NAME for entry in ACESTEP_V1_SOURCES.values()},
    }
    name = names.get(id(source))
    return None if name is None else name + ("-fp16" if fp16 else "")


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
