"""The vectors of docs/PROTOCOL.md §17.8 (replies, edits, deletes, reactions, typing), written by
tools/gen_vectors.py: each kind's inner message as a Flame sender encodes it, sealed (version 1,
alice to bob, with a fixed ephemeral key per kind); which strings are one emoji; and the window
rule at its edges. tests/core/test_vectors_kinds.py checks them against the code and the text.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from flame.core import actions
from flame.core import envelope as env
from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.models import Inner
from flame.errors import RequestError

TS = 1700000000123  # the original message's time, ms
ORIGINAL = b64e(bytes(range(16)))  # §10's text: alice's message to bob
BOB_MESSAGE = b64e(bytes(range(16, 32)))
DAY_MS = 24 * 3600 * 1000


def inner(envelope_id: int, kind: str, body: dict[str, Any], *, seq: int = 0, ts: int) -> Inner:
    return Inner.model_validate(
        {
            "from": "alice",
            "to": "bob",
            "id": b64e(bytes([envelope_id]) * 16),
            "seq": seq,
            "ts": ts,
            "kind": kind,
            "body": body,
        }
    )


def messages() -> dict[str, Inner]:
    mine = {"id": ORIGINAL, "author": "alice"}
    theirs = {"id": BOB_MESSAGE, "author": "bob"}
    return {
        "reply": inner(
            0x11, "text", {"text": "Yes, at ten.", "reply_to": theirs}, seq=2, ts=TS + 1000
        ),
        "edit": inner(0x12, "edit", {"target": mine, "text": "Hello, Bob! (edited)"}, ts=TS + 2000),
        "reaction": inner(
            0x13, "reaction", {"target": theirs, "emoji": "👍", "on": True}, ts=TS + 3000
        ),
        "delete": inner(0x14, "delete", {"target": mine}, ts=TS + 4000),
        "typing": inner(0x15, "typing", {"typing": True}, ts=TS + 5000),
    }


EMOJI_ACCEPTED = [
    *actions.QUICK_REACTIONS,
    "🔥",
    "👍🏽",
    "🏳️‍🌈",
    "👩🏽‍💻",
    "🇫🇷",
    "#️⃣",
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "©",
]
EMOJI_REFUSED = ["", "a", "👍👍", "🇫", "\u200d👍", "👍\u200d", "1", "❤\ufe0e", "👍 "]


def window_cases() -> list[dict[str, Any]]:
    """(the message's ts, the action's ts, when the message arrived, now) at the edges."""
    arrived, limit = TS / 1000, actions.ARRIVAL_LIMIT_S
    raw = [
        ("24 h after: in time", TS + DAY_MS, arrived, arrived + 60),
        ("24 h and 1 ms after: too late", TS + DAY_MS + 1, arrived, arrived + 60),
        ("10 min before (a clock set back): in time", TS - 600_000, arrived, arrived + 60),
        ("10 min and 1 ms before: too late", TS - 600_001, arrived, arrived + 60),
        ("arriving 16 days after the message: in time", TS + 1000, arrived, arrived + limit),
        ("arriving later: too late", TS + 1000, arrived, arrived + limit + 1),
    ]
    cases = []
    for name, action_ts, received_at, now in raw:
        try:
            actions.check_window(TS, action_ts, received_at, now)
            result = "ok"
        except RequestError as exc:
            result = exc.code
        cases.append(
            {
                "case": name,
                "target_ts": TS,
                "action_ts": action_ts,
                "received_at": received_at,
                "now": now,
                "result": result,
            }
        )
    return cases


def build(alice: Identity, bob: Identity) -> dict[str, Any]:
    sealed = {}
    for index, (name, message) in enumerate(messages().items()):
        ephemeral = X25519PrivateKey.from_private_bytes(bytes([0xE1 + index]) * 32)
        envelope = env.seal(alice.exchange, "bob", bob.x25519_key, message, ephemeral=ephemeral)
        sealed[name] = {
            "ephemeral_private_hex": (bytes([0xE1 + index]) * 32).hex(),
            "inner_json": env.encode_inner(message).decode(),
            "envelope_json": envelope.model_dump_json(),
        }
    wrong = [e for e in EMOJI_ACCEPTED if not actions.is_emoji(e)]
    wrong += [e for e in EMOJI_REFUSED if actions.is_emoji(e)]
    if wrong:
        raise SystemExit(f"the emoji rule disagrees with the vectors' lists: {wrong!r}")
    return {
        "messages": sealed,
        "emoji": {"accepted": EMOJI_ACCEPTED, "refused": EMOJI_REFUSED},
        "window": window_cases(),
    }
