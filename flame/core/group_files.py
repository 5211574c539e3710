"""Files sent to a group (PROTOCOL.md §19.7), the pure rules: who a file was sent to (the
membership at the heads its author named) and where a member fetches its chunks from (the
recipients before it in byte order of usernames, nearest first, then the author).

No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flame.core.group_models import GroupOp
from flame.core.groups import Membership, resolve

# How long a holder waits for a chunk it does not hold yet before it answers `not_held`; how
# long a fetcher leaves aside a holder that had nothing new, and one it could not reach; the
# most one answer carries, so that a fetcher that had to ask a farther holder (the author, say)
# asks the nearer ones again soon (PROTOCOL.md §19.7).
HOLD_WAIT_S = 3.0
STALL_S = 2.0
UNREACHABLE_S = 30.0
ANSWER_MAX_BYTES = 16 * 1024 * 1024


def answer_end(start: int, held: int, sealed_chunk_bytes: int) -> int:
    """The end (excluded) of the chunks one answer carries from `start`: what is held, at most
    ANSWER_MAX_BYTES of sealed chunks, at least one chunk."""
    return min(held, start + max(1, ANSWER_MAX_BYTES // sealed_chunk_bytes))


def ancestry(ops: Mapping[str, GroupOp], heads: Sequence[str]) -> dict[str, GroupOp]:
    """The held operations `heads` name and all their held ancestors."""
    found: dict[str, GroupOp] = {}
    stack = [h for h in heads if h in ops]
    while stack:
        h = stack.pop()
        if h in found:
            continue
        found[h] = ops[h]
        stack.extend(p for p in ops[h].parents if p in ops and p not in found)
    return found


def membership_at(ops: Mapping[str, GroupOp], heads: Sequence[str]) -> Membership | None:
    """The membership the author of a group message held when it named `heads` (§19.3 on the
    heads' ancestry); None when not every head is held."""
    if not heads or any(h not in ops for h in heads):
        return None
    return resolve(ancestry(ops, heads))


def recipients(ops: Mapping[str, GroupOp], heads: Sequence[str], author: str) -> tuple[str, ...]:
    """Who a group file was sent to: the members at its heads but its author, in byte order."""
    membership = membership_at(ops, heads)
    if membership is None or author not in membership.members:
        return ()
    return tuple(sorted((m for m in membership.members if m != author), key=str.encode))


def sources(recipients: Sequence[str], me: str, author: str) -> list[str]:
    """Where `me` asks for a group file's chunks, in order (§19.7): the recipients before it in
    byte order, nearest first, then the author, who holds them all. So the first recipient
    fetches from the author and each other one from the recipient before it: the author serves
    the file about once, however many members there are."""
    ordered = sorted(recipients, key=str.encode)
    if me not in ordered:
        return [author]
    before = ordered[: ordered.index(me)]
    return [*reversed(before), author]
