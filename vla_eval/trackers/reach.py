"""Is a tracking server there? One short TCP connection attempt, before any work starts.

A tracker's own client retries for minutes before it gives up on a server nobody
listens on; a run should instead refuse at once, with one line, before it trains or
rolls anything out. Standard library only.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from vla_eval.errors import UsageError

TIMEOUT_S = 3.0


def check_reachable(uri: str, what: str, timeout: float = TIMEOUT_S) -> None:
    """Open (and close) a TCP connection to the host and port of an http(s) `uri`.

    Raises:
        UsageError: the URI names no host, or nothing answers within `timeout` seconds.
    """
    parts = urlsplit(uri)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UsageError(f"{what} {uri}: not a valid URL (bad port)") from None
    if not parts.hostname:
        raise UsageError(f"{what} {uri}: not a valid URL (no host)")
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"{what} {uri} cannot be reached ({reason}); start it, or choose another "
            "--tracker-uri (none: a local store in the run folder)"
        ) from None
