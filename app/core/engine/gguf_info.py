"""What a GGUF model file says about itself: architecture, size, quantization, context.

Only the header is read, through a read-only memory map: the key/value metadata and the
tensor table. Tensor data is never read, so a 40 GB file is described as quickly as a
small one; the only cost that grows is walking the tokenizer's vocabulary (about 0.1 s
for 262,144 tokens). The value types, key names and quantization tables are the ``gguf``
package's; the walk itself skips arrays without turning every element into an object.

A file that is not GGUF, is cut short or is damaged raises :class:`InvalidModelFile` with
a sentence that names the file and the reason; nothing here crashes on bad bytes.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gguf.constants import (
    GGML_QUANT_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGMLQuantizationType,
    GGUFValueType,
    Keys,
    LlamaFileType,
)

from app.core.errors import InvalidInput

__all__ = ["GGUF_SUFFIX", "GgufInfo", "InvalidModelFile", "format_parameters", "read_gguf"]

#: The file name ending of a GGUF model.
GGUF_SUFFIX = ".gguf"

_HEADER_SIZE = 24  # magic, version, tensor count, key/value count
_MAX_COUNT = 10_000_000  # more tensors or keys than this is damage, not a model

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}

Scalar = int | float | bool | str


class InvalidModelFile(InvalidInput):
    """A file that cannot be used as a model.

    Attributes:
        path: the file.
        reason: why, in a few words ("it does not start with the GGUF signature").
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path.name} is not a GGUF model file: {reason}.")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class GgufInfo:
    """What the Details of a model show.

    Attributes:
        architecture: ``general.architecture`` ("llama", "gemma3", ...).
        name: ``general.name``, or "" when the file has none.
        parameters: the number of weights, counted from the tensor shapes.
        size_label: ``general.size_label`` ("270M", "8x7B"), or "" when the file has none.
        quantization: the file type ("Q4_K_M", "F16"), or the commonest tensor type when
            the file does not say; "unknown" when neither is known.
        context_length: ``<architecture>.context_length``, or None when missing.
        has_chat_template: whether ``tokenizer.chat_template`` is present and not empty.
        file_size: bytes on disk.
        gguf_version: the format version (2 or 3).
        tensor_count: the number of tensors.
    """

    architecture: str
    name: str
    parameters: int
    size_label: str
    quantization: str
    context_length: int | None
    has_chat_template: bool
    file_size: int
    gguf_version: int = 3
    tensor_count: int = 0

    @property
    def parameters_label(self) -> str:
        """The size the user reads: the file's own label, else the counted one ("268M")."""
        return self.size_label or format_parameters(self.parameters)


def format_parameters(count: int) -> str:
    """A weight count in the way model names write it: 270M, 1.2B, 70B."""
    for factor, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= factor:
            value = count / factor
            text = f"{value:.1f}" if value < 10 else f"{value:.0f}"
            return text.removesuffix(".0") + unit
    return str(count)


class _Damaged(Exception):
    """The header does not hold together; the message says where."""


class _Header:
    """A cursor over a memory-mapped header, little- or big-endian."""

    def __init__(self, data: mmap.mmap, order: str) -> None:
        self.data = data
        self.order = order
        self.offset = 0
        self.size = len(data)

    def _need(self, n: int, what: str) -> None:
        if n < 0 or self.offset + n > self.size:
            raise _Damaged(f"it ends early (at byte {self.size:,}, while reading {what})")

    def unpack(self, fmt: str, what: str) -> tuple[int | float | bool, ...]:
        n = struct.calcsize(fmt)
        self._need(n, what)
        values = struct.unpack_from(self.order + fmt, self.data, self.offset)
        self.offset += n
        return values

    def uint(self, fmt: str, what: str) -> int:
        value = self.unpack(fmt, what)[0]
        assert isinstance(value, int)
        return value

    def string(self, what: str) -> str:
        length = self.uint("Q", what)
        self._need(length, what)
        raw = self.data[self.offset : self.offset + length]
        self.offset += length
        return raw.decode("utf-8", errors="replace")

    def skip_string(self, what: str) -> None:
        length = self.uint("Q", what)
        self._need(length, what)
        self.offset += length

    def value(self, vtype: int, key: str) -> Scalar | None:
        """Read a value; arrays are skipped and give None (their contents are not needed)."""
        try:
            kind = GGUFValueType(vtype)
        except ValueError:
            raise _Damaged(f"the value of {key!r} has an unknown type ({vtype})") from None
        if kind is GGUFValueType.STRING:
            return self.string(key)
        if kind is GGUFValueType.ARRAY:
            self.skip_array(key)
            return None
        return self.unpack(_SCALARS[kind], key)[0]

    def skip_array(self, key: str) -> None:
        item_type = self.uint("I", key)
        count = self.uint("Q", key)
        try:
            kind = GGUFValueType(item_type)
        except ValueError:
            raise _Damaged(f"the array {key!r} has an unknown item type ({item_type})") from None
        if kind in _SCALARS:
            n = struct.calcsize(_SCALARS[kind]) * count
            self._need(n, key)
            self.offset += n
            return
        if count > self.size:  # every item takes at least a byte
            raise _Damaged(f"the array {key!r} claims {count:,} items")
        if kind is GGUFValueType.STRING:
            for _ in range(count):
                self.skip_string(key)
            return
        for _ in range(count):  # arrays of arrays
            self.skip_array(key)


