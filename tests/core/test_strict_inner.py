"""Strict parsing of the sealed inner message (PROTOCOL.md §1.3, §6.4, §14.5): a repeated key is
refused wherever the inner message is parsed, in a version 1 envelope and in the plaintext of a
version 2 ratchet message (a last-wins parser would let two peers show different text for the
same authenticated bytes); a control kind carrying a `seq` and a conversation kind without one
are refused too."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flame.core import envelope as envelope_rules
from flame.core import ratchet
from flame.core.encoding import b64e
from flame.core.models import Inner, RatchetBody
from flame.errors import BadEnvelope
from tests.core.test_envelope import forge, open_as_bob
from tests.core.test_ratchet_limits import started

ID = b64e(bytes(range(16)))  # forge()'s envelope id
HEAD = f'"from":"alice","to":"bob","id":"{ID}","ts":1,'
REPEATED = [
    "{" + HEAD + '"seq":1,"kind":"text","body":{"text":"shown"},"body":{"text":"other"}}',
    "{" + HEAD + '"seq":1,"kind":"text","body":{"text":"shown","text":"other"}}',
    "{" + HEAD + '"seq":1,"seq":2,"kind":"text","body":{"text":"hi"}}',
    "{" + HEAD + '"seq":1,"kind":"text","kind":"text","body":{"text":"hi"}}',
]
GOOD = "{" + HEAD + '"seq":1,"kind":"text","body":{"text":"shown"}}'


def fields(kind: str, seq: int, body: dict[str, Any]) -> bytes:
    inner = {"from": "alice", "to": "bob", "id": ID, "seq": seq, "ts": 1, "kind": kind}
    return json.dumps({**inner, "body": body}).encode()


OFFER = {
    "transfer_id": "AAAAAAAAAAAAAAAAAAAAAA", "name": "a.txt", "size": 1,
    "media_type": "text/plain", "sha256": "A" * 43, "key": "A" * 43, "token": "A" * 43,
    "chunk_bytes": 65536,
}  # fmt: skip
OUT_OF_SEQ = [
    fields("receipt", 5, {"state": "delivered", "ids": [ID]}),
    fields("receipt", 1, {"state": "read", "ids": [ID]}),
    fields("file_cancel", 3, {"transfer_id": "AAAAAAAAAAAAAAAAAAAAAA"}),
    fields("file_offer", 0, OFFER),
    fields("text", 0, {"text": "hi"}),
]


def test_the_well_formed_inner_message_opens() -> None:
    assert open_as_bob(forge(GOOD.encode())).inner.body.model_dump() == {"text": "shown"}


@pytest.mark.parametrize("plaintext", REPEATED)
def test_a_repeated_key_in_a_version_1_inner_message_is_refused(plaintext: str) -> None:
    with pytest.raises(BadEnvelope):
        open_as_bob(forge(plaintext.encode()))


def ratchet_open(plaintext: bytes) -> Inner:
    """bob opens, as a version 2 receiver does, alice's ratchet message carrying `plaintext`."""
    alice, bob = started()
    message_type, ciphertext = alice.encrypt(plaintext).to_parts()
    kind = ratchet.PRE_KEY if message_type == ratchet.PRE_KEY else ratchet.NORMAL
    body = RatchetBody(session=alice.session_id, type=kind, ciphertext=b64e(ciphertext))
    outer = Inner(from_="alice", to="bob", id=ID, seq=0, ts=0, kind="ratchet", body=body)
    key = b"\x01" * 32
    return ratchet.decrypt(ratchet.session_from(bob.pickle(key), key), None, key, body, outer).inner


def test_the_well_formed_ratchet_plaintext_opens() -> None:
    assert ratchet_open(GOOD.encode()).body.model_dump() == {"text": "shown"}


@pytest.mark.parametrize("plaintext", REPEATED)
def test_a_repeated_key_in_a_ratchet_plaintext_is_refused(plaintext: str) -> None:
    with pytest.raises(BadEnvelope, match="malformed"):
        ratchet_open(plaintext.encode())


@pytest.mark.parametrize("plaintext", OUT_OF_SEQ, ids=lambda p: p[80:120].decode())
def test_a_control_kind_with_a_seq_or_a_conversation_kind_without_one_is_refused(
    plaintext: bytes,
) -> None:
    with pytest.raises(BadEnvelope):
        open_as_bob(forge(plaintext))
    with pytest.raises(BadEnvelope):
        ratchet_open(plaintext)
    fixed = json.loads(plaintext)
    fixed["seq"] = 1 if fixed["kind"] in ("text", "file_offer") else 0
    assert open_as_bob(forge(json.dumps(fixed).encode())).inner.kind == fixed["kind"]
    assert envelope_rules.encode_inner(ratchet_open(json.dumps(fixed).encode()))
