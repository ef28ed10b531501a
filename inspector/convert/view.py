"""The typed result of the converter view: the GGUF checkpoint convert_hf_to_gguf.py would write, and the facts
about it that are not KVs of that file (header estimate, outtype, converter, notes)."""
from __future__ import annotations

from dataclasses import dataclass

from ..model import Checkpoint


@dataclass(frozen=True)
class ConvertedView:
    """What `to_gguf_view` returns.

    `checkpoint`: format "gguf", the converter's architecture, its tensors (GGUF names, `ne` shapes, converter
    types, exact bytes, roles) and as metadata only the KVs the GGUF would hold (config KVs, general.*; no
    tokenizer). `header_estimate`: bytes from the GGUF magic through the last tensor info, unpadded (the data
    starts at this padded to 32); `header_basis` says how it was estimated. `outtype`: "BF16" or "F16" as
    `--outtype auto` chose. `converter`: the converter class and commit. `notes`: every drop, with its tensor count
    and checkpoint bytes (drops that matter are also in `checkpoint.warnings`).
    """

    checkpoint: Checkpoint
    header_estimate: int
    header_basis: str
    outtype: str
    converter: str
    notes: tuple[str, ...] = ()
    source_format: str = "safetensors"

    def describe(self) -> list[str]:
        """Human-readable lines about the view (outtype, header estimate, notes), for reports."""
        view = self.checkpoint
        return [f"converter view of {view.source}: {view.architecture}, outtype {self.outtype}, "
                f"{len(view.tensors)} tensors, {view.nbytes:,} bytes of tensor data",
                f"header: ~{self.header_estimate:,} bytes ({self.header_basis})", *self.notes]
