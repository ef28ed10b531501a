"""PowerInfer's neuron split file, `<model>.generated.gpuidx`, read from its header.

Written by `powerinfer-py/powerinfer/export_split.py` (PowerInfer d3ebd7c5): a GGUF of architecture
`generic.gpu_index` whose magic is then overwritten with "PWRI"; KVs `generic.gpu_index.block_count` and
`split.vram_capacity` (u64: the VRAM budget left when it was generated); per layer, in this order,
`blk.N.gpu_idx` (I32 [n_ff], a 0/1 mask of the neurons on the GPU) and `blk.N.gpu_bucket` (I32 [k], the sorted
indices of those k neurons). PowerInfer's `llama_gpu_split_loader` reads them by position (tensor 2·il and 2·il+1),
requires `n_tensors == 2·n_layer`, and `check_vram_allocable` refuses the file when `split.vram_capacity` exceeds
the budget left now (it then regenerates it).

The header gives k per layer (the bucket's length). PowerInfer counts the mask's ones instead (`sum_gpu_index`);
export_split.py writes both from the same `topk`, so they agree in files it wrote.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import FormatError, UsageError
from ...formats.gguf import GgufHeader, GgufTensor, parse_gguf
from ...model import FileInfo, TensorInfo
from ...sources.base import LocalFile

SUFFIX = ".generated.gpuidx"  # llm_load_gpu_split_with_budget: ml.file.fname + ".generated.gpuidx"
VRAM_CAPACITY_KEY = "split.vram_capacity"  # gguf-py Keys.Split.VRAM_CAPACITY (PowerInfer's gguf-py)
INDEX_ARCH = "generic.gpu_index"


@dataclass(frozen=True)
class GpuIndex:
    """The split of one model: per layer the number of neurons on the GPU, and the file's tensors."""

    path: str
    vram_capacity: int
    neurons: tuple[int, ...]  # k per layer (gpu_bucket lengths)
    n_ff: tuple[int, ...]  # gpu_idx lengths
    tensors: tuple[GgufTensor, ...]  # gpu_idx, gpu_bucket per layer, in file order
    file: FileInfo

    @property
    def n_layer(self) -> int:
        return len(self.neurons)


def default_path(model_path: str) -> str:
    """Where PowerInfer looks for a model's split."""
    return model_path + SUFFIX


def find_index(model_path: str, explicit: str | None) -> str | None:
    """The split file to read: the one named by --gpu-index, else `<model>.generated.gpuidx` when it exists."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise UsageError(f"--gpu-index {explicit}: no such file",
                             hint=f"PowerInfer writes it beside the model as <model>{SUFFIX}")
        return explicit
    candidate = default_path(model_path)
    return candidate if os.path.isfile(candidate) else None


def read_index(path: str) -> GpuIndex:
    """Parse a split file's header.

    Raises:
        FormatError: not a GGUF/PWRI file, no `split.vram_capacity`, tensors not in gpu_idx/gpu_bucket pairs of I32.
    """
    source = LocalFile(path)
    try:
        header = parse_gguf(source)
    finally:
        source.close()
    return _index_of(header)


def _index_of(h: GgufHeader) -> GpuIndex:
    capacity = h.metadata.get(VRAM_CAPACITY_KEY)
    if not isinstance(capacity, int) or isinstance(capacity, bool):
        raise FormatError(h.source, f"no {VRAM_CAPACITY_KEY!r} (u64): not a PowerInfer GPU index "
                                    "(llama_gpu_split_loader requires it)")
    if len(h.tensors) % 2:
        raise FormatError(h.source, f"{len(h.tensors)} tensors: a GPU index holds gpu_idx/gpu_bucket pairs")
    neurons, n_ff = [], []
    for il in range(len(h.tensors) // 2):
        idx, bucket = h.tensors[2 * il], h.tensors[2 * il + 1]
        for t, what in ((idx, "gpu_idx"), (bucket, "gpu_bucket")):
            if t.gtype.name != "I32" or len(t.ne) != 1:
                raise FormatError(h.source, f"tensor {2 * il + (what == 'gpu_bucket')} ({t.name!r}) should be the "
                                            f"1-D I32 blk.{il}.{what} (export_split.py writes pairs in layer order)")
        if bucket.ne[0] > idx.ne[0]:
            raise FormatError(h.source, f"{bucket.name!r} lists {bucket.ne[0]:,} neurons of {idx.ne[0]:,}")
        neurons.append(bucket.ne[0])
        n_ff.append(idx.ne[0])
    file = FileInfo(h.source, h.file_size, h.data_offset, h.expected_size)
    return GpuIndex(h.source, capacity, tuple(neurons), tuple(n_ff), h.tensors, file)


def index_tensors(index: GpuIndex, file_index: int) -> list[TensorInfo]:
    """The split file's tensors as tensors the runtime adds to the model: role `predictor`, their layer, no model
    parameters (they are an index, not weights), on the CPU (the caller moves GPU buckets)."""
    out = []
    for i, t in enumerate(index.tensors):
        out.append(TensorInfo(t.name, t.ne, t.gtype.name, t.nbytes, t.offset, file_index, 0, role="predictor",
                              layer=i // 2, device="cpu"))
    return out
