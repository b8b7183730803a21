"""The models lofi knows by name: where each one comes from and which files it needs.

Local layout (every entry, every engine): one flat directory per model,
``models_dir()/<name>/``, holding the files under their ``local`` names (``config.json``,
``tokenizer.json``, ``*.onnx``, and any ``*.onnx_data`` external weights next to the graph that
refers to them) plus ``lofi-model.json``, the manifest written after a verified download. A
directory with the same files copied in by hand works too: it is used as is, with no network.

Sizes are approximate (they tell the user what to expect before anything is fetched); the
download uses the exact sizes and SHA-256 the hub records for the pinned revision.

MusicGen decoder choice: the small models fetch the split pair (``decoder_model.onnx`` for the
first step, ``decoder_with_past_model.onnx`` after), measured faster on CPU than the merged graph.
Medium and large fetch the merged graph only: their split pair would double a multi-GB download
for a ~5 % speed difference. The engine tells the two apart by which files are present.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

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

# ACE-Step entries go here (engine "acestep"); same ModelEntry shape, same flat local layout.
ACESTEP_ENTRIES: tuple[ModelEntry, ...] = ()

CATALOG: Mapping[str, ModelEntry] = MappingProxyType(
    {entry.name: entry for entry in (*MUSICGEN_ENTRIES, *ACESTEP_ENTRIES)}
)

DEFAULT_MODEL = "musicgen-small"


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
