"""Reading the data files behind the rules: packaged ones from `rules/` (inside the wheel), and users' own."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import CkptSizeError, RulesError

# Placement files, rule files, recipes and --tensor-type-file lists are text a person writes or a tool generates:
# the largest real ones (a per-tensor recipe of a 1,000-layer model) are a few MB. The cap is what a corrupt or
# hostile "file" (/dev/zero, a multi-GB log passed by mistake) may cost before being refused.
MAX_USER_FILE_BYTES = 16 << 20


def read_packaged(name: str) -> str:
    """Text of a file in `rules/`: package data when installed, the checkout's `rules/` when run from source.

    The two usual places are tried as plain paths first: importlib.resources costs ~5 ms of imports (tempfile,
    shutil, lzma …) on every start. It is asked only for other layouts (a zipped install)."""
    here = Path(__file__).resolve().parent
    for folder in (here / "rules", here.parent / "rules"):
        path = folder / name
        if path.is_file():
            return path.read_text(encoding="utf-8")
    from importlib import resources

    return resources.files("inspector.rules").joinpath(name).read_text(encoding="utf-8")


def read_user_file(path: str | Path, what: str, *, error: type[CkptSizeError] = RulesError) -> str:
    """Text of a user's rules, table, recipe or plan file; one clear `error` when it cannot be read.

    Only regular files up to MAX_USER_FILE_BYTES are read: a FIFO would block, /dev/zero never ends. The file is
    opened without blocking and checked on the open descriptor, so nothing can swap it between check and read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {_reason(e)}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: cannot read {what}: it is {_kind(info.st_mode)}, not a regular file",
                        hint=f"give the path of the {what} itself")
        if info.st_size > MAX_USER_FILE_BYTES:
            raise _too_big(path, what, info.st_size, error)
        try:
            data = f.read(MAX_USER_FILE_BYTES + 1)
        except OSError as e:
            raise error(f"{path}: cannot read {what}: {_reason(e)}") from None
    if len(data) > MAX_USER_FILE_BYTES:  # it grew while we read
        raise _too_big(path, what, len(data), error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: cannot read {what}: not UTF-8 text (byte {e.start:,} is {data[e.start]:#04x})",
                    hint="save it as UTF-8 text") from None


def _too_big(path: str | Path, what: str, size: int, error: type[CkptSizeError]) -> CkptSizeError:
    return error(f"{path}: {what} is {size:,} bytes, more than the {MAX_USER_FILE_BYTES:,} a {what} may have",
                 hint="check that this is the right file")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def _reason(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "too many levels of symbolic links (a link loop)"
    return e.strerror or str(e)
