"""What a peer's daemon says it speaks (PROTOCOL.md §9): the `features` of its signed hello,
asked when a new kind is about to be sent to it (a group's, §19) and kept for a while. A sender
must not send a kind to a peer whose daemon does not advertise its feature (§6.4)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from flame.errors import FlameError
from flame.net.peer_client import PeerClient
from flame.services.context import Context
from flame.store.contacts import Contact

FEATURES_TTL_S = 600.0  # a daemon is upgraded seldom; a changed answer is seen within this
UNKNOWN_TTL_S = 30.0  # a daemon that did not answer is not asked again before this
HELLO_TIMEOUT_S = 2.0  # the question holds up a group message: never long
ASK_AT_ONCE = 8


@dataclass(eq=False)
class PeerFeatures:
    ctx: Context
    client: PeerClient
    # peer -> (asked again after, its features; None: it did not answer)
    known: dict[str, tuple[float, frozenset[str] | None]] = field(default_factory=dict, init=False)

    async def lacking(self, contacts: list[Contact], needed: tuple[str, ...]) -> dict[str, str]:
        """The peers among `contacts` whose daemon answered a hello without one of `needed`,
        with the reason to show. A peer that cannot be asked now (offline, no address) is not
        among them: its envelopes wait in the outbox like any other."""
        await self._ask(contacts)
        lacking: dict[str, str] = {}
        for contact in contacts:
            features = self.known.get(contact.username, (0.0, None))[1]
            missing = [f for f in needed if features is not None and f not in features]
            if missing:
                lacking[contact.username] = (
                    f"{contact.username}'s Flame does not support {' and '.join(missing)} yet;"
                    " they need to update it."
                )
        return lacking

    async def speaks(self, contact: Contact, feature: str) -> bool:
        """Whether the peer's daemon advertises `feature` now; False when it cannot be asked."""
        await self._ask([contact])
        features = self.known.get(contact.username, (0.0, None))[1]
        return features is not None and feature in features

    async def _ask(self, contacts: list[Contact]) -> None:
        """Ask the hello of those whose answer is not known, or is old."""
        now = self.ctx.clock.now()
        ask = [
            c
            for c in contacts
            if c.endpoint is not None
            and c.status != "offline"
            and (c.username not in self.known or self.known[c.username][0] <= now)
        ]
        gate = asyncio.Semaphore(ASK_AT_ONCE)

        async def one(contact: Contact) -> None:
            assert contact.endpoint is not None
            async with gate:
                try:
                    async with asyncio.timeout(HELLO_TIMEOUT_S):
                        hello = await self.client.hello(contact.endpoint)
                except (FlameError, TimeoutError):  # not up for us now: unknown for a while
                    self.known[contact.username] = (now + UNKNOWN_TTL_S, None)
                    return
            self.known[contact.username] = (now + FEATURES_TTL_S, frozenset(hello.features))

        await asyncio.gather(*(one(c) for c in ask))
