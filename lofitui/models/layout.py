"""Which files make up a model, chosen from the hub's own listing of its folders.

Nothing here guesses a file list: a layout names the folders to list and the rules that pick
files from what the listing holds (each file with the size and hash the hub records at the
pinned commit). Pure functions over a listing, so the choice is tested without any network.

- :class:`MusicGenLayout`: an optimum export in one folder (``small_fp16/``, ``onnx/``), its
  configs in another. The decoder is whichever complete form the folder holds, the smaller
  download first: the merged graph (both branches over one set of weights) or the split pair.
  Every chosen graph brings its external-weights sidecar (``X.onnx_data`` / ``X.onnx.data``).
- :class:`DiffusersLayout`: a diffusers pipeline; ``model_index.json`` plus every file of the
  components lofi's exporter reads. Components the index names that lofi does not use (e.g.
  ``audio_tokenizer``) are left on the hub.
- :class:`FoldersLayout`: a checkpoint of named sub-folders (ACE-Step v1's original layout),
  every file under them.
- :class:`FolderLayout`: a fixed list of files in one folder (ACE-Step v1 as lofi.nvim
  publishes it); a listing that lacks one is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lofitui.errors import ModelError


@dataclass(frozen=True)
class Listed:
    """One file as the hub lists it at a commit."""

    path: str
    size: int
    sha256: str | None = None  # LFS files (weights): the content's SHA-256
    git_oid: str | None = None  # plain-git files (configs): the blob's SHA-1


@dataclass(frozen=True)
class Chosen:
    """A listed file lofi downloads, and its name in the model directory."""

    file: Listed
    local: str


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def sidecars(graph: str, listing: Mapping[str, Listed]) -> list[Listed]:
    """External-data files listed next to an ONNX graph (weights kept outside it)."""
    return [listing[p] for p in (graph + "_data", graph + ".data") if p in listing]


@dataclass(frozen=True)
class MusicGenLayout:
    """An optimum MusicGen export: configs in ``meta_dir``, graphs in ``onnx_dir``.

    ``suffixes`` maps a graph stem to the suffix its file carries in this folder (Xenova's
    ``decoder_model_merged_quantized.onnx``); the local name is always the plain stem, so the
    engine finds every layout the same way. Sidecars keep their own names: a graph refers to
    its external data by file name.
    """

    meta_dir: str
    onnx_dir: str
    suffixes: Mapping[str, str] = field(default_factory=dict)

    REQUIRED_META = ("config.json", "tokenizer.json")
    OPTIONAL_META = ("generation_config.json",)
    REQUIRED_GRAPHS = ("text_encoder", "encodec_decode")
    MERGED = ("decoder_model_merged",)
    SPLIT = ("decoder_model", "decoder_with_past_model")

    @property
    def folders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.meta_dir, self.onnx_dir)))

    @property
    def recursive(self) -> bool:
        return False

    @property
    def probe(self) -> str:
        """A file every revision of this layout holds (asked first: the commit, errors)."""
        return _join(self.meta_dir, "config.json")

    def graph(self, stem: str) -> str:
        return _join(self.onnx_dir, f"{stem}{self.suffixes.get(stem, '')}.onnx")

    def complete_sets(self) -> list[set[str]]:
        """Local names that make a whole copy (placed by hand): either decoder form."""
        base = {*self.REQUIRED_META, *(f"{s}.onnx" for s in self.REQUIRED_GRAPHS)}
        return [base | {f"{s}.onnx" for s in form} for form in (self.SPLIT, self.MERGED)]

    def choose(self, listing: Mapping[str, Listed], where: str) -> list[Chosen]:
        """The files to fetch from ``listing``; ModelError naming what ``where`` lacks."""

        def need(path: str) -> Listed:
            if path not in listing:
                raise ModelError(f"{where} has no {path}")
            return listing[path]

        chosen = [Chosen(need(_join(self.meta_dir, n)), n) for n in self.REQUIRED_META]
        for name in self.OPTIONAL_META:
            path = _join(self.meta_dir, name)
            if path in listing:
                chosen.append(Chosen(listing[path], name))
        forms = []
        for form in (self.MERGED, self.SPLIT):
            graphs = [self.graph(stem) for stem in form]
            if all(g in listing for g in graphs):
                files = [
                    Chosen(listing[g], f"{stem}.onnx") for g, stem in zip(graphs, form, strict=True)
                ]
                files += [Chosen(s, _base(s.path)) for g in graphs for s in sidecars(g, listing)]
                forms.append(files)
        if not forms:
            raise ModelError(
                f"{where} has neither {self.graph(self.MERGED[0])} nor the pair "
                f"{' + '.join(self.graph(s) for s in self.SPLIT)}"
            )
        graphs = {stem: need(self.graph(stem)) for stem in self.REQUIRED_GRAPHS}
        decoder = min(forms, key=lambda files: sum(c.file.size for c in files))
        for stem in self.REQUIRED_GRAPHS:  # text encoder, the decoder, EnCodec: pipeline order
            graph = graphs[stem]
            chosen.append(Chosen(graph, f"{stem}.onnx"))
            chosen += [Chosen(s, _base(s.path)) for s in sidecars(graph.path, listing)]
            if stem == self.REQUIRED_GRAPHS[0]:
                chosen += decoder
        return chosen


@dataclass(frozen=True)
class DiffusersLayout:
    """A diffusers pipeline repo: ``model_index.json`` and the ``components`` lofi reads."""

    components: tuple[str, ...]

    INDEX = "model_index.json"

    @property
    def folders(self) -> tuple[str, ...]:
        return ("",)

    @property
    def recursive(self) -> bool:
        return True

    @property
    def probe(self) -> str:
        return self.INDEX

    def complete_sets(self) -> list[set[str]]:
        return [{self.INDEX, *(f"{c}/config.json" for c in self.components if c != "tokenizer")}]

    def choose(self, listing: Mapping[str, Listed], where: str) -> list[Chosen]:
        if self.INDEX not in listing:
            raise ModelError(f"{where} has no {self.INDEX}")
        return [Chosen(listing[self.INDEX], self.INDEX), *_folders(self.components, listing, where)]


@dataclass(frozen=True)
class FoldersLayout:
    """A checkpoint stored as sub-folders, each with a ``config.json`` (ACE-Step v1's original
    layout: ``ace_step_transformer/``, ``music_dcae_f8c8/``...): every file under them."""

    subfolders: tuple[str, ...]

    @property
    def folders(self) -> tuple[str, ...]:
        return self.subfolders

    @property
    def recursive(self) -> bool:
        return True

    @property
    def probe(self) -> str:
        return f"{self.subfolders[0]}/config.json"

    def complete_sets(self) -> list[set[str]]:
        return [{f"{folder}/config.json" for folder in self.subfolders}]

    def choose(self, listing: Mapping[str, Listed], where: str) -> list[Chosen]:
        return _folders(self.subfolders, listing, where)


def _folders(folders: tuple[str, ...], listing: Mapping[str, Listed], where: str) -> list[Chosen]:
    """Every listed file under each of ``folders``, paths kept; ModelError for an empty one."""
    chosen = []
    for folder in folders:
        files = sorted(p for p in listing if p.startswith(folder + "/"))
        if not files:
            raise ModelError(f"{where} has no {folder}/ folder")
        chosen += [Chosen(listing[p], p) for p in files]
    return chosen


@dataclass(frozen=True)
class FolderLayout:
    """A fixed set of files in one folder, each stored under its base name (lofi.nvim's
    ACE-Step v1 set: ``ace-step/`` with the decoder's weights in a named ``.bin``)."""

    folder: str
    names: tuple[str, ...]

    @property
    def folders(self) -> tuple[str, ...]:
        return (self.folder,)

    @property
    def recursive(self) -> bool:
        return False

    @property
    def probe(self) -> str:
        return _join(self.folder, self.names[0])

    def complete_sets(self) -> list[set[str]]:
        return [set(self.names)]

    def choose(self, listing: Mapping[str, Listed], where: str) -> list[Chosen]:
        missing = [n for n in self.names if _join(self.folder, n) not in listing]
        if missing:
            raise ModelError(f"{where} has no {', '.join(_join(self.folder, n) for n in missing)}")
        return [Chosen(listing[_join(self.folder, n)], n) for n in self.names]


Layout = MusicGenLayout | DiffusersLayout | FoldersLayout | FolderLayout
