"""What version 2 adds to each message, in CPU alone (PROTOCOL.md §14.4, §14.5): the same text
sealed by alice and opened by bob, as version 1 does it and as version 2 does it (the inner message
encrypted under the Olm session, the session pickled on both sides as for a batch of one message
(the daemons pickle once per batch, services/sessions.py), then the sealed envelope),
with the real code of flame.core. CPU time of this process, the best of a few rounds, so that
other work on the machine hardly moves it; the bench sets it beside the daemons' CPU per message
of the burst to say what share of the message path the ratchet is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flame.core import envelope as env
from flame.core import ratchet
from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.models import Inner, TextBody

ROUNDS = 5


def _inner(n: int, text: str) -> Inner:
    return Inner(
        from_="alice",
        to="bob",
        id=b64e(n.to_bytes(16, "big")),
        seq=n + 1,
        ts=1,
        kind="text",
        body=TextBody(text=text),
    )


def _best_us(steps: list[Callable[[int], None]], messages: int) -> list[float]:
    """Each step's best round, the steps' rounds taking turns (so that a busy moment of the
    machine weighs on all of them alike)."""
    best = [float("inf")] * len(steps)
    for round_ in range(ROUNDS):
        for index, step in enumerate(steps):
            began = time.process_time()
            for n in range(messages):
                step(1 + (round_ * len(steps) + index) * messages + n)
            best[index] = min(best[index], time.process_time() - began)
    return [1e6 * b / messages for b in best]


def measure_ratchet_cost(messages: int = 1000, text_chars: int = 100) -> dict[str, Any]:
    alice, bob = Identity.generate(), Identity.generate()
    a_key, b_key = ratchet.pickle_key(alice, "alice"), ratchet.pickle_key(bob, "bob")
    text = "x" * text_chars
    a_statics, b_statics = alice.static_secret, bob.static_secret  # as the daemons keep them

    def version_1(seq: int) -> None:
        inner = _inner(seq, text)
        sealed = env.seal(alice.exchange, "bob", bob.x25519_key, inner, statics=a_statics)
        env.open_envelope(bob.exchange, "bob", sealed, (1, 2), statics=b_statics)

    # A session that both sides already use (the steady state of a conversation).
    bob_account = ratchet.new_account()
    one_time, _ = ratchet.fresh_prekeys(bob_account, bob, "bob", 1)
    bob_account.mark_keys_as_published()
    alice_account = ratchet.new_account()
    _, alice_pickle = ratchet.outbound(alice_account, a_key, one_time[0])
    me = ratchet.account_identity(alice_account)
    sending = ratchet.session_from(alice_pickle, a_key)
    first = ratchet.encrypt(sending, a_key, me, env.encode_inner(_inner(0, text)))
    outer = Inner(
        from_="alice", to="bob", id=b64e(bytes(16)), seq=0, ts=0, kind="ratchet", body=first.body
    )
    opened = ratchet.decrypt(None, bob_account, b_key, first.body, outer)
    receiving = ratchet.session_from(opened.pickle, b_key)

    def version_2(seq: int) -> None:
        inner = _inner(seq, text)
        sealed_inner = ratchet.encrypt(sending, a_key, me, env.encode_inner(inner))  # + pickle
        wrapped = Inner(
            from_="alice",
            to="bob",
            id=inner.id,
            seq=0,
            ts=0,
            kind="ratchet",
            body=sealed_inner.body,
        )
        sealed = env.seal(
            alice.exchange, "bob", bob.x25519_key, wrapped, version=2, statics=a_statics
        )
        got = env.open_envelope(bob.exchange, "bob", sealed, (1, 2), statics=b_statics).inner
        # Both daemons keep the session unpickled, and pickle it for the store once per batch
        # (services/sessions.py); here every message is a batch of one: the most it can cost.
        ratchet.decrypt(receiving, None, b_key, ratchet.body_of(got), got)

    v1_us, v2_us = _best_us([version_1, version_2], messages)
    return {
        "messages": messages,
        "rounds": ROUNDS,
        "v1_us": round(v1_us, 1),
        "v2_us": round(v2_us, 1),
        "added_us": round(v2_us - v1_us, 1),
    }
