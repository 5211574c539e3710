"""The state machines of messages and file transfers, written once (PROTOCOL.md §13.1, §11).

The store's SQL is generated from these tuples and the browser's copy (web/states.js) is tested
against them, so the order of states lives here and nowhere else. No I/O here.
"""

from __future__ import annotations

# An outgoing message moves only forward along this line: stored (sending), held by relays,
# stored by the recipient's daemon (sent), its delivered receipt, its read receipt.
MESSAGE_STATES = ("sending", "relayed", "sent", "delivered", "read")
# Off the line: given up (expired or refused), or every relay refused it. It ranks with
# "sending", so any later success still moves it on.
FAILED = "failed"
RECEIVED = "received"  # an incoming message's only state

STATE_RANK: dict[str, int] = {state: rank for rank, state in enumerate(MESSAGE_STATES)}
STATE_RANK[FAILED] = STATE_RANK["sending"]
# The recipient's daemon holds the message from "sent" on (an offer, too: §11.2).
HELD_BY_PEER = MESSAGE_STATES[STATE_RANK["sent"] :]


def rank(state: str) -> int:
    """A state's place on the line; an unknown state (a received message) ranks past the end."""
    return STATE_RANK.get(state, len(MESSAGE_STATES))


def rank_sql(column: str = "state") -> str:
    """The same ranking as an SQL expression over `column`."""
    cases = " ".join(f"WHEN '{state}' THEN {value}" for state, value in STATE_RANK.items())
    return f"CASE {column} {cases} ELSE {len(MESSAGE_STATES)} END"


def sql_list(states: tuple[str, ...]) -> str:
    """('a', 'b') -> "'a','b'" for an SQL IN list (the states are constants of this module)."""
    return ",".join(f"'{state}'" for state in states)


# File transfers. Outgoing: uploading (browser -> own daemon) -> waiting (offer queued, or the
# peer unreachable) -> sending -> complete. Incoming: receiving -> complete. Either may end
# cancelled, declined or failed instead.
OUTGOING_OPEN = ("waiting", "sending")
OPEN_STATES = ("uploading", *OUTGOING_OPEN, "receiving")
CLOSED_STATES = ("complete", "cancelled", "declined", "failed")
