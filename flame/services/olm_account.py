"""The Olm account of version 2 (PROTOCOL.md §14.3): its state, the pickle key, and its prekeys
published at the directory and refilled. The base of the sessions service (services/sessions.py),
which starts sessions from the account and opens prekey messages with it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import vodozemac

from flame.core import ratchet
from flame.core.prekeys import PrekeyUpload
from flame.core.transport import Endpoint
from flame.net.peer_client import PeerClient
from flame.services.context import Context
from flame.services.negotiation import Negotiation
from flame.store import sessions as store
from flame.store.sessions import AccountState

log = logging.getLogger("flame.sessions")


@dataclass(eq=False)
class OlmAccount:
    ctx: Context
    client: PeerClient
    negotiation: Negotiation
    directory: Endpoint
    account: AccountState | None = field(default=None, init=False)
    account_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    published: bool = field(default=False, init=False)
    identity_b64: str | None = field(default=None, init=False)
    pickle_key: bytes | None = field(default=None, init=False, repr=False)

    async def prekeys_once(self) -> None:
        """Publish fresh prekeys at the first run after unlock (replacing whatever the directory
        held: a restored data folder may have lost keys it had published), and again whenever
        fewer than PREKEYS_LOW one-time keys are left. Also forgets opened messages older than
        the retention (§14.6)."""
        ctx = self.ctx
        if 2 not in self.negotiation.versions:
            return
        ttl = max(ctx.settings.daemon.message_ttl_s, ctx.settings.daemon.relay_ttl_s)
        await store.prune_staged(ctx.db, ctx.clock.now() - ttl)
        if self.published:
            left = (await self.client.prekey_count(self.directory)).one_time_left
            if left >= ratchet.PREKEYS_LOW:
                return
        identity = ctx.keys.identity()
        key = self._pickle_key()
        async with self.account_lock:
            state = await self._account()
            account = vodozemac.Account.from_pickle(state.pickle, key)
            one_time, fallback = ratchet.fresh_prekeys(
                account, identity, ctx.me, ratchet.PREKEYS_TARGET
            )
            # Kept before published: a published key whose private half was lost would never
            # open the message that uses it.
            await self._save_account(account.pickle(key))
        assert fallback is not None
        await self.client.put_prekeys(
            self.directory, PrekeyUpload(one_time=one_time, fallback=fallback)
        )
        async with self.account_lock:
            account = vodozemac.Account.from_pickle((await self._account()).pickle, key)
            account.mark_keys_as_published()
            await self._save_account(account.pickle(key))
        self.published = True
        log.info("published %d one-time prekeys", len(one_time))

    async def _account(self) -> AccountState:
        if self.account is None:
            loaded = await store.load_account(self.ctx.db)
            if loaded is None:
                loaded = AccountState(ratchet.new_account().pickle(self._pickle_key()), 1)
                await store.save_account(self.ctx.db, loaded)
            self.account = loaded
        return self.account

    async def _save_account(self, pickle: str) -> None:
        state = AccountState(pickle, (await self._account()).generation + 1)
        await store.save_account(self.ctx.db, state)
        self.account = state

    def _my_identity(self) -> str:
        """This account's Curve25519 identity (it never changes once the account exists)."""
        if self.identity_b64 is None:
            assert self.account is not None
            account = vodozemac.Account.from_pickle(self.account.pickle, self._pickle_key())
            self.identity_b64 = ratchet.account_identity(account)
        return self.identity_b64

    def _pickle_key(self) -> bytes:
        self.pickle_key = self.pickle_key or ratchet.pickle_key(
            self.ctx.keys.identity(), self.ctx.me
        )
        return self.pickle_key
