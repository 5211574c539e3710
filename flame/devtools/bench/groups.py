"""The bench's group figures (PROTOCOL.md §19, docs/ARCHITECTURE.md "Groups"): the CPU cost of
sealing one group message for 5, 20 and 100 members by pairwise fan-out (what Flame does: one
envelope per member, version 1 and version 2), beside the sender-keys alternative estimated with
the same primitives (one AEAD and one Ed25519 signature per message, and one small key envelope
per member at each membership change). Pure CPU, in this process: no daemon, no network.

    python -m flame.devtools.bench.groups      # the table alone
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import vodozemac
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from flame.core import envelope as envelope_rules
from flame.core import ratchet
from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.group_models import GroupTextBody
from flame.core.models import Inner
from flame.devtools.stats import print_rows

SIZES = (5, 20, 100)
TEXT = "The board meets at nine; the papers are in the usual folder. " * 2  # ~120 characters
PICKLE_KEY = bytes(32)


def _inner(to: str, kind: str, body: Any) -> Inner:
    return Inner(
        from_="alice", to=to, id=envelope_rules.new_message_id(), seq=0, ts=1, kind=kind, body=body
    )


def _sessions(count: int) -> list[vodozemac.Session]:
    """Sessions from alice to `count` members, each past its prekey message (a reply came)."""
    alice = ratchet.new_account()
    found = []
    for _ in range(count):
        member = ratchet.new_account()
        member.generate_one_time_keys(1)
        (one_time,) = member.one_time_keys.values()
        outbound = alice.create_outbound_session(member.curve25519_key, one_time)
        first = outbound.encrypt(b"hello").to_pre_key()
        assert first is not None
        inbound, _ = member.create_inbound_session(alice.curve25519_key, first)
        outbound.decrypt(inbound.encrypt(b"hi"))
        found.append(outbound)
    return found


def _cpu_ms(work: Callable[[], object], repeats: int) -> float:
    """The median CPU time of `work`, in ms."""
    spent = []
    for _ in range(repeats):
        begun = time.process_time()
        work()
        spent.append(time.process_time() - begun)
    return round(1000 * statistics.median(spent), 3)


def measure_size(members: int, repeats: int) -> dict[str, Any]:
    sender = Identity.generate()
    others = [(f"m{i:03}", Identity.generate().x25519_key) for i in range(members - 1)]
    sessions = _sessions(members - 1)
    me = b64e(bytes(32))
    statics = sender.static_secret  # each pair's static-static secret, kept as the daemon does
    body = GroupTextBody(
        group=b64e(bytes(16)), id=b64e(bytes(16)), seq=1, heads=["A" * 43], text=TEXT
    )

    def fan_out_v1() -> int:
        sealed = [
            envelope_rules.seal(
                sender.exchange, name, key, _inner(name, "group_text", body), statics=statics
            )
            for name, key in others
        ]
        return sum(len(e.ct) for e in sealed)

    def fan_out_v2() -> int:
        total = 0
        for (name, key), session in zip(others, sessions, strict=True):
            inner = _inner(name, "group_text", body)
            sealed = ratchet.encrypt(session, PICKLE_KEY, me, envelope_rules.encode_inner(inner))
            outer = Inner(
                from_="alice", to=name, id=inner.id, seq=0, ts=0, kind="ratchet", body=sealed.body
            )
            sealed_v2 = envelope_rules.seal(
                sender.exchange, name, key, outer, version=2, statics=statics
            )
            total += len(sealed_v2.ct)
        return total

    group_key = ChaCha20Poly1305(os.urandom(32))

    def sender_keys_message() -> int:
        plaintext = envelope_rules.pad(
            envelope_rules.encode_inner(_inner("group", "group_text", body))
        )
        ciphertext = group_key.encrypt(os.urandom(12), plaintext, b"group")
        sender.sign(ciphertext)  # members must know who wrote it: a signature per message
        return len(ciphertext)

    def sender_keys_change() -> int:
        # A new 32-byte sender key to each member, in a small body of its own.
        key_body = body.model_copy(update={"text": b64e(os.urandom(32))})
        sealed = [
            envelope_rules.seal(
                sender.exchange, name, key, _inner(name, "group_text", key_body), statics=statics
            )
            for name, key in others
        ]
        return len(sealed)

    return {
        "members": members,
        "envelopes": members - 1,
        "fan_out_v1_ms": _cpu_ms(fan_out_v1, repeats),
        "fan_out_v2_ms": _cpu_ms(fan_out_v2, repeats),
        "fan_out_v2_bytes": fan_out_v2(),
        "sender_keys_message_ms": _cpu_ms(sender_keys_message, repeats * 5),
        "sender_keys_change_ms": _cpu_ms(sender_keys_change, repeats),
    }


def measure_groups(repeats: int = 15) -> dict[str, Any]:
    return {"sizes": [measure_size(members, repeats) for members in SIZES]}


def group_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("group message, CPU to seal", "fan-out v1 / v2; sender keys: message, change")]
    for size in figures["sizes"]:
        rows.append(
            (
                f"  {size['members']} members",
                f"{size['fan_out_v1_ms']:.2f} / {size['fan_out_v2_ms']:.2f} ms "
                f"({size['envelopes']} envelopes, {size['fan_out_v2_bytes'] // 1024} KiB); "
                f"{size['sender_keys_message_ms']:.3f} ms, {size['sender_keys_change_ms']:.2f} ms",
            )
        )
    return rows


if __name__ == "__main__":
    print_rows("Flame bench: groups (CPU, this process)", group_rows(measure_groups()))
