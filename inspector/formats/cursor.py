"""A forward-only reader of header bytes over a ByteSource.

It reads in growing chunks that continue where the last one ended (never from byte 0 again), drops bytes
already parsed, and refuses to read past a header cap, so a hostile header cannot make us allocate or read
without bound. Hub sources get the same access pattern as local files.
"""
from __future__ import annotations

import struct

from ..errors import FormatError
from ..sources.base import ByteSource

FIRST_CHUNK = 64 << 10  # most GGUF headers without a tokenizer fit; hf_hub reads 100 kB for safetensors
MAX_CHUNK = 8 << 20
_LENGTH = {"<": struct.Struct("<Q"), ">": struct.Struct(">Q")}


class HeaderCursor:
    """Sequential little- or big-endian reads of header fields, with the absolute offset of each."""

    def __init__(self, source: ByteSource, *, start: int = 0, limit: int, endian: str = "<") -> None:
        self.source = source
        self.name = source.name
        self.limit = limit  # absolute offset past which the header may not extend
        self.endian = endian
        self._buf = bytearray()
        self._start = start
        self._base = start  # absolute offset of _buf[0]
        self._pos = 0  # position inside _buf
        # A source that fetched its first block ahead (Hub files) says how big it was: reading exactly that much
        # first costs no request, and later reads continue from its end.
        self._chunk = getattr(source, "first_block", 0) or FIRST_CHUNK
        self._size = source.size()

    @property
    def offset(self) -> int:
        return self._base + self._pos

    def remaining(self) -> int:
        """Bytes left in the file after the current position (the header cannot be longer)."""
        return self._size - self.offset

    def fail(self, message: str, **kw: object) -> FormatError:
        return FormatError(self.name, message, offset=self.offset, **kw)  # type: ignore[arg-type]

    def _fill(self, n: int, what: str) -> None:
        """Make sure `n` bytes are buffered at the current position."""
        missing = self._pos + n - len(self._buf)
        if missing <= 0:
            return
        # The file's end is checked before the cap: callers pass limit=min(file size, cap), so a truncated file
        # used to be reported as "header longer than the <file size>-byte cap", blaming a cap that is not the
        # problem. (The cap is also measured from the header start, not from `_base`, which moves forward as
        # parsed bytes are dropped.)
        if self.offset + n > self._size:
            raise self._truncated(n, what)
        if self.offset + n > self.limit:
            raise self.fail(f"header longer than the {self.limit - self._start:,}-byte cap while reading {what}")
        if self._pos > len(self._buf) // 2:  # forget parsed bytes; keeps memory near one chunk
            del self._buf[: self._pos]
            self._base += self._pos
            self._pos = 0
        want = max(missing, self._chunk)
        end = self._base + len(self._buf)
        data = self.source.read(end, min(want, self.limit - end))
        # The next read is as long as everything read so far: the total doubles per read, so the bytes read stay
        # under twice the header and the number of reads grows with its logarithm.
        self._chunk = min(end + len(data) - self._start, MAX_CHUNK)
        self._buf += data
        if len(data) < missing:  # the source returned less than its size() promised
            raise self._truncated(n, what)

    def _truncated(self, n: int, what: str) -> FormatError:
        return self.fail(
            f"file ends inside the header while reading {what} "
            f"(needs {self.offset + n:,} bytes, file has {self._size:,})",
            hint="the file is truncated or not a model file",
        )

    def unpack(self, fmt: str, size: int, what: str) -> tuple:
        self._fill(size, what)
        values = struct.unpack_from(self.endian + fmt, self._buf, self._pos)
        self._pos += size
        return values

    def u32(self, what: str) -> int:
        return self.unpack("I", 4, what)[0]

    def u64(self, what: str) -> int:
        return self.unpack("Q", 8, what)[0]

    def take(self, n: int, what: str) -> bytes:
        self._fill(n, what)
        data = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        """Move forward `n` bytes; only the bytes inside the header cap are ever read."""
        while n > 0:
            step = min(n, MAX_CHUNK)
            self._fill(step, what)
            self._pos += step
            n -= step

    def skip_strings(self, count: int, max_len: int, what: str) -> None:
        """Skip `count` length-prefixed strings without building a Python object for any of them.

        Tokenizer arrays hold up to ~262k strings; this walk is the whole cost of a large-vocabulary header.
        """
        length = _LENGTH[self.endian].unpack_from
        while count:
            # The strings wholly inside the buffer, in a loop of locals only; the one that crosses its end is
            # filled (and checked) below, then the loop goes on over the new buffer.
            buf, pos = self._buf, self._pos
            size = len(buf)
            end = size - 8
            done = count
            for i in range(count):
                if pos > end:
                    done = i
                    break
                (n,) = length(buf, pos)
                after = pos + 8 + n
                if n > max_len or after > size:
                    done = i
                    break
                pos = after
            self._pos = pos
            count -= done
            if not count:
                return
            self._fill(8, what)
            (n,) = length(self._buf, self._pos)
            if n > max_len:
                raise self.fail(f"{what}: string of {n:,} bytes exceeds the {max_len:,}-byte cap")
            self._fill(8 + n, what)
            self._pos += 8 + n
            count -= 1
