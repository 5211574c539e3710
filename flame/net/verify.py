"""Verification of signed requests (PROTOCOL.md §4): audience, time window, not before this
process started, signature, replay; then, when a limit is set, the authenticated caller's own
token bucket (PROTOCOL.md §12.5).

Per caller only after verification: a bucket keyed by a name anyone can claim would let a
stranger spend someone else's allowance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from flame.core.ratelimit import TokenBuckets
from flame.core.signing import NonceCache, SignedRequest
from flame.errors import AuthError, TooManyRequests

KeyLookup = Callable[[str], Awaitable[bytes | None]]


def rate_limited(buckets: TokenBuckets, wait_s: float, who: str) -> TooManyRequests:
    seconds = buckets.retry_after_s(wait_s)
    return TooManyRequests(
        f"Too many requests from {who}; try again in {seconds} s.",
        retry_after_s=seconds,
        code="rate_limited",
    )


class RequestVerifier:
    """Checks signed requests addressed to `audience`; keys come from the caller's lookup."""

    def __init__(
        self,
        audience: str,
        started_at: float,
        clock_now: Callable[[], float],
        *,
        per_caller: TokenBuckets | None = None,
    ) -> None:
        self.audience = audience
        # Whole seconds, rounded down: requests signed in the very second of a restart still pass
        # (a replay of one of those is the only gap: see PROTOCOL.md §4); rounding up would refuse
        # every honest peer for up to a second after each start.
        self.started_at = int(started_at)
        self.now = clock_now
        self.nonces = NonceCache()
        self.per_caller = per_caller
        self.refused = 0  # requests refused with 429 so far (for the log and the tests)

    async def verify(
        self,
        request: web.Request,
        body: bytes,
        lookup: KeyLookup,
        *,
        unsigned_body: bool = False,
        mac_lookup: KeyLookup | None = None,
        signatures: bool = True,
    ) -> str:
        """Return the authenticated username, or raise AuthError (401) or TooManyRequests (429).
        `unsigned_body`: the route streams its body and accepts UNSIGNED-PAYLOAD in place of its
        hash (PROTOCOL.md §11.4). `mac_lookup` gives the pair key of a version 2 caller, whose
        request carries a MAC instead of a signature (§14.8); `signatures` False refuses the
        version 1 signature (security.min_version = 2)."""
        signed = SignedRequest.from_headers(request.headers)
        if signed.mac is not None:
            if mac_lookup is None:
                raise AuthError("This request must be signed with Ed25519.", code="bad_signature")
            lookup = mac_lookup
        elif not signatures:
            raise AuthError(
                "This daemon does not accept protocol version 1 requests: it speaks only "
                "version 2 (PROTOCOL.md §14.2).",
                code="old_version",
            )
        now = self.now()
        # Only a request of a plausible form costs a key lookup, which may ask the directory.
        signed.check_context(expected_audience=self.audience, now=now, not_before=self.started_at)
        identity_key = await lookup(signed.user)
        if identity_key is None:
            raise AuthError(f"Unknown user {signed.user[:40]!r}.", code="unknown_user")
        signed.check(
            identity_key,
            method=request.method,
            path_qs=request.raw_path,
            host=request.headers.get("Host", ""),
            expected_audience=self.audience,
            body=body,
            now=now,
            not_before=self.started_at,
            unsigned_body=unsigned_body,
        )
        self.nonces.check_and_add(signed.user, signed.nonce, now)
        if self.per_caller is not None:
            wait = self.per_caller.take(signed.user, now)
            if wait > 0:
                self.refused += 1
                raise rate_limited(self.per_caller, wait, signed.user)
        return signed.user
