"""`GET /ui/api/diagnostics` (docs/UI_API.md): what a daemon still holds on its way to others, its
outbox and the deposits it keeps as a relay, as the chaos harness reads them; behind the session
like every UI route."""

from __future__ import annotations

import functools
from typing import Any

from flame.store import outbox as outbox_store
from tests.cluster import Cluster, UiClient, eventually, services_of
from tests.e2e.test_relays import bob_away, held, until_state


async def diagnostics(ui: UiClient) -> dict[str, Any]:
    status, body = await ui.get("/ui/api/diagnostics")
    assert status == 200, body
    return dict(body)


async def test_it_counts_the_outbox_and_what_a_relay_holds_until_delivered(
    cluster: Cluster,
) -> None:
    alice, feed = await bob_away(cluster)
    carol = await cluster.ui("carol")
    assert await diagnostics(alice) == {"outbox": 0, "relay_deposits": 0}

    sent = await alice.send("bob", "while you were away")
    await until_state(feed, sent["id"], "relayed")
    queued = await outbox_store.pending_count(services_of(cluster.daemons["alice"]).ctx.db)
    assert (await diagnostics(alice))["outbox"] == queued == 1  # still queued for bob himself
    assert (await diagnostics(carol))["relay_deposits"] == await held(cluster.daemons["carol"]) == 1

    await cluster.start_daemon("bob")
    await until_state(feed, sent["id"], "delivered")
    bob = await cluster.ui("bob")
    for ui in (alice, bob, carol):
        nothing = {"outbox": 0, "relay_deposits": 0}
        await eventually(functools.partial(diagnostics, ui), equals=nothing)


async def test_it_needs_the_session(cluster: Cluster) -> None:
    await cluster.start_directory()
    await cluster.add_user("alice")
    stranger = await cluster.ui("alice", login=False)
    status, body = await stranger.get("/ui/api/diagnostics")
    assert status == 401 and body["error"] == "unauthorized"
