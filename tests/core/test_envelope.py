"""Envelopes (PROTOCOL.md §6): round trips, and every kind of tampering refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flame.core import envelope as envelope_rules
from flame.core.crypto import Identity
from flame.core.encoding import b64d, b64e
from flame.core.models import SEQ_MAX, TS_MAX_MS, USERNAME_RE, Envelope, Inner, TextBody
from flame.errors import BadEnvelope, DecryptionFailed, FlameError
from tests.core import spec

ALICE = Identity.generate()
BOB = Identity.generate()
CAROL = Identity.generate()
REFUSED = (DecryptionFailed, BadEnvelope)
FAST = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Points of small order on Curve25519 (and encodings of them): X25519 with any of them gives an
# all-zero shared secret, which PROTOCOL.md §6.2 refuses.
LOW_ORDER_POINTS = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


def make_inner(
    text: str = "hello bob",
    *,
    envelope_id: str | None = None,
    seq: int = 1,
    ts: int = 1_700_000_000_000,
    sender: str = "alice",
    to: str = "bob",
) -> Inner:
    return Inner(
        from_=sender,
        to=to,
        id=envelope_id or envelope_rules.new_message_id(),
        seq=seq,
        ts=ts,
        kind="text",
        body=TextBody(text=text),
    )


def seal_to_bob(inner: Inner, sender: Identity = ALICE) -> Envelope:
    return envelope_rules.seal(sender.exchange, "bob", BOB.x25519_key, inner)


def open_as_bob(envelope: Envelope) -> envelope_rules.Opened:
    return envelope_rules.open_envelope(BOB.exchange, "bob", envelope)


def with_fields(envelope: Envelope, **changes: Any) -> Envelope:
    return Envelope.model_validate({**envelope.model_dump(), **changes})


def flip(envelope: Envelope, field: str, position: int, mask: int) -> Envelope:
    raw = bytearray(b64d(getattr(envelope, field)))
    raw[position] ^= mask
    return with_fields(envelope, **{field: b64e(bytes(raw))})


def inner_bytes(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "from": "alice",
        "to": "bob",
        "id": envelope_rules.new_message_id(),
        "seq": 1,
        "ts": 1,
        "kind": "text",
        "body": {"text": "hi"},
    }
    base.update(fields)
    return json.dumps(base).encode()


def forge(
    plaintext: bytes,
    *,
    envelope_id: bytes | None = None,
    to: str = "bob",
    sender: Identity = ALICE,
) -> Envelope:
    """An envelope built by the document's construction (tests/core/spec.py), for contents an
    honest sender never produces."""
    envelope_id = envelope_id if envelope_id is not None else bytes(range(16))
    trace = spec.seal_from(
        X25519PrivateKey.from_private_bytes(sender.secret()[32:]),
        BOB.x25519_key,
        envelope_id,
        to,
        plaintext,
    )
    return Envelope.model_validate(trace.envelope(1, envelope_id, to))


# --- round trips ---------------------------------------------------------------------------


def test_open_returns_what_was_sealed_and_who_sealed_it() -> None:
    inner = make_inner("hi bob 🔥")
    opened = open_as_bob(seal_to_bob(inner))
    assert opened.inner == inner
    assert opened.sender_key == ALICE.x25519_key


def test_envelope_survives_its_json_form() -> None:
    envelope = seal_to_bob(make_inner())
    again = Envelope.model_validate_json(envelope.model_dump_json())
    assert again == envelope
    assert open_as_bob(again).inner.id == envelope.id


def test_each_seal_uses_a_fresh_ephemeral_key() -> None:
    inner = make_inner()
    first, second = seal_to_bob(inner), seal_to_bob(inner)
    assert first.eph != second.eph
    assert first.sk != second.sk
    assert first.ct != second.ct


def test_envelope_field_sizes() -> None:
    envelope = seal_to_bob(make_inner())
    assert envelope.v == 1
    assert len(b64d(envelope.id)) == 16
    assert len(b64d(envelope.eph)) == 32
    assert len(b64d(envelope.sk)) == 48
    assert (len(b64d(envelope.ct)) - 16) % 256 == 0


def test_document_construction_opens_with_the_code_and_back() -> None:
    inner = make_inner("spec")
    forged = forge(envelope_rules.encode_inner(inner), envelope_id=b64d(inner.id))
    assert open_as_bob(forged).inner == inner
    sealed = seal_to_bob(inner)
    sender_key, padded = spec.open_padded(
        X25519PrivateKey.from_private_bytes(BOB.secret()[32:]), sealed.model_dump()
    )
    assert sender_key == ALICE.x25519_key
    assert Inner.model_validate_json(padded) == inner


# --- tampering -----------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
@pytest.mark.parametrize("field", ["id", "eph", "sk"])
def test_flipping_any_byte_of_a_header_field_is_refused(field: str, mask: int) -> None:
    envelope = seal_to_bob(make_inner())
    for position in range(len(b64d(getattr(envelope, field)))):
        with pytest.raises(REFUSED):
            open_as_bob(flip(envelope, field, position, mask))


def test_flipping_the_bit_x25519_ignores_is_still_refused() -> None:
    """X25519 masks the top bit of a public key, so eph with bit 255 flipped gives the same `es`;
    the header hash covers the raw bytes, so the envelope still fails (PROTOCOL.md §1.4)."""
    envelope = seal_to_bob(make_inner())
    flipped = flip(envelope, "eph", 31, 0x80)
    assert spec.x25519(
        X25519PrivateKey.from_private_bytes(BOB.secret()[32:]), b64d(flipped.eph)
    ) == spec.x25519(X25519PrivateKey.from_private_bytes(BOB.secret()[32:]), b64d(envelope.eph))
    with pytest.raises(DecryptionFailed):
        open_as_bob(flipped)


@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_flipping_any_byte_of_ct_is_refused(mask: int) -> None:
    envelope = seal_to_bob(make_inner("x" * 300))  # two blocks plus the tag
    size = len(b64d(envelope.ct))
    assert size == 512 + 16
    for position in range(size):
        with pytest.raises(DecryptionFailed):
            open_as_bob(flip(envelope, "ct", position, mask))


def test_truncated_or_extended_ct_is_refused() -> None:
    envelope = seal_to_bob(make_inner())
    ct = b64d(envelope.ct)
    for changed in (ct[:-1], ct + b"\x00", ct[:16], ct[16:]):
        with pytest.raises(DecryptionFailed):
            open_as_bob(with_fields(envelope, ct=b64e(changed)))
    with pytest.raises(BadEnvelope):
        open_as_bob(with_fields(envelope, ct=b64e(ct[:15])))


@pytest.mark.parametrize("field,length", [("id", 15), ("id", 17), ("eph", 31), ("sk", 47)])
def test_wrong_field_length_is_a_bad_envelope(field: str, length: int) -> None:
    envelope = seal_to_bob(make_inner())
    with pytest.raises(BadEnvelope):
        open_as_bob(with_fields(envelope, **{field: b64e(bytes(length))}))


@pytest.mark.parametrize("field", ["id", "eph", "sk", "ct"])
def test_non_canonical_base64_is_a_bad_envelope(field: str) -> None:
    envelope = seal_to_bob(make_inner())
    text = getattr(envelope, field)
    for bad in (text + "=", text[:-1] + "+", text + " ", "~" + text[1:]):
        with pytest.raises(BadEnvelope):
            open_as_bob(with_fields(envelope, **{field: bad}))


@FAST
@given(
    field=st.sampled_from(["id", "eph", "sk", "ct"]),
    text=st.text(max_size=600),
    data=st.data(),
)
def test_flipping_arbitrary_bytes_is_refused(field: str, text: str, data: st.DataObject) -> None:
    envelope = seal_to_bob(make_inner(text))
    size = len(b64d(getattr(envelope, field)))
    position = data.draw(st.integers(0, size - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    with pytest.raises(REFUSED):
        open_as_bob(flip(envelope, field, position, mask))


def test_unsupported_version_is_a_bad_envelope() -> None:
    envelope = seal_to_bob(make_inner())
    for v in (0, 2, 255):
        with pytest.raises(BadEnvelope):
            open_as_bob(with_fields(envelope, v=v))


def test_version_is_bound_into_the_header_hash() -> None:
    inner = make_inner()
    trace = spec.seal_from(
        X25519PrivateKey.from_private_bytes(ALICE.secret()[32:]),
        BOB.x25519_key,
        b64d(inner.id),
        "bob",
        envelope_rules.encode_inner(inner),
        v=2,
    )
    as_v1 = Envelope.model_validate({**trace.envelope(2, b64d(inner.id), "bob"), "v": 1})
    with pytest.raises(DecryptionFailed):
        open_as_bob(as_v1)


# --- the recipient -------------------------------------------------------------------------


def test_another_recipients_key_cannot_open_it() -> None:
    envelope = seal_to_bob(make_inner())
    with pytest.raises(DecryptionFailed):
        envelope_rules.open_envelope(CAROL.exchange, "bob", envelope)


def test_envelope_for_someone_else_is_wrong_recipient() -> None:
    envelope = seal_to_bob(make_inner())
    with pytest.raises(BadEnvelope) as caught:
        envelope_rules.open_envelope(BOB.exchange, "carol", envelope)
    assert caught.value.code == "wrong_recipient"


@pytest.mark.parametrize("position", [0, 1, 2])
def test_changing_any_byte_of_to_is_refused(position: int) -> None:
    envelope = seal_to_bob(make_inner())
    for replacement in "aoz9":
        to = envelope.to[:position] + replacement + envelope.to[position + 1 :]
        if to == envelope.to or not USERNAME_RE.fullmatch(to):
            continue
        changed = with_fields(envelope, to=to)
        with pytest.raises(BadEnvelope) as caught:
            open_as_bob(changed)
        assert caught.value.code == "wrong_recipient"
        # Even a receiver that answers to the new name cannot open it: `to` is in the hash.
        with pytest.raises(DecryptionFailed):
            envelope_rules.open_envelope(BOB.exchange, to, changed)


# --- low-order keys ------------------------------------------------------------------------


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8])
def test_low_order_ephemeral_key_is_rejected(point: bytes) -> None:
    envelope = seal_to_bob(make_inner())
    with pytest.raises(DecryptionFailed):
        open_as_bob(with_fields(envelope, eph=b64e(point)))


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8])
def test_low_order_sender_key_is_rejected(point: bytes) -> None:
    """A forger seals a low-order S: then ss is all zero and known to everyone. The receiver
    must refuse it rather than accept a message anyone could have written."""
    inner = make_inner()
    trace = spec.seal(
        ephemeral=X25519PrivateKey.generate(),
        sender_key=point,
        ss=bytes(32),
        recipient_key=BOB.x25519_key,
        envelope_id=b64d(inner.id),
        to="bob",
        plaintext=envelope_rules.encode_inner(inner),
    )
    forged = Envelope.model_validate(trace.envelope(1, b64d(inner.id), "bob"))
    with pytest.raises(DecryptionFailed):
        open_as_bob(forged)
    # The daemon's path, with the pair's secret kept per peer (Identity.static_secret): the same.
    bob = Identity.from_secret(BOB.secret())
    with pytest.raises(DecryptionFailed):
        envelope_rules.open_envelope(bob.exchange, "bob", forged, statics=bob.static_secret)
    assert bob.statics == {}  # nothing kept for a point that is refused


def test_the_kept_static_secret_opens_and_seals_as_the_exchange_does() -> None:
    alice, bob = Identity.from_secret(ALICE.secret()), Identity.from_secret(BOB.secret())
    for _ in range(3):  # the first computes it, the others find it
        inner = make_inner()
        sealed = envelope_rules.seal(
            alice.exchange, "bob", bob.x25519_key, inner, statics=alice.static_secret
        )
        assert open_as_bob(sealed).inner == inner  # opened without the cache
        opened = envelope_rules.open_envelope(
            bob.exchange, "bob", sealed, statics=bob.static_secret
        )
        assert opened.inner == inner and opened.sender_key == alice.x25519_key
    assert list(alice.statics) == [bob.x25519_key] and list(bob.statics) == [alice.x25519_key]
    assert alice.statics[bob.x25519_key] == bob.statics[alice.x25519_key]


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8])
def test_sealing_to_a_low_order_recipient_key_fails(point: bytes) -> None:
    with pytest.raises(FlameError):
        envelope_rules.seal(ALICE.exchange, "bob", point, make_inner())


# --- the inner message ---------------------------------------------------------------------


def test_inner_id_must_match_the_header_id() -> None:
    inner = make_inner()
    other_id = bytes(range(16, 32))
    with pytest.raises(BadEnvelope):
        open_as_bob(forge(envelope_rules.encode_inner(inner), envelope_id=other_id))


def test_inner_to_must_be_the_recipient() -> None:
    inner = make_inner(to="carol")
    with pytest.raises(BadEnvelope):
        open_as_bob(forge(envelope_rules.encode_inner(inner), envelope_id=b64d(inner.id)))


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        b"not json",
        b"[]",
        b"\xff\xfe",
        inner_bytes(kind="file"),
        inner_bytes(seq=0),
        inner_bytes(seq="1"),
        inner_bytes(ts=-1),
        inner_bytes(body={"text": 5}),
        inner_bytes(extra=True),
        inner_bytes(**{"from": "Alice"}),
    ],
    ids=lambda p: p[:24].decode(errors="replace"),
)
def test_malformed_inner_message_is_a_bad_envelope(plaintext: bytes) -> None:
    envelope_id = bytes(range(16))
    if plaintext.startswith(b"{"):
        fields = json.loads(plaintext)
        fields["id"] = b64e(envelope_id)
        plaintext = json.dumps(fields).encode()
    with pytest.raises(BadEnvelope):
        open_as_bob(forge(plaintext, envelope_id=envelope_id))


def test_well_formed_forgery_by_the_document_is_accepted_as_control() -> None:
    """The control for the test above: the same path with a valid inner message opens."""
    envelope_id = bytes(range(16))
    opened = open_as_bob(forge(inner_bytes(id=b64e(envelope_id)), envelope_id=envelope_id))
    assert opened.inner.body == TextBody(text="hi")


# --- padding -------------------------------------------------------------------------------


def test_padding_hides_the_length_within_a_block() -> None:
    sizes = {len(b64d(seal_to_bob(make_inner("a" * n)).ct)) for n in range(1, 100)}
    assert sizes == {256 + 16}


def test_ciphertext_grows_by_whole_blocks() -> None:
    for n in (1, 200, 400, 1000, 5000):
        inner = make_inner("b" * n)
        plain = len(envelope_rules.encode_inner(inner))
        expected = -(-plain // 256) * 256 + 16
        assert len(b64d(seal_to_bob(inner).ct)) == expected


def test_padding_is_spaces_up_to_the_block() -> None:
    inner = make_inner("pad me")
    _, padded = spec.open_padded(
        X25519PrivateKey.from_private_bytes(BOB.secret()[32:]), seal_to_bob(inner).model_dump()
    )
    encoded = envelope_rules.encode_inner(inner)
    assert len(padded) == 256
    assert padded == encoded + b" " * (256 - len(encoded))


def test_exact_block_gets_no_extra_padding() -> None:
    base = len(envelope_rules.encode_inner(make_inner("", envelope_id="A" * 22)))
    inner = make_inner("c" * (256 - base), envelope_id="A" * 22)
    assert len(envelope_rules.encode_inner(inner)) == 256
    assert envelope_rules.pad(envelope_rules.encode_inner(inner)) == envelope_rules.encode_inner(
        inner
    )


# --- properties ----------------------------------------------------------------------------

usernames = st.from_regex(USERNAME_RE, fullmatch=True)
ids = st.binary(min_size=16, max_size=16).map(b64e)


@FAST
@given(
    text=st.one_of(st.text(max_size=40), st.text(min_size=1000, max_size=20_000)),
    envelope_id=ids,
    seq=st.integers(1, SEQ_MAX),
    ts=st.integers(0, TS_MAX_MS),
)
def test_open_seal_round_trip(text: str, envelope_id: str, seq: int, ts: int) -> None:
    inner = make_inner(text, envelope_id=envelope_id, seq=seq, ts=ts)
    envelope = seal_to_bob(inner)
    assert envelope.id == envelope_id
    assert open_as_bob(envelope).inner == inner


@FAST
@given(sender=usernames, recipient=usernames, text=st.text(max_size=200))
def test_round_trip_for_any_usernames(sender: str, recipient: str, text: str) -> None:
    inner = make_inner(text, sender=sender, to=recipient)
    envelope = envelope_rules.seal(ALICE.exchange, recipient, BOB.x25519_key, inner)
    opened = envelope_rules.open_envelope(BOB.exchange, recipient, envelope)
    assert opened.inner == inner
    assert opened.sender_key == ALICE.x25519_key
