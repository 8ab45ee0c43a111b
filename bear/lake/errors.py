"""What can go wrong on a sink, as one line each: the exception classes, and how a failure is classified.

Remote (GCS) failures are transient (retried by `Sink.retrying`), a missing object, a lost
precondition, an auth problem (with how to fix it) or fatal. Local disk failures are never
transient: a full disk or a read-only file system stops the run with one line, and the
checkpoint stays where the last commit left it.
"""

from __future__ import annotations

import errno

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Exception classes (matched anywhere in the MRO, so aiohttp, requests and google-auth need not be
# imported here) that mean "the request may not have reached GCS or its answer was lost".
TRANSIENT_TYPES = frozenset({
    "ClientConnectionError",  # aiohttp: refused, reset, server disconnected, socket timeouts
    "ClientPayloadError",  # aiohttp: response body cut short
    "ConnectionError", "Timeout", "ChunkedEncodingError",  # requests (gcsfs maps HTTP 502 to ProxyError)
    "TransportError",  # google-auth could not reach the token endpoint
    "ChecksumError",  # gcsfs: the server's md5 of the stored object differs from ours
})
# Credentials that could not be found, loaded or refreshed.
AUTH_TYPES = frozenset({"RefreshError", "DefaultCredentialsError", "NonRetryableError"})
RESUME = "rerun the same command to resume from the last committed chunk"


class SinkError(RuntimeError):
    """A sink failure that retrying will not fix; `str()` is one line saying what to do."""

    exit_code = 1  # a runtime failure; the checkpoint stays and a rerun resumes


class SinkSettingError(SinkError):
    """A sink setting that cannot work (an unwritable root, a missing bucket or key file): exit code 2."""

    exit_code = 2


class SinkAuthError(SinkError):
    """GCS refused the credentials or their permissions; the message says how to fix it."""


class SinkKeyFileError(SinkAuthError, SinkSettingError):
    """sink.token names a key file that does not exist."""


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (gcsfs HttpError.code, aiohttp .status), if any."""
    for attr in ("code", "status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    if isinstance(exc, OSError) and str(exc).startswith("Forbidden:"):
        return 403  # gcsfs raises OSError("Forbidden: <path>...") for 403 without a status attribute
    return None


def classify(exc: BaseException) -> str:
    """'auth', 'transient', 'missing', 'precondition' (a conditional write lost its race) or 'fatal' for an
    exception raised by a filesystem call."""
    status = _status_of(exc)
    types = {c.__name__ for c in type(exc).__mro__}
    if status in (401, 403) or types & AUTH_TYPES:
        return "auth"
    if status in TRANSIENT_STATUS or types & TRANSIENT_TYPES or isinstance(exc, ConnectionError | TimeoutError):
        return "transient"
    if status == 404 or isinstance(exc, FileNotFoundError):
        return "missing"
    if status == 412 or isinstance(exc, FileExistsError):  # gcsfs raises FileExistsError for HTTP 412
        return "precondition"
    return "fatal"


def brief(exc: BaseException, limit: int = 240) -> str:
    """`Type: message` on one line, shortened (server messages can be long or multi-line)."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def auth_message(exc: BaseException, what: str, display: str) -> str:
    """One line: what GCS refused and how to fix it. Names no credential, only where they come from."""
    status = _status_of(exc)
    bucket = display.removeprefix("gs://").split("/", 1)[0]
    if status == 403:
        return (f"GCS denied access to {display} (HTTP 403 on {what}: {brief(exc)}): the credentials work but lack "
                f"permission. Fix: grant the account roles/storage.objectAdmin on gs://{bucket}, or set sink.token "
                f"to the key file of an account that has it; then {RESUME}")
    fix = ("Fix: run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS or sink.token to "
           f"a service-account key file; then {RESUME}")
    if status == 401:
        return f"GCS rejected the credentials for {display} (HTTP 401 on {what}): they are invalid or expired. {fix}"
    return f"no usable Google credentials for {display} ({brief(exc)}, on {what}). {fix}"


def disk_message(exc: OSError, what: str, display: str) -> str:
    """One line for a local disk failure: a full disk (or quota) says to free space, anything else what failed."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the disk of {display} ({what}): free space (or set sink.root to a larger "
                f"disk), then {RESUME}")
    return f"{what} on {display} failed: {exc.strerror or brief(exc)}; fix the cause, then {RESUME}"
