"""This user's presence at the directory (PROTOCOL.md §5.3): the signed report of where this
daemon listens, what it speaks and the status the user shows; and the log-off at shutdown. A
report that fails means degraded mode (§13.5)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

from flame.core.presence import make_presence
from flame.errors import FlameError
from flame.net.peer_client import PeerClient
from flame.services.contacts import Contacts
from flame.services.context import Context
from flame.services.status import StatusTracker

log = logging.getLogger("flame.presence")


@dataclass(eq=False)
class Presence:
    """Where peers reach this daemon, as the directory tells them; set once the peer listener
    is bound (`address`)."""

    ctx: Context
    client: PeerClient
    contacts: Contacts
    status: StatusTracker
    # Where peers reach this daemon, and the SHA-256 of the certificate its peer listener
    # presents (None: plain HTTP); known once the peer listener is bound.
    address: str = field(default="", init=False)
    tls: bytes | None = field(default=None, init=False)

    async def report_once(self) -> None:
        """One signed report; the directory link is `ok` after it, `degraded` if it failed.
        Appearing offline, the record is withdrawn instead, as a daemon that stops withdraws it
        (PROTOCOL.md §12.2): no record and no address, as for a locked daemon."""
        if self.status.is_hidden:
            await self._directory(self.client.log_off(self.contacts.directory))
            return
        record = make_presence(
            self.ctx.keys.identity(),
            self.ctx.me,
            self.address,
            self.status.current(),  # what the user chose, or away when idle (PROTOCOL.md §12.2)
            list(self.ctx.settings.security.versions),
            int(self.ctx.clock.now()),
            tls=self.tls,
        )
        await self._directory(self.client.report_presence(self.contacts.directory, record))

    async def _directory(self, call: Awaitable[object]) -> None:
        try:
            await call
        except FlameError as exc:
            if self.contacts.directory_state != "degraded":
                log.warning("directory unreachable, working from cache: %s", exc.message)
            self.contacts.set_directory_state("degraded")
        else:
            self.contacts.set_directory_state("ok")

    async def log_off(self) -> None:
        await self.client.log_off(self.contacts.directory)
