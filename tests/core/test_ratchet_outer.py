"""The sender writes a version 2 envelope's outer inner message directly (`ratchet.encrypt_outer`,
PROTOCOL.md §14.4): its bytes must be exactly those of the models it skips, for a prekey message
(which names the author's identity) and a normal one, and the receiver must open them."""

from __future__ import annotations

import vodozemac

from flame.core import envelope, ratchet
from flame.core.models import Inner, TextBody
from tests.core.test_ratchet_limits import started

KEY = b"k" * 32
IDENTITY = "A" * 43  # what encrypt_outer copies into a prekey message, as given


def text(n: int) -> Inner:
    return Inner(
        from_="alice",
        to="bob",
        id=envelope.new_message_id(),
        seq=n,
        ts=1_764_662_400_000 + n,
        kind="text",
        body=TextBody(text=f'message {n} \u00e9\u2603 "quoted" \\ \n'),
    )


def both_ways(session: vodozemac.Session, inner: Inner) -> tuple[bytes, bytes]:
    """(encrypt_outer's bytes, the models' bytes) from two copies of one state."""
    plaintext = envelope.encode_inner(inner)
    copy = vodozemac.Session.from_pickle(session.pickle(KEY), KEY)
    direct = ratchet.encrypt_outer(session, IDENTITY, inner, plaintext)
    body = ratchet.encrypt_body(copy, IDENTITY, plaintext)
    return direct, envelope.encode_inner(ratchet.outer(inner, body))


def test_encrypt_outer_writes_exactly_what_the_models_would() -> None:
    alice, bob = started()
    prekey_inner = text(1)
    direct, models = both_ways(alice, prekey_inner)  # bob has not answered: a prekey message
    assert direct == models
    assert b'"type":0,"identity":"' + IDENTITY.encode() + b'"' in direct
    assert alice.decrypt(bob.encrypt(b"answer")) == b"answer"
    assert bob.decrypt(alice.encrypt(b"next")) == b"next"  # her new ratchet key (random) is made
    normal_inner = text(2)
    direct, models = both_ways(alice, normal_inner)
    assert direct == models
    assert b'"type":1,"ciphertext":' in direct and b"identity" not in direct
    outer = Inner.model_validate_json(direct)  # what the receiver parses, then opens
    opened = ratchet.decrypt_live(bob, None, KEY, ratchet.body_of(outer), outer)
    assert opened.inner == normal_inner
