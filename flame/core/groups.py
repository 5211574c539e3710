"""Groups (PROTOCOL.md §19): membership operations, signed and hash-linked; the one deterministic
rule that turns a set of them into a membership; what a receiver refuses. No I/O here.

Every member holds a set of operations and computes the membership from the set alone, whatever
order the operations arrived in: that is why every member converges (§19.3).
"""

from __future__ import annotations

import hashlib
import heapq
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flame.core.crypto import Identity
from flame.core.encoding import b64d, b64e
from flame.core.group_models import GroupOp, OpKind
from flame.core.image import check_image
from flame.core.signing import record_message, sign_record, verify_record
from flame.errors import BadRequest, RequestError, Unavailable

CONTEXT = "group-op"  # signed as "flame/v1/group-op\n" || canonical JSON (§4.5, §19.2)
GROUP_ID_BYTES = 16
HASH_BYTES = 32
MAX_MEMBERS = 100
NAME_MAX = 64
ADMIN_OPS = frozenset({"add", "remove", "promote", "rename", "picture"})
TARGETED_OPS = frozenset({"add", "remove", "promote"})


def refused(code: str, message: str, status: int = 400) -> RequestError:
    return RequestError(message, code=code, status=status)


def bad_op(message: str) -> RequestError:
    return RequestError(message, code="bad_group_op")


# --- encoding and signatures (§19.2) ----------------------------------------------------------


def new_group_id() -> str:
    return b64e(os.urandom(GROUP_ID_BYTES))


def op_fields(op: GroupOp) -> dict[str, Any]:
    return op.model_dump(exclude={"sig"})


def op_message(op: GroupOp) -> bytes:
    return record_message(CONTEXT, op_fields(op))


def op_hash(op: GroupOp) -> str:
    """An operation's name: SHA-256 of the bytes its author signed, base64url."""
    return b64e(hashlib.sha256(op_message(op)).digest())


def hash_order(value: str) -> bytes:
    """Ties are broken by the raw hash bytes (not by their base64url text, which sorts
    differently)."""
    return b64d(value, length=HASH_BYTES, what="operation hash")


def make_op(
    identity: Identity,
    author: str,
    group: str,
    kind: OpKind,
    parents: Iterable[str],
    ts_ms: int,
    *,
    members: Sequence[str] = (),
    name: str | None = None,
    picture: str | None = None,
) -> GroupOp:
    unsigned: dict[str, Any] = {
        "group": group,
        "op": kind,
        "author": author,
        "parents": sorted(set(parents), key=hash_order),
        "ts": ts_ms,
        "members": list(members),
        "name": name,
        "picture": picture,
    }
    return GroupOp.model_validate({**unsigned, "sig": sign_record(identity, CONTEXT, unsigned)})


def verify_op(op: GroupOp, identity_key: bytes) -> bool:
    return verify_record(identity_key, CONTEXT, op_fields(op), op.sig)


def check_form(op: GroupOp) -> None:
    """What an operation must be on its own, before any state (§19.2). Raises RequestError."""
    try:
        b64d(op.group, length=GROUP_ID_BYTES, what="group")
        parents = [hash_order(p) for p in op.parents]
    except BadRequest as exc:
        raise bad_op(f"Malformed group operation: {exc.message}.") from exc
    if parents != sorted(set(parents)):
        raise bad_op("An operation's parents are sorted and distinct.")
    if (op.op == "create") != (not op.parents):
        raise bad_op("Only a create has no parents, and a create has none.")
    targeted = op.op in TARGETED_OPS or op.op == "create"
    if targeted and op.op != "create" and not op.members:
        raise bad_op(f"A {op.op} names at least one member.")
    if not targeted and op.members:
        raise bad_op(f"A {op.op} names no members.")
    if len(set(op.members)) != len(op.members):
        raise bad_op("An operation names each member once.")
    if op.op == "create" and (not op.members or op.author in op.members):
        raise bad_op("A create names the other members (at least one), not its author.")
    if len(op.members) > MAX_MEMBERS - 1:
        raise refused("too_many_members", f"A group has at most {MAX_MEMBERS} members.")
    if op.op == "remove" and op.author in op.members:
        raise bad_op("An admin leaves with a leave, not a remove.")
    if (op.name is not None) != (op.op in ("create", "rename")):
        raise bad_op("Only a create and a rename carry a name, and they must.")
    if op.name is not None:
        if not op.name.strip():
            raise bad_op("A group's name is not empty.")
        if len(op.name) > NAME_MAX:
            raise refused("name_too_long", f"A group's name is at most {NAME_MAX} characters.")
    if op.picture is not None:
        if op.op not in ("create", "picture"):
            raise bad_op("Only a create and a picture carry a picture.")
        try:
            check_image(b64d(op.picture, what="picture"))
        except BadRequest as exc:
            raise bad_op(f"The group's picture is refused: {exc.message}") from exc


