"""Never a 500: whatever a peer or the browser sends, the answer is a 4xx with a JSON reason, and
the daemon and directory keep working afterwards."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import aiohttp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.daemon import Daemon
from tests.cluster import Cluster, identity_of

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "envelopes",
    "v",
    "id",
    "to",
    "eph",
    "sk",
    "ct",
    "text",
    "password",
    "username",
    "address",
    "status",
    "versions",
    "ts",
    "sig",
    "invite",
    "identity_key",
]
SHAPED = st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6)
BODIES = st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda v: json.dumps(v).encode()),
    SHAPED.map(lambda v: json.dumps(v).encode()),
    st.lists(SHAPED, max_size=3).map(lambda v: json.dumps({"envelopes": v}).encode()),
)


def samples(strategy: st.SearchStrategy[Any], count: int = 60) -> list[Any]:
    """Draw inputs with hypothesis up front (its runner is synchronous); the async test then
    sends each one to the real servers."""
    drawn: list[Any] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn


def signer(node: Daemon) -> Any:
    return identity_of(node)


def check(status: int, body: bytes) -> None:
    assert 400 <= status < 500, (status, body[:300])
    reply = json.loads(body)
    assert isinstance(reply["error"], str) and isinstance(reply["message"], str)


async def test_peer_and_directory_apis_never_answer_500(trio: Cluster) -> None:
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    peer_url = f"http://127.0.0.1:{bob.peer_port}"
    directory = trio.directory_url

    async with aiohttp.ClientSession() as session:
        for body in samples(BODIES):
            for url, path, audience, method in (
                (peer_url, "/api/v1/envelopes", "bob", "POST"),
                (directory, "/dir/v1/presence", DIRECTORY_AUDIENCE, "PUT"),
            ):
                host = url.removeprefix("http://")
                headers = sign_request(
                    signer(alice), "alice", audience, method, path, host, body, int(time.time())
                )
                async with session.request(method, url + path, data=body, headers=headers) as r:
                    check(r.status, await r.read())
            async with session.post(directory + "/dir/v1/enroll", data=body) as r:
                check(r.status, await r.read())

        header_sets = st.dictionaries(
            st.sampled_from(
                ["Flame-User", "Flame-To", "Flame-Timestamp", "Flame-Nonce", "Flame-Signature"]
            ),
            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=90),
        )
        for headers in samples(header_sets):
            async with session.post(
                peer_url + "/api/v1/envelopes", data=b"{}", headers=headers
            ) as r:
                check(r.status, await r.read())
            async with session.get(directory + "/dir/v1/users", headers=headers) as r:
                check(r.status, await r.read())

    # Both still work for honest traffic.
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    feed = await bob_ui.websocket()
    await alice_ui.send("bob", "still here")
    await feed.wait_for(lambda e: e["type"] == "message")


async def test_the_ui_api_never_answers_500(trio: Cluster) -> None:
    alice = await trio.ui("alice")

    inputs = st.tuples(BODIES, st.text(max_size=20), st.text(max_size=20))
    for body, name, query in samples(inputs):
        quoted = urllib.parse.quote(name, safe="") or "x"
        for path in (
            "/ui/api/login",
            f"/ui/api/conversations/{quoted}/messages",
            f"/ui/api/contacts/{quoted}/accept-key",
        ):
            async with alice.session.post(
                path, data=body, headers={"Content-Type": "application/json"}
            ) as r:
                assert r.status < 500 and (r.status != 200 or path.endswith("accept-key")), (
                    r.status,
                    await r.text(),
                )
        async with alice.session.get(
            f"/ui/api/conversations/{quoted}/messages", params={"before": query, "limit": query}
        ) as r:
            assert r.status < 500, await r.text()
    status, _ = await alice.get("/ui/api/me")
    assert status == 200
