"""The skipped-key bounds of version 2 exactly as PROTOCOL.md §14.5 states them (they are
vodozemac's, and Flame's constants name them): a skipped key opens its message once and is then
deleted, it is dropped when its chain is five receiving chains old, and a message more than 2000
ahead of its chain is refused. A message key is never used twice: the same ciphertext never opens
twice, in order or out of it."""

from __future__ import annotations

import pytest
import vodozemac

from flame.core import ratchet


def started() -> tuple[vodozemac.Session, vodozemac.Session]:
    """alice's session to bob and bob's from her first (prekey) message."""
    alice, bob = ratchet.new_account(), ratchet.new_account()
    bob.generate_one_time_keys(1)
    (one_time,) = bob.one_time_keys.values()
    outbound = alice.create_outbound_session(bob.curve25519_key, one_time)
    first = outbound.encrypt(b"first").to_pre_key()
    assert first is not None
    inbound, plaintext = bob.create_inbound_session(alice.curve25519_key, first)
    assert plaintext == b"first"
    return outbound, inbound


def refused(session: vodozemac.Session, message: vodozemac.AnyOlmMessage) -> bool:
    try:
        session.decrypt(message)
    except vodozemac.OlmDecryptionException:
        return True
    return False


def test_a_message_opens_once_in_order_or_out_of_it_and_its_skipped_key_is_deleted() -> None:
    alice, bob = started()
    m1, m2, m3 = (alice.encrypt(f"m{i}".encode()) for i in (1, 2, 3))
    assert bob.decrypt(m3) == b"m3"  # m1 and m2 skipped: their keys are kept
    assert bob.decrypt(m1) == b"m1"  # a skipped key opens its message...
    assert refused(bob, m1)  # ...once: it is deleted after use
    assert refused(bob, m3)  # in order too: the chain has moved past its key
    assert bob.decrypt(m2) == b"m2"  # the other skipped key is still there
    assert refused(bob, m2)


def test_a_skipped_key_is_dropped_when_its_chain_is_five_receiving_chains_old() -> None:
    assert ratchet.MAX_RECEIVING_CHAINS == 5

    def skipped_after(steps: int) -> bool:
        alice, bob = started()
        skipped = alice.encrypt(b"late")  # never delivered in time
        assert bob.decrypt(alice.encrypt(b"next")) == b"next"
        for _ in range(steps):  # a round trip: bob's reply, then alice's next chain
            assert alice.decrypt(bob.encrypt(b"reply")) == b"reply"
            assert bob.decrypt(alice.encrypt(b"again")) == b"again"
        return not refused(bob, skipped)

    assert skipped_after(ratchet.MAX_RECEIVING_CHAINS - 1)  # its chain is one of the five kept
    assert not skipped_after(ratchet.MAX_RECEIVING_CHAINS)  # a fifth newer one: gone


def test_a_receiving_chain_keeps_forty_skipped_keys() -> None:
    assert ratchet.MAX_SKIPPED_PER_CHAIN == 40
    alice, bob = started()
    messages = [alice.encrypt(b"%d" % i) for i in range(ratchet.MAX_SKIPPED_PER_CHAIN + 2)]
    assert bob.decrypt(messages[-1]) == b"%d" % (len(messages) - 1)  # 41 skipped
    assert refused(bob, messages[0])  # the oldest is past the 40 kept
    assert bob.decrypt(messages[1]) == b"1"  # the 40 newest skipped still open


@pytest.mark.parametrize(
    ("gap", "opens"), [(ratchet.MAX_MESSAGE_GAP, True), (ratchet.MAX_MESSAGE_GAP + 1, False)]
)
def test_a_message_more_than_2000_ahead_of_its_chain_is_refused(gap: int, opens: bool) -> None:
    assert ratchet.MAX_MESSAGE_GAP == 2000
    alice, bob = started()
    for _ in range(gap):
        alice.encrypt(b"never delivered")
    assert refused(bob, alice.encrypt(b"ahead")) is not opens


def _forged(message: vodozemac.AnyOlmMessage) -> vodozemac.AnyOlmMessage:
    """`message` with the last byte of its MAC flipped."""
    message_type, ciphertext = message.to_parts()
    return vodozemac.AnyOlmMessage.from_parts(
        message_type, ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
    )


def test_a_message_that_does_not_open_leaves_the_session_as_it_was() -> None:
    """What services/sessions.py relies on to pickle a session once per batch it opened
    (PROTOCOL.md §14.6): a failed decryption changes nothing, on the current chain, on a chain
    far ahead (no skipped keys kept) and with a new ratchet key (no ratchet step kept)."""
    key = bytes(range(32))
    alice, bob = started()
    ahead = [alice.encrypt(f"a{i}".encode()) for i in range(30)]
    before = bob.pickle(key)
    for forged in (_forged(ahead[0]), _forged(ahead[-1])):
        assert refused(bob, forged)
        assert bob.pickle(key) == before
    assert bob.decrypt(ahead[0]) == b"a0"
    reply = bob.encrypt(b"reply")
    assert alice.decrypt(reply) == b"reply"
    stepped = alice.encrypt(b"after a ratchet step")  # a new ratchet key
    before = bob.pickle(key)
    assert refused(bob, _forged(stepped))
    assert bob.pickle(key) == before
    assert bob.decrypt(stepped) == b"after a ratchet step"
    assert bob.decrypt(ahead[-1]) == b"a29"  # and the old chain still opens
