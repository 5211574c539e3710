"""One daemon's two apps on aiohttp test servers (loopback, port 0), over a real database with a
real account, and no directory, no loops, no other daemon: for tests of one handler at a time.

Two more real identities, "zoe" and "yan", are pinned as contacts directly in the store (what the
directory would have told), so that signed requests and sealed envelopes from peers can be made."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from flame.api import peer as peer_api
from flame.api import ui as ui_api
from flame.api.ui.guard import UiOrigin
from flame.clock import SystemClock
from flame.core.crypto import Identity, KdfParams, new_db_key, seal_keystore
from flame.core.keys import Account
from flame.daemon import WEB_DIR, build_verifier, unlock_services
from flame.net.verify import RequestVerifier
from flame.services.account import create_account
from flame.services.registry import ServiceHolder, Services
from flame.store import contacts as contact_store
from flame.store.db import open_daemon_db
from tests.cluster import PASSWORD, fast_settings

NOWHERE = "http://127.0.0.1:9"  # the discard port: no directory answers there
CHEAP_KDF = KdfParams(64, 1, 1)

Client = TestClient[web.Request, web.Application]
AppClient = Callable[[web.Application], Awaitable[Client]]


@dataclass
class ApiNode:
    """alice's daemon as its apps see it; `zoe` and `yan` are contacts' identities."""

    holder: ServiceHolder
    verifier: RequestVerifier
    ui: Client
    peer: Client
    zoe: Identity
    yan: Identity

    @property
    def services(self) -> Services:
        """Once logged in (LockedError before)."""
        return self.holder.services

    @property
    def ui_url(self) -> str:
        return str(self.ui.make_url("")).rstrip("/")

    @property
    def peer_url(self) -> str:
        return str(self.peer.make_url("")).rstrip("/")


def make_account(username: str, identity: Identity, db_key: bytes) -> Account:
    return Account(
        username,
        identity.identity_key,
        identity.x25519_key,
        identity.binding_signature(username),
        seal_keystore(identity, db_key, username, PASSWORD, CHEAP_KDF),
    )


@pytest.fixture
async def node(tmp_path: Path, aiohttp_client: AppClient) -> AsyncIterator[ApiNode]:
    """Locked at first, as a daemon starts; the UI's login unlocks it."""
    settings = fast_settings(tmp_path / "alice", NOWHERE)
    data_dir = settings.daemon_data_dir()
    db_key = new_db_key()
    account = make_account("alice", Identity.generate(), db_key)
    await create_account(data_dir, account, db_key, NOWHERE)
    zoe, yan = Identity.generate(), Identity.generate()
    db = await open_daemon_db(data_dir, db_key)
    for name, contact in (("zoe", zoe), ("yan", yan)):
        await contact_store.offer_keys(
            db,
            name,
            contact.identity_key,
            contact.x25519_key,
            contact.binding_signature(name),
            0.0,
        )
    await db.close()
    clock = SystemClock()
    holder = ServiceHolder(settings, clock, account)
    verifier = build_verifier(settings, "alice", clock)

    async def unlock(password: str) -> None:
        if holder.current is None:
            holder.current = await unlock_services(holder, password)

    origin = UiOrigin()
    ui = await aiohttp_client(ui_api.build(holder, WEB_DIR, unlock, origin))
    assert ui.port is not None
    origin.port = ui.port
    peer = await aiohttp_client(peer_api.build(holder, verifier))
    try:
        yield ApiNode(holder, verifier, ui, peer, zoe, yan)
    finally:
        if holder.current is not None:
            await holder.current.client.close()
            await holder.current.ctx.db.close()
