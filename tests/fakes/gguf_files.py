"""Small but valid GGUF model files with chosen metadata, written with ``gguf``'s writer.

They hold one or two tensors of seeded random numbers, so that two files written with the
same arguments are byte for byte the same and any corruption changes their sha256. Real
model loaders would find nothing to run in them; the header readers find all they need.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType

__all__ = ["sha256_of", "write_gguf"]


def write_gguf(
    path: Path,
    *,
    architecture: str = "llama",
    name: str = "Tiny Test Model",
    size_label: str = "",
    context_length: int | None = 4096,
    chat_template: str | None = "{{ messages }}",
    file_type: LlamaFileType | None = LlamaFileType.ALL_F32,
    megabytes: float = 0.25,
    vocabulary: int = 16,
    seed: int = 0,
) -> Path:
    """Write a GGUF file to ``path`` and return it.

    ``megabytes`` sets the size of the weight data (float32), ``vocabulary`` the number
    of tokenizer entries; ``None`` for ``context_length``, ``chat_template`` or
    ``file_type`` leaves that key out.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, architecture)
    writer.add_name(name)
    if size_label:
        writer.add_size_label(size_label)
    if context_length is not None:
        writer.add_context_length(context_length)
    if file_type is not None:
        writer.add_file_type(int(file_type))
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"tok{i}" for i in range(vocabulary)])
    writer.add_token_scores([0.0] * vocabulary)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    rng = np.random.default_rng(seed)
    columns = 256
    rows = max(1, int(megabytes * 1024 * 1024 / 4 / columns))
    writer.add_tensor("blk.0.ffn_up.weight", rng.random((rows, columns), dtype=np.float32))
    writer.add_tensor("output_norm.weight", rng.random(columns, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def sha256_of(path: Path) -> str:
    """The sha256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
