"""Reader of CTranslate2's ``model.bin`` (binary version 6, the one CTranslate2 4.x writes).

Layout, all little-endian (learnt from CTranslate2's public specs; this is our own code):

    u32 binary_version            (6)
    str spec_name                 e.g. "WhisperSpec"
    u32 spec_revision
    u32 n_variables
    n_variables x:
        str  name                 e.g. "encoder/layer_0/ffn/linear_0/weight"
        u8   rank, then rank x u32 dims
        u8   dtype id             0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16
        u32  n_bytes, then the raw row-major data
    u32 n_aliases
    n_aliases x: str alias, str target variable name

where ``str`` is a u16 length (counting a trailing NUL), the UTF-8 bytes and the NUL.
Scalars (rank 0) hold settings such as ``encoder/num_heads``. A quantised weight is stored
as int8/int16 ``.../weight`` beside a float32 ``.../weight_scale`` (one scale per output
row); :func:`dequantize` turns the pair back into float: ``weight / scale``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmer.errors import BadInput

SUPPORTED_VERSIONS = (6,)
DTYPES: tuple[np.dtype, ...] = tuple(np.dtype(d) for d in
                                     ("float32", "int8", "int16", "int32", "float16"))
BFLOAT16_ID = 5


class Ct2FormatError(BadInput):
    """A model.bin that is not in the format described above; the message names the file."""


@dataclass
class Ct2Model:
    """The content of one model.bin: variables by name (aliases resolved on lookup)."""

    spec: str
    revision: int
    version: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]


class _Cursor:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise Ct2FormatError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more)")
        view = memoryview(self.data)[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))
        if not raw.endswith(b"\0"):
            raise Ct2FormatError(f"{self.path}: string without NUL at byte {self.pos}")
        return raw[:-1].decode("utf-8")


def _array(raw: memoryview, shape: tuple[int, ...], dtype_id: int, name: str,
           path: Path) -> np.ndarray:
    if dtype_id == BFLOAT16_ID:  # numpy has no bfloat16: widen the 16 high bits to float32
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        arr = bits.view(np.float32)
    elif 0 <= dtype_id < len(DTYPES):
        arr = np.frombuffer(raw, dtype=DTYPES[dtype_id].newbyteorder("<")).copy()
    else:
        raise Ct2FormatError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise Ct2FormatError(f"{path}: variable {name!r}: {arr.size} values for shape {shape}")
    return arr.reshape(shape)


def parse_ct2(data: bytes, path: Path = Path("<bytes>")) -> Ct2Model:
    """Parse the bytes of a model.bin."""
    cur = _Cursor(data, path)
    version = cur.unpack("I")
    if version not in SUPPORTED_VERSIONS:
        raise Ct2FormatError(f"{path}: binary version {version}; this reader knows "
                             f"{', '.join(map(str, SUPPORTED_VERSIONS))}")
    spec, revision = cur.string(), cur.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.unpack("I")):
        name = cur.string()
        shape = tuple(cur.unpack("I") for _ in range(cur.unpack("B")))
        dtype_id = cur.unpack("B")
        variables[name] = _array(cur.take(cur.unpack("I")), shape, dtype_id, name, path)
    aliases = {}
    for _ in range(cur.unpack("I")):
        alias = cur.string()
        aliases[alias] = cur.string()
    if cur.pos != len(data):
        raise Ct2FormatError(f"{path}: {len(data) - cur.pos} unread bytes after the aliases")
    return Ct2Model(spec, revision, version, variables, aliases)


def read_ct2(path: str | Path) -> Ct2Model:
    """Read a CTranslate2 ``model.bin`` (or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    return parse_ct2(path.read_bytes(), path)


def dequantize(model: Ct2Model, name: str) -> np.ndarray:
    """Variable `name` as float32; an int8/int16 weight is divided by its per-row ``_scale``."""
    arr = model[name]
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    scale_name = f"{name}_scale"
    if scale_name not in model.variables:
        raise Ct2FormatError(f"{name!r} is {arr.dtype} without a {scale_name!r}")
    scale = model[scale_name].astype(np.float32)
    scale = scale.reshape(scale.shape + (1,) * (arr.ndim - scale.ndim))
    return arr.astype(np.float32) / scale
