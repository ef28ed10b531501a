"""The byte-source seam: every parser reads headers through `ByteSource.read(offset, n)`.

Local files and Hub files implement the same protocol, so the GGUF and safetensors parsers are written once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from .paths import open_regular, os_error


class ByteSource(Protocol):
    """A file we may read ranges of. `read` returns fewer bytes than asked only at the end of the file."""

    name: str

    def size(self) -> int: ...

    def read(self, offset: int, n: int) -> bytes: ...


class LocalFile:
    """A local file read with `os.pread`; counts requests and bytes so tests and benchmarks can assert them."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self.requests = 0
        self.bytes_read = 0
        self._fd: int | None = None
        self._size: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            # read-only; refuses FIFOs, devices and folders without blocking (paths.open_regular)
            self._fd = open_regular(self.path)
        return self._fd

    def size(self) -> int:
        if self._size is None:
            self._size = os.fstat(self._open()).st_size
        return self._size

    def read(self, offset: int, n: int) -> bytes:
        if n <= 0 or offset >= self.size():
            return b""
        try:
            data = os.pread(self._open(), min(n, self.size() - offset), offset)
        except OSError as e:
            raise os_error(self.path, e) from None
        self.requests += 1
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # file descriptors are scarce when a split set has 1,000+ shards
        self.close()


@dataclass(frozen=True)
class ResolvedSource:
    """What a SOURCE turned into: the model's files in order, of one format, plus side files we parsed."""

    description: str
    format: str  # "gguf" or "safetensors"
    files: tuple[ByteSource, ...]
    index: Mapping[str, Any] | None = None
    config: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Remote sources report what reading cost so far: {"requests": n, "bytes": n}, listing calls included.
    fetch_stats: Callable[[], dict[str, int]] | None = None
    # With --quant NAME: True when these files are that quant (named so), False when they are the
    # highest-precision files to predict NAME from.
    quant_selected: bool = False
