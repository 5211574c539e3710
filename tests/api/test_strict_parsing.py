"""Strict parsing (PROTOCOL.md §1.3, §6.4, §11.6, §5.3): an inner message whose `kind` or `body`
has the wrong type, a query such as `?ack=%ff`, `"data": null` in a file offer and a trailing
slash in a presence address are refused with a 4xx and a reason, never a 500. And the delivered
receipts a batch causes are grouped as §13.2 says."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import ValidationError

from flame.core.envelope import open_envelope
from flame.core.models import Inner, ReceiptBody
from flame.core.signing import sign_request
from flame.store import outbox as outbox_store
from flame.store import receipts as owed_store
from tests.api.conftest import ApiNode
from tests.api.test_peer_routes import Zoe, envelope, stored, unlocked
from tests.core import spec

ID = bytes(range(16))


def sealed_raw(node: ApiNode, fields: dict[str, object]) -> bytes:
    """A batch with one envelope from zoe to alice around exactly these inner JSON bytes (§6.2
    from the document's text, so no model of the code shapes them)."""
    trace = spec.seal_from(
        node.zoe.exchange,
        node.services.ctx.keys.account.x25519_key,
        ID,
        "alice",
        json.dumps(fields).encode(),
    )
    return json.dumps({"envelopes": [trace.envelope(1, ID, "alice")]}).encode()


@pytest.mark.parametrize(
    "changes",
    [{"kind": ["text"]}, {"kind": 7}, {"kind": None}, {"body": "hi"}, {"body": None}, {"body": []}],
)
async def test_an_inner_kind_or_body_of_the_wrong_type_is_bad_envelope(
    node: ApiNode, changes: dict[str, object]
) -> None:
    zoe = Zoe(await unlocked(node))
    fields = {"from": "zoe", "to": "alice", "id": spec.b64u(ID), "seq": 1, "ts": 1,
              "kind": "text", "body": {"text": "x"}, **changes}  # fmt: skip
    status, reply = await zoe.post(raw=sealed_raw(node, fields))
    assert (status, reply["error"]) == (400, "bad_envelope"), reply
    assert reply["message"]
    assert await stored(node) == 0


@pytest.mark.parametrize("field", ["data", "caption"])
async def test_data_or_caption_null_in_a_file_offer_is_refused(node: ApiNode, field: str) -> None:
    zoe = Zoe(await unlocked(node))
    offer = {
        "transfer_id": "AAAAAAAAAAAAAAAAAAAAAA", "name": "a.txt", "size": 1,
        "media_type": "text/plain", "sha256": "A" * 43, "key": "A" * 43, "token": "A" * 43,
        "chunk_bytes": 65536,
    }  # fmt: skip
    inner = {"from": "zoe", "to": "alice", "id": spec.b64u(ID), "seq": 1, "ts": 1,
             "kind": "file_offer", "body": offer}  # fmt: skip
    Inner.model_validate_json(json.dumps(inner))  # absent: a streamed file's, with no caption
    with pytest.raises(ValidationError, match="absent, never null"):
        Inner.model_validate_json(json.dumps({**inner, "body": {**offer, field: None}}))
    status, reply = await zoe.post(raw=sealed_raw(node, {**inner, "body": {**offer, field: None}}))
    assert (status, reply["error"]) == (400, "bad_envelope")


@pytest.mark.parametrize("query", ["?ack=%ff", "?ack=%", "?ack=1&ack=1", "?ack=%C3%28", "?ack=2"])
async def test_a_malformed_ack_query_is_a_400_with_a_reason(node: ApiNode, query: str) -> None:
    zoe = Zoe(await unlocked(node))
    body = json.dumps({"envelopes": [envelope(node, "with a query").model_dump()]}).encode()
    host = node.peer_url.removeprefix("http://")
    path = f"/api/v1/envelopes{query}"
    headers = sign_request(node.zoe, "zoe", "alice", "POST", path, host, body, int(time.time()))
    status, reply = await zoe.post_raw(body, {**headers, "Content-Type": "application/json"}, path)
    assert (status, reply.get("error")) == (400, "bad_request"), reply
    assert "ack" in reply["message"]
    assert await stored(node) == 0


async def queued_receipts(node: ApiNode) -> list[list[str]]:
    """The ids of each delivered receipt alice's daemon queued to zoe, opened with zoe's key."""
    entries = await outbox_store.due_entries(node.services.ctx.db, "zoe", time.time() + 1e6, 100)
    found = []
    for entry in entries:
        inner = open_envelope(node.zoe.exchange, "zoe", entry.envelope, (1, 2)).inner
        assert inner.kind == "receipt" and isinstance(inner.body, ReceiptBody)
        assert inner.body.state == "delivered" and inner.seq == 0
        found.append(sorted(inner.body.ids))
    return found


async def owed_count(node: ApiNode) -> int:
    return len(await owed_store.owed(node.services.ctx.db, 10_000))


async def test_delivered_receipts_are_owed_with_the_messages_then_paid_one_per_author(
    node: ApiNode,
) -> None:
    """PROTOCOL.md §13.2: every envelope accepted owes its author a delivered receipt, in the
    transaction that stores it, duplicates included (the sender that retries never got the 2xx);
    what is owed is paid together: one receipt per author carrying the ids of every batch since
    the last, each id once."""
    zoe = Zoe(await unlocked(node))
    receipts = node.services.receipts
    first = [envelope(node, f"one {i}", seq=i) for i in (1, 2, 3)]
    status, _ = await zoe.post(first)
    assert status == 200
    assert await queued_receipts(node) == [] and await owed_count(node) == 3  # owed, not sealed
    assert await receipts.pay_owed() == 1
    assert await queued_receipts(node) == [sorted(e.id for e in first)]
    assert await owed_count(node) == 0 and await receipts.pay_owed() == 0
    second = [first[2], envelope(node, "two", seq=4)]  # a copy the sender retried, and a new one
    status, reply = await zoe.post(second)
    assert status == 200 and [r["status"] for r in reply["results"]] == ["duplicate", "stored"]
    third = [envelope(node, "three", seq=5)]  # a batch of its own, before the receipt goes
    assert (await zoe.post(third))[0] == 200
    assert await receipts.pay_owed() == 1
    paid = await queued_receipts(node)
    assert len(paid) == 2 and sorted(e.id for e in [*second, *third]) in paid
