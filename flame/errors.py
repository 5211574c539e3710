"""The error tree. Every error carries a sentence a person can act on.

FlameError                      code            HTTP
├── ConfigError                 config_error    -
├── LockedError                 locked          503
├── WrongPassword               wrong_password  401
├── PeerUnreachable             unreachable     -   (outbound only)
├── PeerRefused                 peer_refused    -   (outbound: the peer answered 4xx/5xx)
└── RequestError                (subclass sets) 4xx (inbound: bad input from a peer or the UI)
    ├── BadRequest              bad_request     400
    ├── BadEnvelope             bad_envelope    400
    ├── DecryptionFailed        rejected        400 (peers learn only "rejected")
    ├── AuthError               unauthorized    401
    ├── Forbidden               forbidden       403
    ├── NotFound                not_found       404
    ├── Conflict                conflict        409
    ├── LengthRequired          length_required 411
    ├── TooLarge                too_large       413
    └── TooManyRequests         rate_limited    429
"""

from __future__ import annotations


class FlameError(Exception):
    code = "error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(FlameError):
    code = "config_error"


class LockedError(FlameError):
    code = "locked"
    status = 503


class WrongPassword(FlameError):
    code = "wrong_password"
    status = 401


class PeerUnreachable(FlameError):
    code = "unreachable"


class PeerRefused(FlameError):
    code = "peer_refused"

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


class RequestError(FlameError):
    status = 400


class BadRequest(RequestError):
    code = "bad_request"


class BadEnvelope(RequestError):
    code = "bad_envelope"


class DecryptionFailed(RequestError):
    code = "rejected"


class AuthError(RequestError):
    code = "unauthorized"
    status = 401


class Forbidden(RequestError):
    code = "forbidden"
    status = 403


class NotFound(RequestError):
    code = "not_found"
    status = 404


class Conflict(RequestError):
    code = "conflict"
    status = 409


class LengthRequired(RequestError):
    code = "length_required"
    status = 411


class TooLarge(RequestError):
    code = "too_large"
    status = 413


class TooManyRequests(RequestError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class Unavailable(RequestError):
    """This daemon cannot take it now (for instance its disk is full); the sender tries again."""

    code = "unavailable"
    status = 503
