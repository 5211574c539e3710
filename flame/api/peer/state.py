"""What the peer routes share: the services and the verifier of signed requests."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from flame.core.models import USERNAME_RE
from flame.net.http import read_body
from flame.net.verify import RequestVerifier
from flame.services.registry import Services

PREFIX = "/api/v1"


@dataclass(frozen=True, slots=True)
class PeerState:
    services: Services
    verifier: RequestVerifier

    async def signed_body(
        self, request: web.Request, limit: int | None = None
    ) -> tuple[str, bytes]:
        """Read the bounded body and verify the request: (the caller, the body)."""
        body = await read_body(
            request, self.services.ctx.settings.daemon.max_body_bytes if limit is None else limit
        )
        return await self.caller(request, body), body

    async def caller(
        self, request: web.Request, body: bytes = b"", *, unsigned_body: bool = False
    ) -> str:
        """The authenticated caller of a signed request (PROTOCOL.md §4.3), or of a version 2
        request authenticated by the pair key (§14.8)."""
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