# --- the membership (§19.3) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Membership:
    """The membership computed from a set of operations."""

    group: str
    creator: str
    name: str
    picture: str | None
    members: frozenset[str]
    admins: frozenset[str]
    heads: tuple[str, ...]  # the operations no held operation follows: a new one's parents
    applied: tuple[str, ...]  # in the order they took effect
    void: frozenset[str]  # included, but without effect (not allowed, or undone by §19.3 rule 4)
    pending: frozenset[str] = field(default=frozenset())  # held, but an ancestor is missing


@dataclass(slots=True)
class _State:
    name: str
    picture: str | None
    members: set[str]
    admins: set[str]


def _allowed(op: GroupOp, state: _State) -> bool:
    targets = set(op.members)
    if op.author not in state.members:
        return False
    if op.op in ADMIN_OPS and op.author not in state.admins:
        return False
    if op.op == "add":
        return not targets & state.members and len(state.members | targets) <= MAX_MEMBERS
    if op.op == "remove":
        return targets <= state.members
    if op.op == "promote":
        return targets <= state.members - state.admins
    return op.op != "create"


def _apply(op: GroupOp, state: _State) -> None:
    targets = set(op.members)
    if op.op == "add":
        state.members |= targets
    elif op.op == "remove":
        state.members -= targets
        state.admins -= targets
    elif op.op == "promote":
        state.admins |= targets
    elif op.op == "rename":
        state.name = op.name or state.name
    elif op.op == "picture":
        state.picture = op.picture
    elif op.op == "leave":
        state.members.discard(op.author)
        state.admins.discard(op.author)
    if not state.admins and state.members:  # the last admin left: rule 5 of §19.3
        state.admins.add(min(state.members))


def _included(ops: Mapping[str, GroupOp], create: str) -> tuple[set[str], set[str]]:
    """The operations whose every ancestor is held and descends from `create`; and the rest."""
    included = {create}
    rest = {h for h in ops if h != create}
    grew = True
    while grew:
        grew = False
        for h in sorted(rest):
            op = ops[h]
            if op.op != "create" and all(p in included for p in op.parents):
                included.add(h)
                rest.discard(h)
                grew = True
    return included, rest


def _order(ops: Mapping[str, GroupOp], included: set[str]) -> list[str]:
    """Topological order (parents first); among operations ready at once, the smallest hash."""
    children: dict[str, list[str]] = {h: [] for h in included}
    waiting = {h: len(ops[h].parents) for h in included}
    for h in included:
        for parent in ops[h].parents:
            children[parent].append(h)
    ready = [(hash_order(h), h) for h, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, h = heapq.heappop(ready)
        order.append(h)
        for child in children[h]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (hash_order(child), child))
    return order


def _ancestors(ops: Mapping[str, GroupOp], order: list[str]) -> dict[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}
    for h in order:  # parents come first
        parents = ops[h].parents
        found[h] = frozenset(parents).union(*(found[p] for p in parents))
    return found


def resolve(ops: Mapping[str, GroupOp]) -> Membership | None:
    """The membership of a group from the operations held for it (by hash), by the rule of
    §19.3; None when no create is held."""
    creates = sorted((h for h, op in ops.items() if op.op == "create"), key=hash_order)
    if not creates:
        return None
    create = creates[0]
    included, rest = _included(ops, create)
    order = _order(ops, included)
    ancestors = _ancestors(ops, order)
    first = ops[create]
    void: set[str] = set()
    while True:
        state = _State(first.name or "", first.picture, {first.author, *first.members}, set())
        state.admins.add(first.author)
        applied, skipped, removals = [create], set(), []
        for h in order[1:]:
            op = ops[h]
            if h in void or not _allowed(op, state):
                skipped.add(h)
                continue
            _apply(op, state)
            applied.append(h)
            if op.op == "remove":
                removals.append(h)
        # Rule 4: what a removed member wrote concurrently with its removal is undone.
        undone = {
            h
            for r in removals
            for h in order
            if ops[h].author in ops[r].members
            and h not in ancestors[r]
            and r not in ancestors[h]
            and h != r
        }
        if undone <= void:
            break
        void |= undone
    followed = {p for h in included for p in ops[h].parents}
    heads = tuple(sorted((h for h in included if h not in followed), key=hash_order))
    return Membership(
        group=first.group,
        creator=first.author,
        name=state.name,
        picture=state.picture,
        members=frozenset(state.members),
        admins=frozenset(state.admins),
        heads=heads,
        applied=tuple(applied),
        void=frozenset(skipped),
        pending=frozenset(rest),
    )


