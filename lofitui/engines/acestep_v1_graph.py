"""What ACE-Step v1's DCAE graph does itself: the latent and mel de-normalisations.

The original ``MusicDCAE.decode`` maps latents with ``z / 0.1786 + (-1.9091)`` before the DCAE
decoder and its output with ``(m * 0.5 + 0.5) * 14 - 11`` (mel range [-11, 3]) before the vocoder.
An export may fold either into ``dcae_decoder.onnx``; lofi.nvim's published file does not say.
lofi's exporter records it in its side file; otherwise the graph is read: the chain of scalar
Mul/Div/Add/Sub right after the input and right before the output is composed into one affine map
and compared with the original's. Whatever the graph lacks is applied on the host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from lofitui.convert.formats import ACESTEP_V1_CONFIG_NAME
from lofitui.errors import ModelError

LATENT_SCALE = 0.1786
LATENT_SHIFT = -1.9091
MEL_MIN = -11.0
MEL_MAX = 3.0
# The maps as (gain, offset): z / 0.1786 - 1.9091 and 7 m - 4 (= (m / 2 + 1/2) * 14 - 11).
LATENT_MAP = (1.0 / LATENT_SCALE, LATENT_SHIFT)
MEL_MAP = (0.5 * (MEL_MAX - MEL_MIN), 0.5 * (MEL_MAX - MEL_MIN) + MEL_MIN)
SIDE_FILE = ACESTEP_V1_CONFIG_NAME  # written by lofi's exporter only
_AFFINE_OPS = ("Mul", "Div", "Add", "Sub")
_RTOL = 1e-4


@dataclass(frozen=True)
class Folding:
    """Which de-normalisations the DCAE graph applies itself (the host applies the others)."""

    latents: bool
    mel: bool
    source: str  # where this was learned: "from acestep_v1.json" or "read from the graph"

    def describe(self) -> str:
        """E.g. "latents and mel in the graph (from acestep_v1.json)"."""
        inside = [name for name, folded in (("latents", self.latents), ("mel", self.mel)) if folded]
        where = " and ".join(inside) + " in the graph" if inside else "all on the host"
        if inside and len(inside) < 2:
            where += ", the other on the host"
        return f"{where} ({self.source})"

    def latents_in(self, z: np.ndarray) -> np.ndarray:
        """Latents as the graph wants them."""
        if self.latents:
            return z
        gain, offset = LATENT_MAP
        return (z * np.float32(gain) + np.float32(offset)).astype(np.float32)

    def mel_out(self, mel: np.ndarray) -> np.ndarray:
        """The graph's output as a mel spectrogram in [-11, 3] (what the vocoder takes)."""
        if self.mel:
            return mel
        gain, offset = MEL_MAP
        return (mel * np.float32(gain) + np.float32(offset)).astype(np.float32)


def read_folding(model_dir: Path, dcae: Path) -> Folding:
    """The side file's record when the directory has one, else what the graph shows."""
    side = model_dir / SIDE_FILE
    if side.is_file():
        try:
            record = json.loads(side.read_text())
            latents, mel = record["latent_scaling_folded"], record["mel_scaling_folded"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{side} does not say what the DCAE graph folds: {exc}") from exc
        return Folding(bool(latents), bool(mel), f"from {side.name}")
    return graph_folding(dcae)


def graph_folding(path: Path) -> Folding:
    """Read the de-normalisations off the graph itself (weights are not loaded)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises several unrelated types for a bad file
        raise ModelError(f"cannot read {path}: {exc}") from exc
    graph = model.graph
    consts = _constants(graph)
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    first, last = graph.input[0].name, graph.output[0].name
    leading: list[tuple[str, float, bool]] = []
    name = first
    while len(consumers.get(name, [])) == 1 and (step := _affine(consumers[name][0], name, consts)):
        leading.append(step)
        name = consumers[name][0].output[0]
    trailing: list[tuple[str, float, bool]] = []
    name = last
    while name in producers and (step := _affine(producers[name], None, consts)):
        trailing.append(step)
        name = _variable_input(producers[name], consts)
    trailing.reverse()
    return Folding(
        _matches(_compose(leading), LATENT_MAP),
        _matches(_compose(trailing), MEL_MAP),
        "read from the graph",
    )


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                found[node.output[0]] = value
    scalars = {}
    for name, tensor in found.items():
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            continue
        array = numpy_helper.to_array(tensor)
        if array.size == 1:
            scalars[name] = array
    return scalars


def _variable_input(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> str:
    return next(name for name in node.input if name not in consts)


def _affine(
    node: onnx.NodeProto, via: str | None, consts: dict[str, np.ndarray]
) -> tuple[str, float, bool] | None:
    """(op, scalar, scalar-first) when ``node`` is an elementwise op of one scalar constant."""
    if node.op_type not in _AFFINE_OPS or len(node.input) != 2:
        return None
    a, b = node.input
    if a in consts and b not in consts and via in (None, b):
        return node.op_type, float(consts[a].reshape(())), True
    if b in consts and a not in consts and via in (None, a):
        return node.op_type, float(consts[b].reshape(())), False
    return None


def _compose(steps: list[tuple[str, float, bool]]) -> tuple[float, float]:
    """The affine map ``x -> gain * x + offset`` the steps apply in order (None if not affine)."""
    gain, offset = 1.0, 0.0
    for op, c, first in steps:
        if op == "Mul":
            gain, offset = gain * c, offset * c
        elif op == "Add":
            offset += c
        elif op == "Sub" and not first:
            offset -= c
        elif op == "Sub":
            gain, offset = -gain, c - offset
        elif op == "Div" and not first:
            gain, offset = gain / c, offset / c
        else:  # c / x is not affine: the chain ends before it
            return (float("nan"), float("nan"))
    return gain, offset


def _matches(found: tuple[float, float], wanted: tuple[float, float]) -> bool:
    return all(np.isclose(f, w, rtol=_RTOL, atol=_RTOL) for f, w in zip(found, wanted, strict=True))
