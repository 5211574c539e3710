"""What a peer may not do to messages (PROTOCOL.md §17.6), refused per envelope with a 4xx and a
JSON reason, and nothing of it stored: editing or deleting someone else's message, acting on a
message that is not in the conversation, an edit after the window, a reaction that is no emoji,
a flood of typing notices. And the same rules as the browser sees them, as readable refusals."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from flame.core.actions import DeleteBody, EditBody, ReactionBody, Ref, TypingBody
from flame.core.encoding import b64e
from flame.core.envelope import new_message_id, seal
from flame.core.models import Envelope, FileOfferBody, Inner, TextBody, Wire
from flame.store import messages as message_store
from tests.api.conftest import ApiNode
from tests.api.test_peer_routes import Zoe, unlocked

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
async def alice(node: ApiNode) -> AsyncIterator[ApiNode]:
    """Logged in, with the daemon's writer loop running (what the UI's sends wait for)."""
    await unlocked(node)
    writer = asyncio.create_task(node.services.messaging.write_outgoing())
    try:
        yield node
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


def from_zoe(
    node: ApiNode, kind: str, body: Wire, *, seq: int = 0, ts: int | None = None
) -> Envelope:
    inner = Inner(
        from_="zoe",
        to="alice",
        id=new_message_id(),
        seq=seq,
        ts=int(time.time() * 1000) if ts is None else ts,
        kind=kind,
        body=body,
    )
    return seal(node.zoe.exchange, "alice", node.holder.account.x25519_key, inner)


def ref_of(envelope: Envelope, author: str = "zoe") -> Ref:
    return Ref(id=envelope.id, author=author)


async def rows(node: ApiNode) -> list[tuple[str, str]]:
    found = await node.services.ctx.db.fetchall("SELECT kind, body FROM messages ORDER BY rowid")
    return [(row["kind"], row["body"]) for row in found]


async def ui_post(node: ApiNode, path: str, body: Any) -> tuple[int, Any]:
    async with node.ui.post(path, json=body, headers={"Origin": node.ui_url}) as response:
        return response.status, await response.json()


async def alices_message(node: ApiNode, text: str) -> str:
    status, body = await ui_post(node, "/ui/api/conversations/zoe/messages", {"text": text})
    assert status == 201, body
    return str(body["message"]["id"])


async def test_a_peer_cannot_edit_or_delete_someone_elses_message(alice: ApiNode) -> None:
    node = alice
    zoe = Zoe(node)
    mine = await alices_message(node, "alice wrote this")
    target = Ref(id=mine.split(":", 1)[1], author="alice")
    before = await rows(node)
    for kind, body in (
        ("edit", EditBody(target=target, text="zoe rewrote it")),
        ("delete", DeleteBody(target=target)),
    ):
        status, reply = await zoe.post([from_zoe(node, kind, body)])
        assert (status, reply["error"]) == (403, "not_author"), kind
        assert reply["message"] == "Only the author of a message can edit or delete it."
        assert reply["results"][0]["status"] == "rejected"
    # Claiming to be the author does not help: the reference names alice's key space, whose
    # message zoe cannot edit (an edit names the target by author and id, §17.1).
    sneaky = EditBody(target=Ref(id=target.id, author="zoe"), text="zoe rewrote it")
    status, reply = await zoe.post([from_zoe(node, "edit", sneaky)])
    assert (status, reply["error"]) == (400, "unknown_message")
    assert await rows(node) == before  # nothing stored


async def test_actions_on_unknown_messages_are_refused_and_nothing_is_stored(
    alice: ApiNode,
) -> None:
    node = alice
    zoe = Zoe(node)
    nowhere = Ref(id=new_message_id(), author="zoe")
    for kind, body in (
        ("reaction", ReactionBody(target=nowhere, emoji="👍", on=True)),
        (
            "reaction",
            ReactionBody(target=Ref(id=new_message_id(), author="alice"), emoji="👍", on=True),
        ),
        (
            "reaction",
            ReactionBody(target=Ref(id=new_message_id(), author="yan"), emoji="👍", on=True),
        ),
        ("edit", EditBody(target=nowhere, text="what?")),
    ):
        status, reply = await zoe.post([from_zoe(node, kind, body)])
        assert (status, reply["error"]) == (400, "unknown_message"), body
        assert reply["message"] == "There is no such message in this conversation."
    assert await rows(node) == []


async def test_an_edit_after_the_window_and_a_reaction_that_is_no_emoji(alice: ApiNode) -> None:
    node = alice
    zoe = Zoe(node)
    now = int(time.time() * 1000)
    text = from_zoe(node, "text", TextBody(text="first draft"), seq=1, ts=now - DAY_MS - 60_000)
    assert (await zoe.post([text]))[0] == 200
    stored = await rows(node)
    late = EditBody(target=ref_of(text), text="rewritten a day later")
    status, reply = await zoe.post([from_zoe(node, "edit", late)])
    assert (status, reply["error"]) == (400, "too_late")
    assert "within 24 hours" in reply["message"]
    backdated = from_zoe(node, "edit", late, ts=now - 2 * DAY_MS)  # before the message: no
    assert (await zoe.post([backdated]))[1]["error"] == "too_late"
    for emoji in ("a", "👍👍", "", "hello"):
        body = ReactionBody(target=ref_of(text), emoji=emoji or "x", on=True)
        status, reply = await zoe.post([from_zoe(node, "reaction", body)])
        assert (status, reply["error"]) == (400, "bad_reaction"), emoji
    assert await rows(node) == stored
    # In time, the same edit is taken: alice's copy shows it, and the search index follows.
    fresh = from_zoe(node, "text", TextBody(text="second draft"), seq=2)
    edit = from_zoe(node, "edit", EditBody(target=ref_of(fresh), text="final version"))
    status, reply = await zoe.post([fresh, edit])
    assert status == 200 and [r["status"] for r in reply["results"]] == ["stored", "stored"]
    message = await message_store.get_message(node.services.ctx.db, f"zoe:{fresh.id}")
    assert message is not None and message.body["text"] == "final version" and message.edited_at


async def test_a_typing_flood_is_refused_with_429_and_retry_after(alice: ApiNode) -> None:
    node = alice
    zoe = Zoe(node)
    statuses = []
    for _ in range(8):
        envelope = from_zoe(node, "typing", TypingBody(typing=True))
        body = json.dumps({"envelopes": [envelope.model_dump()]}).encode()
        async with aiohttp.ClientSession() as session:
            async with session.post(
                node.peer_url + "/api/v1/envelopes", data=body, headers=zoe.sign(body)
            ) as response:
                statuses.append(response.status)
                reply, retry_after = await response.json(), response.headers.get("Retry-After")
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3  # a bucket of 5 (§17.5)
    assert (
        reply["error"] == "rate_limited"
        and reply["message"] == "Too many typing notices; slow down."
    )
    assert retry_after is not None and int(retry_after) >= 1
    stale = from_zoe(node, "typing", TypingBody(typing=True), ts=int(time.time() * 1000) - 60_000)
    node.services.typing.buckets.buckets.clear()  # a fresh bucket: only the age is tested
    status, reply = await zoe.post([stale])
    assert (
        status == 200 and reply["results"][0]["status"] == "duplicate"
    )  # too old to mean anything
    assert await rows(node) == []  # typing is never stored


async def test_the_browser_gets_readable_refusals(alice: ApiNode) -> None:
    node = alice
    zoe = Zoe(node)
    theirs = from_zoe(node, "text", TextBody(text="zoe's words"), seq=1)
    assert (await zoe.post([theirs]))[0] == 200
    talk = "/ui/api/conversations/zoe/messages"
    key = urllib.parse.quote(f"zoe:{theirs.id}")
    status, reply = await ui_post(node, f"{talk}/{key}/edit", {"text": "mine now"})
    assert (status, reply["error"]) == (403, "not_author") and reply["message"]
    status, reply = await ui_post(node, f"{talk}/{key}/delete", {"for": "everyone"})
    assert (status, reply["error"]) == (403, "not_author")
    status, reply = await ui_post(node, f"{talk}/{key}/reactions", {"emoji": "no", "on": True})
    assert (status, reply["error"]) == (400, "bad_reaction") and reply[
        "message"
    ] == "A reaction is a single emoji."
    mine = await alices_message(node, "an old message of alice's")
    await node.services.ctx.db.execute(  # sent two days ago
        "UPDATE messages SET sent_at = sent_at - 172800 WHERE id = ?", (mine,)
    )
    status, reply = await ui_post(node, f"{talk}/{urllib.parse.quote(mine)}/edit", {"text": "new"})
    assert (status, reply["error"]) == (400, "too_late")
    status, reply = await ui_post(
        node, f"{talk}/nobody:nothing/reactions", {"emoji": "👍", "on": True}
    )
    assert (status, reply["error"]) == (404, "no_message")
    status, reply = await ui_post(node, talk, {"text": "re", "reply_to": "zoe:nothing"})
    assert (status, reply["error"]) == (404, "no_message")
    status, reply = await ui_post(node, f"{talk}/{key}/delete", {"for": "nobody"})
    assert status == 400 and reply["error"] == "bad_request"


async def test_a_message_deleted_before_it_came_is_never_stored_or_shown(alice: ApiNode) -> None:
    """The delete overtook its message (the message came later, from a relay): the hidden
    tombstone makes the message a duplicate, a file's bytes included (PROTOCOL.md §17.3)."""
    node = alice
    zoe = Zoe(node)
    data = b"the whole draft contract"
    text = from_zoe(node, "text", TextBody(text="a draft contract"), seq=1)
    offer_body = FileOfferBody(
        transfer_id=b64e(os.urandom(16)),
        name="draft.txt",
        size=len(data),
        media_type="text/plain",
        sha256=b64e(hashlib.sha256(data).digest()),
        key=b64e(os.urandom(32)),
        token=b64e(os.urandom(32)),
        chunk_bytes=1024 * 1024,
        data=b64e(data),
    )
    offer = from_zoe(node, "file_offer", offer_body, seq=2)
    deletes = [from_zoe(node, "delete", DeleteBody(target=ref_of(e))) for e in (text, offer)]
    status, reply = await zoe.post(deletes)
    assert status == 200 and [r["status"] for r in reply["results"]] == ["stored", "stored"]
    status, reply = await zoe.post([text, offer])
    assert status == 200 and [r["status"] for r in reply["results"]] == ["duplicate"] * 2
    status, page = await ui_get(node, "/ui/api/conversations/zoe/messages")
    assert status == 200 and page["messages"] == []
    kinds = [kind for kind, _ in await rows(node)]
    assert sorted(kinds) == ["delete", "delete", "tombstone", "tombstone"]
    transfers = await node.services.ctx.db.fetchone("SELECT count(*) FROM transfers")
    assert transfers is not None and transfers[0] == 0
    folder = node.services.ctx.settings.daemon_data_dir() / "files"
    assert not folder.exists() or list(folder.iterdir()) == []


async def ui_get(node: ApiNode, path: str) -> tuple[int, Any]:
    async with node.ui.get(path) as response:
        return response.status, await response.json()
