"""The typed errors of ckpt-size, each with the exit code the command line returns for it.

Exit codes (docs/cli.md): 0 ok; 1 could not do it (unreadable or corrupt input, network, bad rules file);
2 usage error; 3 the check ran and said no (validation errors, plan does not fit).
"""
from __future__ import annotations


class CkptSizeError(Exception):
    """Base class: a problem the user can act on, rendered as one `Error:` line."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message}; {self.hint}" if self.hint else message


class SourceError(CkptSizeError):
    """A SOURCE could not be resolved to files (missing path, missing shard, nothing to inspect)."""


class FormatError(CkptSizeError):
    """A header is corrupt, truncated, hostile or of an unsupported kind."""

    def __init__(self, source: str, message: str, *, offset: int | None = None, hint: str | None = None) -> None:
        where = f"{source}" if offset is None else f"{source} (at byte {offset})"
        super().__init__(f"{where}: {message}", hint=hint)
        self.source = source
        self.offset = offset


class UnknownTypeError(FormatError):
    """A tensor uses a ggml type id or safetensors dtype that no table we know defines."""


class RulesError(CkptSizeError):
    """A rules file (roles, placement) is invalid: names the file and line."""


class RemoteError(CkptSizeError):
    """The Hub or the network failed us."""


class UsageError(CkptSizeError):
    """The options do not make sense together; the command line maps this to exit code 2."""

    exit_code = 2


class CheckFailed(CkptSizeError):
    """The check ran and said no (a plan that does not fit, validation errors)."""

    exit_code = 3