def read_gguf(path: Path) -> GgufInfo:
    """Describe the GGUF file at ``path`` from its header alone.

    Raises :class:`InvalidModelFile` when the file is not GGUF, is truncated or damaged,
    or cannot be read.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:  # read-only: never changes the file
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise InvalidModelFile(path, "it is empty")
            if fh.read(4) != struct.pack("<I", GGUF_MAGIC):
                raise InvalidModelFile(path, "it does not start with the GGUF signature")
            if size < _HEADER_SIZE:
                raise InvalidModelFile(path, f"it is only {size} bytes long")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _parse(path, data, size)
    except InvalidModelFile:
        raise
    except IsADirectoryError as exc:
        raise InvalidModelFile(path, "it is a folder") from exc
    except FileNotFoundError as exc:
        raise InvalidModelFile(path, "the file does not exist (any more)") from exc
    except PermissionError as exc:
        raise InvalidModelFile(path, "Corral is not allowed to read it") from exc
    except _Damaged as exc:
        raise InvalidModelFile(path, str(exc)) from exc
    except (OSError, ValueError, OverflowError, struct.error) as exc:
        raise InvalidModelFile(path, f"it could not be read ({exc})") from exc


def _parse(path: Path, data: mmap.mmap, size: int) -> GgufInfo:
    (magic,) = struct.unpack_from("<I", data, 0)
    if magic != GGUF_MAGIC:
        raise InvalidModelFile(path, "it does not start with the GGUF signature")
    (version,) = struct.unpack_from("<I", data, 4)
    order = "<"
    if version & 0xFFFF == 0:  # written on a machine of the other byte order
        order = ">"
        (version,) = struct.unpack_from(">I", data, 4)
    if version == 1:
        raise InvalidModelFile(path, "it uses GGUF version 1, which is no longer supported")
    if version not in (2, 3):
        raise InvalidModelFile(path, f"it uses GGUF version {version}, which Corral cannot read")

    header = _Header(data, order)
    header.offset = 8
    tensor_count = header.uint("Q", "the tensor count")
    kv_count = header.uint("Q", "the metadata count")
    if tensor_count > _MAX_COUNT or kv_count > _MAX_COUNT:
        raise _Damaged(f"its header claims {tensor_count:,} tensors and {kv_count:,} keys")

    meta: dict[str, Scalar] = {}
    arrays: set[str] = set()
    for _ in range(kv_count):
        key = header.string("a metadata key")
        vtype = header.uint("I", f"the type of {key!r}")
        value = header.value(vtype, key)
        if value is None:
            arrays.add(key)
        else:
            meta[key] = value

    parameters = 0
    data_end = 0
    by_type: Counter[int] = Counter()
    for _ in range(tensor_count):
        name = header.string("a tensor name")
        n_dims = header.uint("I", f"tensor {name!r}")
        if n_dims > 8:
            raise _Damaged(f"tensor {name!r} claims {n_dims} dimensions")
        dims = header.unpack("Q" * n_dims, f"tensor {name!r}")
        ttype = header.uint("I", f"tensor {name!r}")
        offset = header.uint("Q", f"tensor {name!r}")
        elements = math.prod(int(d) for d in dims)
        parameters += elements
        if n_dims >= 2:
            by_type[ttype] += elements
        nbytes = _tensor_bytes(ttype, elements)
        if nbytes is not None:
            data_end = max(data_end, offset + nbytes)

    alignment = meta.get(Keys.General.ALIGNMENT, GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise _Damaged(f"its alignment ({alignment!r}) is not a power of two")
    data_start = -(-header.offset // alignment) * alignment
    if tensor_count and data_start + data_end > size:
        raise InvalidModelFile(
            path,
            f"it is truncated: its tensors need {data_start + data_end:,} bytes "
            f"but the file has {size:,}",
        )

    architecture = _text(meta.get(Keys.General.ARCHITECTURE))
    if not architecture:
        raise InvalidModelFile(path, "it does not say which model architecture it holds")
    context = meta.get(Keys.LLM.CONTEXT_LENGTH.format(arch=architecture))
    template = meta.get(Keys.Tokenizer.CHAT_TEMPLATE)
    return GgufInfo(
        architecture=architecture,
        name=_text(meta.get(Keys.General.NAME)),
        parameters=parameters,
        size_label=_text(meta.get(Keys.General.SIZE_LABEL)),
        quantization=_quantization(meta.get(Keys.General.FILE_TYPE), by_type),
        context_length=context if isinstance(context, int) and context > 0 else None,
        has_chat_template=isinstance(template, str) and bool(template.strip()),
        file_size=size,
        gguf_version=version,
        tensor_count=tensor_count,
    )


def _text(value: Scalar | None) -> str:
    return value.strip() if isinstance(value, str) else ""


def _tensor_bytes(ttype: int, elements: int) -> int | None:
    """Bytes of a tensor's data; None for a type this version of ``gguf`` does not know."""
    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
    except (ValueError, KeyError):
        return None
    return elements * size // block


def _quantization(file_type: Scalar | None, by_type: Counter[int]) -> str:
    if isinstance(file_type, int) and not isinstance(file_type, bool):
        try:
            name = LlamaFileType(file_type).name
        except ValueError:
            return f"file type {file_type}"
        if name != "GUESSED":
            return "F32" if name == "ALL_F32" else name.removeprefix("MOSTLY_")
    if by_type:
        commonest = by_type.most_common(1)[0][0]
        try:
            return GGMLQuantizationType(commonest).name
        except ValueError:
            return f"tensor type {commonest}"
    return "unknown"
