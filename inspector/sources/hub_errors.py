"""The Hub's failures: the typed errors a user sees (one line each, exit code 1), and the retryable kind the
client handles itself (a status in RETRY_STATUS, a transport error, an answer that broke the protocol)."""
from __future__ import annotations

import email.utils
import time
from typing import Any

from ..errors import RemoteError


class HubError(RemoteError):
    """The Hub answered with an error or could not be reached (exit code 1)."""


class HubRepoNotFound(HubError):
    """The repository does not exist, or is private and the token cannot see it."""


class HubRevisionNotFound(HubError):
    """The revision (branch, tag, commit, refs/pr/N) does not exist in the repository."""


class HubGatedRepo(HubError):
    """The repository is gated: access must be requested on the Hub and a token given."""


class HubUnauthorized(HubError):
    """The token was rejected, or lacks the permission for this repository."""


class HubNetworkError(HubError):
    """The endpoint could not be reached, timed out, or kept failing after every retry."""


class HubOfflineError(HubError):
    """Offline mode is on and the files are not in the local Hugging Face cache."""


class _Retry(Exception):
    """A retryable failure: a status in RETRY_STATUS, a transport error, or an answer that broke the protocol
    (a body cut short, a wrong Content-Range)."""

    def __init__(self, reason: str, wait: float | None = None, connect: bool = False, status: int | None = None,
                 protocol: bool = False) -> None:
        super().__init__(reason)
        self.wait = wait
        self.connect = connect
        self.status = status
        self.protocol = protocol

    @property
    def throttled(self) -> bool:
        """The server asked us to slow down: 429, or 503 naming a wait (Retry-After / RateLimit)."""
        return self.status == 429 or (self.status == 503 and self.wait is not None)


class _ListingChanged(Exception):
    """Pages of one listing disagree (an entry seen twice): the repo changed while it was listed."""


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from `RateLimit` (remaining 0) or `Retry-After` (seconds or an HTTP date)."""
    try:
        from huggingface_hub.utils import parse_ratelimit_headers

        info = parse_ratelimit_headers(headers)
        if info is not None and info.remaining == 0:
            return float(info.reset_in_seconds)
    except Exception:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None
