"""The fuzzer's version 2 sessions (PROTOCOL.md §14.3, §14.5): an Olm account of its own for
mallory, and real sessions with each daemon's user started from prekeys claimed at the directory
before the run, so the ratchet messages it sends open (and their inner messages are parsed) on the
receiving daemon. A session is used for a while, then the next claimed prekey starts another;
once the claimed ones are used up they are used again, which starts sessions the receiver can no
longer open (their one-time key is gone): `no_session`, as a restored peer would get."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import vodozemac

from flame.core import ratchet
from flame.core.prekeys import PrekeyRecord

MESSAGES_PER_SESSION = 400  # well inside vodozemac's 2,000 ahead and 40 skipped per chain


@dataclass
class Olm:
    account: vodozemac.Account = field(default_factory=ratchet.new_account)
    key: bytes = field(default_factory=lambda: os.urandom(32))  # pickles: this run's only
    prekeys: dict[str, list[PrekeyRecord]] = field(default_factory=dict)  # claimed, per user
    sessions: dict[str, tuple[vodozemac.Session, int]] = field(default_factory=dict)
    started: dict[str, int] = field(default_factory=dict)  # sessions started, per user

    @property
    def identity(self) -> str:
        return ratchet.account_identity(self.account)

    def add_prekeys(self, username: str, claimed: list[PrekeyRecord]) -> None:
        self.prekeys[username] = claimed

    def _session(self, username: str) -> vodozemac.Session:
        session, used = self.sessions.get(username, (None, 0))
        if session is None or used >= MESSAGES_PER_SESSION:
            pool, count = self.prekeys[username], self.started.get(username, 0)
            _, pickle = ratchet.outbound(self.account, self.key, pool[count % len(pool)])
            session, used = ratchet.session_from(pickle, self.key), 0
            self.started[username] = count + 1
        self.sessions[username] = (session, used + 1)
        return session

    def encrypt(self, username: str, plaintext: bytes) -> dict[str, Any]:
        """The body of a `ratchet` message to `username` (§14.4), its session advanced."""
        sealed = ratchet.encrypt(self._session(username), self.key, self.identity, plaintext)
        return sealed.body.model_dump()