# --- what a receiver refuses (§19.4, §19.5) ---------------------------------------------------


def check_authority(held: Mapping[str, GroupOp], op: GroupOp) -> None:
    """An operation must be allowed in the membership of its own ancestry: its author an admin
    there (a member, for a leave), its targets fitting, the limit kept. Its parents must be held
    (else Unavailable: they are on their way, the sender tries again). Raises RequestError."""
    missing = [p for p in op.parents if p not in held]
    if missing:
        raise Unavailable("An operation this one follows has not arrived yet.")
    ancestry: dict[str, GroupOp] = {}
    stack = list(op.parents)
    while stack:
        h = stack.pop()
        if h not in ancestry:
            ancestry[h] = held[h]
            stack.extend(held[h].parents)
    before = resolve(ancestry)
    if before is None or before.pending:
        raise Unavailable("An operation this one follows has not arrived yet.")
    state = _State(before.name, before.picture, set(before.members), set(before.admins))
    if op.author not in state.members:
        raise refused("not_member", f"{op.author} is not a member of this group.", 403)
    if op.op in ADMIN_OPS and op.author not in state.admins:
        raise refused("not_admin", f"{op.author} is not an admin of this group.", 403)
    if op.op == "add" and len(state.members | set(op.members)) > MAX_MEMBERS:
        raise refused("too_many_members", f"A group has at most {MAX_MEMBERS} members.")
    if not _allowed(op, state):
        raise bad_op(f"This {op.op} does not fit the group's members.")


def check_message(membership: Membership | None, me: str, author: str) -> None:
    """A group message is refused, nothing stored, for a group this daemon does not know, one its
    user is no longer in, or from an author who is not a member (§19.5). Raises RequestError."""
    if membership is None:
        raise refused("unknown_group", "This daemon knows no such group.", 404)
    if me not in membership.members:
        raise refused("left_group", "This user is not in that group any more.", 410)
    if author not in membership.members:
        raise refused("not_member", f"{author} is not a member of this group.", 403)


def check_op(held: Mapping[str, GroupOp], op: GroupOp, group: str, identity_key: bytes) -> None:
    """Everything a receiver checks of one new operation of `group` (§19.4), given the
    operations it holds for that group and the author's pinned identity key. Raises
    RequestError; an operation already held is the caller's duplicate, never checked again."""
    check_form(op)
    if op.group != group:
        raise bad_op("The operation belongs to another group.")
    if not verify_op(op, identity_key):
        raise refused("bad_op_signature", "The operation's signature does not verify.")
    if op.op == "create":
        if held:
            raise refused("group_exists", "A group with this id exists already.", 409)
        return
    if not held:
        raise refused("unknown_group", "This daemon knows no such group.", 404)
    check_authority(held, op)


def accept_ops(
    held: Mapping[str, GroupOp], ops: Sequence[GroupOp], group: str, keys: Mapping[str, bytes]
) -> dict[str, GroupOp]:
    """The operations of one `group_ops` body that are new to a receiver holding `held`, each
    checked by check_op in the body's order (§19.4); `keys` are the authors' pinned identity
    keys. A body succeeds or fails whole: the first refusal raises, and nothing is kept. For a
    group the receiver does not hold, the body must bring its create, else `unknown_group`."""
    if not held and not any(o.op == "create" for o in ops):
        raise refused("unknown_group", "This daemon knows no such group.", 404)
    known = dict(held)
    new: dict[str, GroupOp] = {}
    for item in ops:
        h = op_hash(item)
        if h in known:
            continue  # a replay, or one the receiver holds already: no effect (§19.4)
        key = keys.get(item.author)
        if key is None:
            raise refused("unknown_sender", "The operation's author is not a known user.")
        check_op(known, item, group, key)
        known[h] = item
        new[h] = item
    return new


def log_order(ops: Mapping[str, GroupOp]) -> list[str]:
    """The included operations in the order of §19.3 rule 2: how a full log is sent (§19.4)."""
    creates = sorted((h for h, op in ops.items() if op.op == "create"), key=hash_order)
    if not creates:
        return []
    included, _ = _included(ops, creates[0])
    return _order(ops, included)


def follows(ops: Mapping[str, GroupOp], later: str, earlier: str) -> bool:
    """Whether `earlier` is an ancestor of `later` (both held)."""
    stack, seen = list(ops[later].parents), set()
    while stack:
        h = stack.pop()
        if h == earlier:
            return True
        if h not in seen and h in ops:
            seen.add(h)
            stack.extend(ops[h].parents)
    return False
