"""What the peer routes share: the services (through their holder: a locked daemon has none) and
the verifier of signed requests."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from flame.core.models import USERNAME_RE
from flame.net.http import read_body
from flame.net.verify import RequestVerifier
from flame.services.registry import ServiceHolder, Services

PREFIX = "/api/v1"


@dataclass(frozen=True, slots=True)
class PeerState:
    holder: ServiceHolder
    verifier: RequestVerifier

    @property
    def services(self) -> Services:
        """LockedError (503 `locked`, Retry-After) while the daemon is locked."""
        return self.holder.services

    async def signed_body(
        self, request: web.Request, limit: int | None = None
    ) -> tuple[str, bytes]:
        """Read the bounded body and verify the request: (the caller, the body)."""
        settings = self.holder.settings
        body = await read_body(
            request,
            settings.daemon.max_body_bytes if limit is None else limit,
            settings.limits.peer_body_timeout_s,
        )
        return await self.caller(request, body), body

    async def caller(
        self, request: web.Request, body: bytes = b"", *, unsigned_body: bool = False
    ) -> str:
        """The authenticated caller of a signed request (PROTOCOL.md §4.3), or of a version 2
        request authenticated by the pair key (§14.8). A locked daemon cannot verify one (the
        pinned keys are in its encrypted database): 503 `locked`."""
        return await self.verifier.verify(
            request,
            body,
            self.services.contacts.lookup_identity_key,
            unsigned_body=unsigned_body,
            mac_lookup=self.pair_key,
            signatures=1 in self.services.ctx.settings.security.versions,
        )

    async def pair_key(self, username: str) -> bytes | None:
        if not USERNAME_RE.fullmatch(username):
            return None
        services = self.services
        return await services.negotiation.request_key(await services.contacts.find(username))


PEER = web.AppKey("peer", PeerState)
