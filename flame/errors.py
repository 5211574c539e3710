"""The error tree. Every error carries a sentence a person can act on.

FlameError                      code            HTTP
├── ConfigError                 config_error    -
├── LockedError                 locked          503 (Retry-After: 30)
├── WrongPassword               wrong_password  401
├── PeerUnreachable             unreachable     -   (outbound only)
├── PeerRefused                 peer_refused    -   (outbound: the peer answered 4xx/5xx)
├── LogRefused                  key_log_refused -   (the directory's key log fails a check, §18.4)
└── RequestError                (subclass sets) 4xx (inbound: bad input from a peer or the UI)
    ├── BadRequest              bad_request     400
    ├── BadEnvelope             bad_envelope    400
    ├── DecryptionFailed        rejected        400 (peers learn only "rejected")
    ├── AuthError               unauthorized    401
    ├── Forbidden               forbidden       403
    ├── NotFound                not_found       404
    ├── RequestTimeout          request_timeout 408
    ├── Conflict                conflict        409
    ├── LengthRequired          length_required 411
    ├── TooLarge                too_large       413
    ├── TooManyRequests         rate_limited    429 (Retry-After)
    ├── Unavailable             unavailable     503
    └── TransferRefused         (per refusal)   4xx of the chunk routes (PROTOCOL.md §11.4)

One rule turns any of them into an answer (net/http.py's error middleware): the status, a JSON
body `{"error": code, "message": sentence, **extra}`, and `Retry-After` when the error says
when to come back. No handler writes an error answer of its own.
"""

from __future__ import annotations

import math
from typing import Any


class FlameError(Exception):
    code = "error"
    status = 500
    retry_after_s: float | None = None

    def __init_subclass__(
        cls, *, code: str | None = None, status: int | None = None, **options: Any
    ) -> None:
        super().__init_subclass__(**options)
        if code is not None:
            cls.code = code
        if status is not None:
            cls.status = status

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra: dict[str, Any] = {}

    def retry_after_header(self) -> str | None:
        """Whole seconds, at least 1 (RFC 9110 §10.2.3), or None when there is nothing to say."""
        if self.retry_after_s is None:
            return None
        return str(max(1, math.ceil(self.retry_after_s)))


class ConfigError(FlameError, code="config_error"):
    """A setting, flag or file the user gave is wrong; the message names it."""


class LockedError(FlameError, code="locked", status=503):
    """The daemon's keys are still sealed: its user has not logged in yet (PROTOCOL.md §7)."""

    retry_after_s = 30.0


class WrongPassword(FlameError, code="wrong_password", status=401):
    """The password does not open the keystore."""


class PeerUnreachable(FlameError, code="unreachable"):
    """An outbound call did not get an answer (refused, timed out, or the daemon is locked)."""


class PeerRefused(FlameError, code="peer_refused"):
    """An outbound call got a 4xx or 5xx; `code` is the peer's, `payload` its whole answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str = "peer_refused",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.http_status = status
        self.retry_after_s = retry_after_s
        self.payload = b""


class LogRefused(FlameError, code="key_log_refused"):
    """What the directory's key log showed fails a check (PROTOCOL.md §18.4); `kind` says which:
    `bad_signature`, `truncated`, `rewritten`, `entries_mismatch`, `bad_entry` or `fork`."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class RequestError(FlameError, status=400):
    """Bad input. `status`, `extra` (more fields of the JSON answer) and `retry_after_s` may be
    given per error; by default the subclass decides."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message, code=code)
        if status is not None:
            self.status = status
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s
        self.extra = extra


class BadRequest(RequestError, code="bad_request"):
    """Malformed input: JSON, a field, a parameter."""


class BadEnvelope(RequestError, code="bad_envelope"):
    """An envelope or inner message that breaks a rule of PROTOCOL.md §6."""


class DecryptionFailed(RequestError, code="rejected"):
    """An envelope or chunk that did not open; peers learn only `rejected`."""


class AuthError(RequestError, code="unauthorized", status=401):
    """Who is asking is not proven: a signature, a session."""


class Forbidden(RequestError, code="forbidden", status=403):
    """Proven, but not allowed."""


class NotFound(RequestError, code="not_found", status=404):
    """No such thing here."""


class RequestTimeout(RequestError, code="request_timeout", status=408):
    """The body did not arrive in time."""


class Conflict(RequestError, code="conflict", status=409):
    """Not in the state this request needs."""


class LengthRequired(RequestError, code="length_required", status=411):
    """A streamed body without its Content-Length."""


class TooLarge(RequestError, code="too_large", status=413):
    """Over a size limit."""


class TooManyRequests(RequestError, code="rate_limited", status=429):
    """Over a rate limit; Retry-After says when to come back."""

    def __init__(
        self, message: str, *, retry_after_s: float, code: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message, code=code, retry_after_s=retry_after_s, **extra)


class Unavailable(RequestError, code="unavailable", status=503):
    """This daemon cannot take it now (for instance its disk is full); the sender tries again."""


class TransferRefused(RequestError):
    """A refusal on the file routes; `extra` carries what the receiver holds (`received_bytes`,
    `state`), so that the sender resumes from there (PROTOCOL.md §11.4)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        retry_after_s: float | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message, code=code, status=status, retry_after_s=retry_after_s, **extra)
