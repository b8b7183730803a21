"""The inputs and outputs of an ONNX file (names and shapes), read without loading it.

An ONNX file is a protobuf ``ModelProto``; its graph's ``input`` and ``output`` value infos are a
few hundred bytes among the weights. They are found by walking the protobuf's fields and seeking
past everything else (nodes, initializers), so a 2 GB graph costs a few thousand small reads and
no memory: model configs can be checked against their graphs before any session is made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lofitui.errors import ModelError

Dim = int | str | None  # a fixed size, a symbolic one ("batch_size"), or unknown

# Field numbers of onnx.proto3 (stable since ONNX 1.0).
_MODEL_GRAPH = 7
_GRAPH_INPUT, _GRAPH_OUTPUT = 11, 12
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR = 1
_TENSOR_SHAPE = 2
_SHAPE_DIM = 1
_DIM_VALUE, _DIM_PARAM = 1, 2

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

__all__ = ["Dim", "Signature", "read_signature"]


@dataclass(frozen=True)
class Signature:
    """A graph's inputs and outputs: name → shape (a tuple of :data:`Dim`)."""

    path: Path
    inputs: dict[str, tuple[Dim, ...]]
    outputs: dict[str, tuple[Dim, ...]]


def read_signature(path: Path) -> Signature:
    """The inputs and outputs of the ONNX file ``path``; ModelError naming it if unreadable."""
    path = Path(path)
    try:
        with path.open("rb", buffering=1 << 16) as fh:
            size = path.stat().st_size
            for field, _, start, length in _fields(fh, size):
                if field == _MODEL_GRAPH:
                    return _graph(fh, path, start, start + length)
    except FileNotFoundError:
        raise ModelError(f"missing model file: {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, EOFError) as exc:
        raise ModelError(f"{path} is not an ONNX model ({exc})") from exc
    raise ModelError(f"{path} is not an ONNX model (it has no graph)")


def _graph(fh: BinaryIO, path: Path, start: int, end: int) -> Signature:
    fh.seek(start)
    inputs: dict[str, tuple[Dim, ...]] = {}
    outputs: dict[str, tuple[Dim, ...]] = {}
    for field, _, offset, length in _fields(fh, end):
        if field in (_GRAPH_INPUT, _GRAPH_OUTPUT):
            fh.seek(offset)
            name, shape = _value_info(_read(fh, length))
            (inputs if field == _GRAPH_INPUT else outputs)[name] = shape
    return Signature(path, inputs, outputs)


def _value_info(data: bytes) -> tuple[str, tuple[Dim, ...]]:
    name, shape = "", ()
    for field, value in _message(data):
        if field == _VALUE_NAME and isinstance(value, bytes):
            name = value.decode("utf-8", "replace")
        elif field == _VALUE_TYPE and isinstance(value, bytes):
            for type_field, tensor in _message(value):
                if type_field == _TYPE_TENSOR and isinstance(tensor, bytes):
                    shape = _tensor_shape(tensor)
    return name, shape


def _tensor_shape(data: bytes) -> tuple[Dim, ...]:
    for field, value in _message(data):
        if field == _TENSOR_SHAPE and isinstance(value, bytes):
            return tuple(_dim(dim) for f, dim in _message(value) if f == _SHAPE_DIM)
    return ()


def _dim(value: int | bytes) -> Dim:
    if not isinstance(value, bytes):
        return None
    for field, part in _message(value):
        if field == _DIM_VALUE and isinstance(part, int):
            return part
        if field == _DIM_PARAM and isinstance(part, bytes):
            return part.decode("utf-8", "replace")
    return None


def _message(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """The fields of a small message held in memory: varints as ints, the rest as bytes."""
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _varint_at(data, pos)
        field, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = _varint_at(data, pos)
            yield field, value
            continue
        if wire == _LEN:
            length, pos = _varint_at(data, pos)
        elif wire in (_I64, _I32):
            length = 8 if wire == _I64 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos + length > end:
            raise ValueError("a field runs past the end of its message")
        yield field, data[pos : pos + length]
        pos += length


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``data[pos:]`` and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise EOFError("truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(fh: BinaryIO, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(field, wire type, offset, length)`` of each field from ``fh``'s position to ``end``;
    for a varint, ``length`` is its value. The caller may read the field at ``offset``: the
    walk continues at the field's end whatever was read."""
    while fh.tell() < end:
        tag = _varint(fh)
        field, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            yield field, wire, fh.tell(), _varint(fh)
            continue
        if wire == _LEN:
            length = _varint(fh)
        elif wire in (_I64, _I32):
            length = 8 if wire == _I64 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        offset = fh.tell()
        if offset + length > end:
            raise ValueError("a field runs past the end of its message")
        yield field, wire, offset, length
        fh.seek(offset + length)


def _varint(fh: BinaryIO) -> int:
    value = shift = 0
    while True:
        byte = fh.read(1)
        if not byte:
            raise EOFError("truncated")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _read(fh: BinaryIO, length: int) -> bytes:
    data = fh.read(length)
    if len(data) != length:
        raise EOFError("truncated")
    return data
