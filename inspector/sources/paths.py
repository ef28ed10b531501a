"""Local paths as SOURCE: what exists, what only looks like a path, and one clear line for everything else.

Nothing here opens a file for writing; special files (FIFOs, devices, sockets) are refused from their `stat`, so
a FIFO given as SOURCE never blocks an `open()` and `/dev/zero` is never read.
"""
from __future__ import annotations

import difflib
import errno
import os
import re
import stat

from ..errors import SourceError

# Names of model and side files: a missing `x.gguf` is a mistyped path, never a Hub repo called `x.gguf`.
FILE_SUFFIXES = (".gguf", ".safetensors", ".json", ".bin", ".pt", ".pth", ".yaml", ".yml")
_SHOWN = 120  # characters of a path shown in an error before it is shortened


def shown(path: str) -> str:
    """The path for an error line: very long ones are shortened in the middle."""
    if len(path) <= _SHOWN:
        return path
    return f"{path[:60]}…{path[-50:]} ({len(path):,} characters)"


def local_stat(source: str) -> os.stat_result | None:
    """`stat` of a local SOURCE (symbolic links followed); None when nothing exists at that path.

    Raises:
        SourceError: a symbolic link loop, a dangling link, a path too long, no permission to look, a special
            file (FIFO, character or block device, socket).
    """
    if not source:
        return None
    try:
        st = os.stat(source)
    except ValueError:  # an embedded NUL byte
        raise SourceError(f"{source!r}: not a valid path (contains a NUL byte)") from None
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            _dangling_link(source)
            return None
        raise os_error(source, e) from None
    kind = special_kind(st.st_mode)
    if kind is not None:
        raise SourceError(f"{shown(source)} is a {kind}, not a regular file or folder",
                          hint="pass a model file (.gguf, .safetensors, index .json) or a folder of them")
    return st


def _dangling_link(source: str) -> None:
    try:
        if os.path.islink(source):
            target = os.readlink(source)
            raise SourceError(f"{shown(source)} is a symbolic link to {shown(target)}, which does not exist",
                              hint="fix the link or pass the file it should point to")
    except OSError:
        return


def os_error(path: str, e: OSError) -> SourceError:
    """One line for an OSError on a local path, by errno (symbolic link loop, too long, permission …)."""
    name = shown(os.fspath(path))
    if e.errno == errno.ELOOP:
        return SourceError(f"{name}: symbolic link loop (a link points back to itself)",
                           hint="fix the link or pass the file it should point to")
    if e.errno == errno.ENAMETOOLONG:
        return SourceError(f"{name}: path too long for this system",
                           hint="use a shorter path, or cd into the folder and pass a relative one")
    if e.errno in (errno.EACCES, errno.EPERM):
        return SourceError(f"{name}: permission denied", hint="make it readable (chmod +r) or run as its owner")
    if e.errno == errno.EISDIR:
        return SourceError(f"{name} is a folder, not a file")
    return SourceError(f"{name}: cannot read ({e.strerror or e})")


