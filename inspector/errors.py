"""The typed errors of ckpt-size, each with the exit code the command line returns for it.

Exit codes (docs/cli.md): 0 ok; 1 could not do it (unreadable or corrupt input, network, bad rules file);
2 usage error; 3 the check ran and said no (validation errors, plan does not fit). ERROR_TABLE at the end maps
each class to its code and a default hint.
"""
from __future__ import annotations


class CkptSizeError(Exception):
    """Base class: a problem the user can act on, rendered as one `Error:` line."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message}; {self.hint}" if self.hint else message

    @property
    def exit_code(self) -> int:
        """The command line's exit code for this error (ERROR_TABLE)."""
        return exit_code_of(self)[0]


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


class QuantizeError(CkptSizeError):
    """llama-quantize itself would stop here (no fallback for a shape, requantizing refused, bad layer index)."""


class ConversionError(CkptSizeError):
    """convert_hf_to_gguf.py would stop here (an architecture or quantization method it cannot convert)."""


class OutputError(CkptSizeError):
    """A file the user asked us to write (--emit-yaml) could not be written: names the file and the reason."""


class CheckFailed(CkptSizeError):
    """The check ran and said no (a plan that does not fit, validation errors)."""


# One table: each error class, the exit code the command line returns for it, and what to do when the error itself
# gives no hint. Looked up along the class hierarchy (the most specific class wins), like huggingface_hub's CLI
# error table. Python's own errors that reach the command line are listed too: they are still one line.
ERROR_TABLE: tuple[tuple[type[BaseException], int, str | None], ...] = (
    (UsageError, 2, None),
    (CheckFailed, 3, None),
    (UnknownTypeError, 1, "this tool knows ggml types and safetensors dtypes up to its release; update ckpt-size"),
    (FormatError, 1, None),
    (SourceError, 1, None),
    (RulesError, 1, None),
    (RemoteError, 1, None),
    (OutputError, 1, None),
    (CkptSizeError, 1, None),
    (MemoryError, 1, "the input asks for more memory than this machine has; it is probably corrupt"),
    (RecursionError, 1, "the input nests too deeply; it is probably corrupt or hostile"),
    (OSError, 1, None),
)
INTERNAL_ERROR_HINT = "please report it with the --debug output"
# A message is one line a person reads: names and values from a hostile file (a 64 KiB GGUF key, a 100 MB
# safetensors name) are cut in the middle beyond this, saying how much was left out.
MAX_MESSAGE_CHARS = 2000
MAX_SHOWN_CHARS = 120


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text`, or its start and end around a note of how many characters were left out."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 2) // 2
    return f"{text[:keep]}…[{len(text) - 2 * keep:,} characters]…{text[-keep:]}"


def shown(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """repr(value) for a message, at most about `limit` characters (names and values read from files)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > 1000:
        # str() of an integer over 4,300 digits raises ValueError (Python's int_max_str_digits)
        return f"an integer of about {int(abs(value).bit_length() * 0.30103) + 1:,} digits"
    try:
        text = repr(value)
    except ValueError:  # a container holding such an integer
        text = f"a {type(value).__name__} holding integers too long to print"
    return clip(text, limit)


def exit_code_of(error: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message the command line prints for an error."""
    for cls, code, hint in ERROR_TABLE:
        if isinstance(error, cls):
            if isinstance(error, CkptSizeError):
                message = str(error) if error.hint or not hint else f"{error}; {hint}"
            else:
                message = f"{type(error).__name__}: {error}" + (f"; {hint}" if hint else "")
            return code, clip(message)
    return 1, clip(f"internal error ({type(error).__name__}: {error}); {INTERNAL_ERROR_HINT}")
