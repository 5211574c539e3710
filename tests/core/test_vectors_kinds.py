"""The vectors of docs/PROTOCOL.md §17.8: each new kind encoded, sealed and opened again by the
code; the emoji lists against the grammar; the window at its edges, by the code and recomputed
from the text of §17.6."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from flame.core import actions
from flame.core import envelope as env
from flame.core.actions import DeleteBody, EditBody, ReactionBody, TypingBody
from flame.core.models import Envelope, Inner, TextBody
from flame.errors import RequestError
from tests.core.test_vectors import identity, vectors_block


def load_kinds() -> dict[str, Any]:
    return vectors_block("kinds-vectors", "§17.8")


KINDS = load_kinds()
ALICE, BOB = identity("alice"), identity("bob")
BODIES = {
    "reply": TextBody,
    "edit": EditBody,
    "reaction": ReactionBody,
    "delete": DeleteBody,
    "typing": TypingBody,
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_each_kind_encodes_seals_and_opens_as_the_vector_says(name: str) -> None:
    vector = KINDS["messages"][name]
    inner = Inner.model_validate_json(vector["inner_json"])
    assert isinstance(inner.body, BODIES[name])
    assert env.encode_inner(inner).decode() == vector["inner_json"]  # Flame's exact encoding
    ephemeral = X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["ephemeral_private_hex"]))
    sealed = env.seal(ALICE.exchange, "bob", BOB.x25519_key, inner, ephemeral=ephemeral)
    assert sealed.model_dump_json() == vector["envelope_json"]
    opened = env.open_envelope(
        BOB.exchange, "bob", Envelope.model_validate_json(vector["envelope_json"])
    )
    assert opened.inner == inner and opened.sender_key == ALICE.x25519_key
    assert (inner.seq >= 1) == (inner.kind == "text")  # §17: only the reply is sequenced


def test_a_reply_names_the_message_it_answers_and_a_plain_text_has_no_reference() -> None:
    reply = Inner.model_validate_json(KINDS["messages"]["reply"]["inner_json"])
    assert isinstance(reply.body, TextBody) and reply.body.reply_to is not None
    assert reply.body.reply_to.key == "bob:" + reply.body.reply_to.id
    plain = reply.model_copy(update={"body": TextBody(text="hi")})
    assert "reply_to" not in env.encode_inner(plain).decode()  # absent, never null (§17.1)
    raw = json.loads(KINDS["messages"]["reply"]["inner_json"])
    raw["body"]["reply_to"] = None
    with pytest.raises(ValueError, match="never null"):
        Inner.model_validate(raw)


def test_the_emoji_lists_follow_the_grammar() -> None:
    for emoji in KINDS["emoji"]["accepted"]:
        assert actions.is_emoji(emoji), emoji
        actions.check_emoji(emoji)
    for emoji in KINDS["emoji"]["refused"]:
        assert not actions.is_emoji(emoji), emoji
        with pytest.raises(RequestError) as refused:
            actions.check_emoji(emoji)
        assert refused.value.code == "bad_reaction"
    assert set(actions.QUICK_REACTIONS) <= set(KINDS["emoji"]["accepted"])


def window_from_the_text(case: dict[str, Any]) -> str:
    """§17.6 as written: t - 600,000 <= a <= t + 86,400,000, and arrival within 16 days."""
    t, a = case["target_ts"], case["action_ts"]
    in_time = t - 600_000 <= a <= t + 86_400_000
    arrived = case["now"] - case["received_at"] <= 16 * 24 * 3600
    return "ok" if in_time and arrived else "too_late"


def test_the_window_at_its_edges() -> None:
    assert len(KINDS["window"]) >= 6
    for case in KINDS["window"]:
        assert window_from_the_text(case) == case["result"], case["case"]
        try:
            actions.check_window(
                case["target_ts"], case["action_ts"], case["received_at"], case["now"]
            )
            result = "ok"
        except RequestError as exc:
            result = exc.code
        assert result == case["result"], case["case"]