def special_kind(mode: int) -> str | None:
    """"FIFO", "character device", … for a mode that is neither a regular file nor a folder; None otherwise."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def looks_like_path(source: str) -> bool:
    """True when a SOURCE that does not exist was meant as a local path, not as a Hub ref.

    That is: it starts with ``./``, ``../``, ``/``, ``~`` (or a drive letter, or holds a backslash); it names a
    file (``x.gguf``, ``dir/x.safetensors``: a model file suffix on its first or second part, where a repo name
    would be); or it has a path separator and a leading part of it exists locally (``fixtures/model`` when
    ``fixtures`` is a local folder). ``owner/name`` with none of that is a Hub ref; ``hf://owner/name`` always is.
    """
    if source.startswith(("hf://", "http://", "https://")):
        return False
    if source.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in source or re.match(r"^[A-Za-z]:", source):
        return True
    parts = [p for p in source.split("/") if p]
    if not parts:
        return True
    # the repo-name position holds a file name (@rev stripped): `x.gguf`, `dir/x.gguf`
    if any(p.split("@", 1)[0].lower().endswith(FILE_SUFFIXES) for p in parts[:2]):
        return True
    if len(parts) > 1 and deepest_existing(source) not in ("", "."):
        return True
    return False


def deepest_existing(source: str) -> str:
    """The longest leading part of `source` that exists locally ("." when none does, for relative paths)."""
    path = os.path.normpath(source)
    absolute = os.path.isabs(path)
    head = path
    while True:
        parent = os.path.dirname(head)
        if parent == head or not parent:
            return os.sep if absolute and os.path.exists(os.sep) else "."
        head = parent
        try:
            if os.path.lexists(head):
                return head
        except (OSError, ValueError):
            return "."


def missing_path_error(source: str) -> SourceError:
    """"no such file or directory", with the deepest existing parent and close matches of the missing part."""
    name = shown(source)
    if len(source) > 4096 or any(len(p) > 255 for p in source.split("/")):
        return SourceError(f"{name}: path too long for this system", hint="use a shorter path")
    parent = deepest_existing(source)
    rest = os.path.relpath(os.path.normpath(source), parent) if parent != "." else os.path.normpath(source)
    missing = rest.split(os.sep)[0]
    shown_parent = "the current folder" if parent == "." else (parent.rstrip(os.sep) + os.sep)
    if parent != "." and not os.path.isdir(parent):
        hint = f"{shown(parent)} is a file, not a folder"
    else:
        try:
            entries = os.listdir(parent)
        except OSError:
            entries = []
        lowered = {e.lower(): e for e in entries}
        close = [lowered[c] for c in difflib.get_close_matches(missing.lower(), list(lowered), n=3, cutoff=0.6)]
        prefix = "" if parent == "." else shown_parent
        hint = f"{shown_parent} exists but holds no {missing!r}"
        if close:
            hint += f" (did you mean {', '.join(prefix + c for c in close)}?)"
    if source.startswith("~"):
        hint += "; '~' is not expanded inside quotes"
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*", source) and not source.endswith(
            FILE_SUFFIXES):
        hint += f"; for the Hub repo of that name write hf://{source}"
    elif "/" not in source.strip("/") and not looks_like_path(source):
        hint += "; a Hub repo is written owner/name"
    return SourceError(f"{name}: no such file or directory", hint=hint)


def open_regular(path: str | os.PathLike[str]) -> int:
    """A read-only file descriptor of a regular file; never blocks on a FIFO, never reads a device.

    `O_NONBLOCK` makes `open()` of a FIFO return at once (it has no effect on regular files); `fstat` of the
    opened descriptor then refuses anything that is not a regular file, so a path swapped after an earlier
    check is refused too.

    Raises:
        SourceError: missing, not a regular file, symbolic link loop, permission denied, too long.
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    name = os.fspath(path)
    try:
        fd = os.open(name, flags)
    except FileNotFoundError:
        raise SourceError(f"{shown(name)}: no such file or directory") from None
    except OSError as e:
        raise os_error(name, e) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SourceError(f"{shown(name)} is a folder, not a model file")
        kind = special_kind(st.st_mode)
        if kind is not None:
            raise SourceError(f"{shown(name)} is a {kind}, not a regular file",
                              hint="pass a model file (.gguf, .safetensors, index .json) or a folder of them")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The whole content of a small regular file, refusing more than `max_bytes` (side files: index, config)."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise SourceError(f"{shown(os.fspath(path))}: larger than {max_bytes} bytes; not a model side file")
        chunks = []
        got = 0
        while got <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > max_bytes:
            raise SourceError(f"{shown(os.fspath(path))}: larger than {max_bytes} bytes; not a model side file")
        return b"".join(chunks)
    except OSError as e:
        raise os_error(os.fspath(path), e) from None
    finally:
        os.close(fd)


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """True for a regular file (symbolic links followed); False for folders, special files and errors."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
