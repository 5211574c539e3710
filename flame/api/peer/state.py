"""What the peer routes share: the services (through their holder: a locked daemon has none) and
the verifier of signed requests."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from flame.api.peer.guard import refuse_blocked
from flame.core.models import USERNAME_RE
from flame.errors import AuthError, LockedError
from flame.net.http import read_body
from flame.net.verify import RequestVerifier
from flame.services.registry import LOCKED_MESSAGE, ServiceHolder, Services
from flame.store.contacts import Contact

PREFIX = "/api/v1"


@dataclass(frozen=True, slots=True)
class PeerState:
    holder: ServiceHolder
    verifier: RequestVerifier

    @property
    def is_locked(self) -> bool:
        """What peers are told (`hello`): locked, or its user appears offline (PROTOCOL.md
        §12.2), which peers cannot tell apart."""
        services = self.holder.current
        return services is None or services.status.is_hidden

    @property
    def services(self) -> Services:
        """LockedError (503 `locked`, Retry-After) while the daemon is locked, or while its user
        appears offline: then every signed request gets the very answer a locked daemon gives."""
        services = self.holder.services
        if services.status.is_hidden:
            raise LockedError(LOCKED_MESSAGE)
        return services

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
        request authenticated by the pair key (§14.8), refused if this user blocked them (§12.4).
        A locked daemon cannot verify one (the pinned keys are in its encrypted database): 503
        `locked`."""
        services = self.services
        caller = await self.verifier.verify(
            request,
            body,
            services.contacts.lookup_identity_key,
            unsigned_body=unsigned_body,
            mac_lookup=self.pair_key,
            signatures=1 in services.ctx.settings.security.versions,
        )
        await refuse_blocked(services, caller)
        return caller

    async def member(self, request: web.Request) -> str | None:
        """Who asks for hello, if it is a member this daemon pinned, whose signed (or MAC'd)
        request verified and whom this user has not blocked; None for anyone else, and for
        everyone while locked or appearing offline (PROTOCOL.md §7.1). It asks the directory
        nothing: a name this daemon has not pinned is a stranger's."""
        services = self.holder.current
        if services is None or services.status.is_hidden:
            return None

        async def pinned(username: str) -> Contact | None:
            if not USERNAME_RE.fullmatch(username):
                return None
            return await services.contacts.get(username)

        async def identity_key(username: str) -> bytes | None:
            contact = await pinned(username)
            return None if contact is None else contact.identity_key

        async def pair_key(username: str) -> bytes | None:
            return await services.negotiation.request_key(await pinned(username))

        try:
            caller = await self.verifier.verify(
                request,
                b"",
                identity_key,
                mac_lookup=pair_key,
                signatures=1 in services.ctx.settings.security.versions,
            )
        except AuthError:
            return None
        return None if await services.blocks.is_blocked(caller) else caller

    async def pair_key(self, username: str) -> bytes | None:
        if not USERNAME_RE.fullmatch(username):
            return None
        services = self.services
        return await services.negotiation.request_key(await services.contacts.find(username))


PEER = web.AppKey("peer", PeerState)
