"""What the page learns of the key log (docs/UI_API.md, "Key log"; PROTOCOL.md §18.6), from a
database holding a log this daemon took: `GET /ui/api/keylog`, a person's key history and the
recent change on their contact row; the log is read from the database once, however many ask at
the same moment."""

from __future__ import annotations

import asyncio
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flame.core import keylog
from flame.core.crypto import fingerprint
from flame.core.keylog import Frontier, MerkleTree
from flame.store import keylog as keylog_store
from flame.store.keylog import LoggedKey
from tests.api.conftest import ApiNode
from tests.api.test_peer_routes import unlocked


async def test_the_page_sees_the_log_a_history_and_a_recent_change(node: ApiNode) -> None:
    await unlocked(node)
    services = node.services
    db, now = services.ctx.db, int(time.time())
    mine = services.ctx.keys.account
    entries = [
        LoggedKey(0, "alice", mine.identity_key, mine.x25519_key, now - 90 * 86400, "enroll"),
        LoggedKey(1, "zoe", node.zoe.identity_key, node.zoe.x25519_key, now - 90 * 86400, "enroll"),
        LoggedKey(2, "yan", b"\x01" * 32, b"\x02" * 32, now - 60 * 86400, "enroll"),
        LoggedKey(3, "zoe", b"\x03" * 32, b"\x04" * 32, now - 40 * 86400, "rekey"),  # long ago
        LoggedKey(4, "yan", node.yan.identity_key, node.yan.x25519_key, now - 3 * 86400, "rekey"),
    ]
    leaves = [keylog.leaf_hash(bytes([e.position])) for e in entries]  # stand-ins: not re-read
    frontier = Frontier()
    for leaf in leaves:
        frontier = frontier.append(leaf)
    key = Ed25519PrivateKey.generate()
    head = keylog.sign_head(key, 5, entries[-1].ts, MerkleTree(leaves).root())
    await keylog_store.save_log_key(db, keylog.public_key_of(key))
    await keylog_store.append(db, head, frontier, entries)

    # Many readers at once: one read of the database (the history is not doubled).
    await asyncio.gather(*(services.keylog.load() for _ in range(5)))
    async with node.ui.get("/ui/api/keylog") as response:
        assert await response.json() == {"state": "ok", "size": 5, "alarms": []}
    async with node.ui.get("/ui/api/profiles/yan") as response:
        yan = await response.json()
    assert [(k["kind"], k["at"]) for k in yan["key_history"]] == [
        ("enroll", now - 60 * 86400), ("rekey", now - 3 * 86400),
    ]  # fmt: skip
    assert yan["key_history"][1]["fingerprint"] == fingerprint(node.yan.identity_key)
    assert yan["key_changed_at"] == now - 3 * 86400  # recent: shown
    async with node.ui.get("/ui/api/contacts") as response:
        rows = {c["username"]: c for c in (await response.json())["contacts"]}
    assert rows["yan"]["key_changed_at"] == now - 3 * 86400
    assert rows["zoe"]["key_changed_at"] is None  # 40 days ago: history, not news

    alarm = await keylog_store.add_alarm(db, "rekeyed:9", "rekeyed", "New keys.", 1.0, "{}")
    assert alarm is not None
    assert await keylog_store.add_alarm(db, "rekeyed:9", "rekeyed", "Again.", 2.0, "{}") is None
    async with node.ui.get("/ui/api/keylog") as response:
        view = await response.json()
    assert view["state"] == "alarm"
    assert view["alarms"] == [
        {"id": alarm.id, "kind": "rekeyed", "message": "New keys.", "raised_at": 1.0}
    ]
