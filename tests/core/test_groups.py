"""Groups (PROTOCOL.md §19): operations round-trip and verify, every refusal has its code, the
conflict rule does what §19.3 says, and any delivery order of the same signed operations gives
the same membership (hypothesis). Plain functions, no event loop."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flame.core import groups
from flame.core.crypto import Identity
from flame.core.encoding import b64e, parse_json_object
from flame.core.envelope import encode_inner
from flame.core.group_models import GroupOp, GroupOpsBody, GroupTextBody
from flame.core.models import Inner
from flame.errors import RequestError, Unavailable

USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]
KEYS = {name: Identity.from_secret(bytes([i + 1]) * 64) for i, name in enumerate(USERS)}
PUBLIC = {name: key.identity_key for name, key in KEYS.items()}
GROUP = b64e(bytes(range(16)))


def op(author: str, kind: Any, parents: list[str], ts: int = 1, **args: Any) -> GroupOp:
    return groups.make_op(KEYS[author], author, GROUP, kind, parents, ts, **args)


def by_hash(*ops: GroupOp) -> dict[str, GroupOp]:
    return {groups.op_hash(o): o for o in ops}


def create(members: list[str] | None = None) -> GroupOp:
    return op("alice", "create", [], members=members or ["bob", "carol"], name="Board")


def code_of(exc: pytest.ExceptionInfo[RequestError]) -> str:
    return exc.value.code


# --- formats -------------------------------------------------------------------------------


def test_an_operation_round_trips_inside_a_group_ops_inner_message() -> None:
    first = create()
    inner = Inner(
        from_="alice",
        to="bob",
        id=b64e(bytes(16)),
        seq=0,
        ts=5,
        kind="group_ops",
        body=GroupOpsBody(group=GROUP, ops=[first]),
    )
    again = Inner.model_validate(parse_json_object(encode_inner(inner)))
    assert again == inner
    assert isinstance(again.body, GroupOpsBody)
    assert groups.op_hash(again.body.ops[0]) == groups.op_hash(first)
    assert groups.verify_op(again.body.ops[0], PUBLIC["alice"])


def test_a_group_message_round_trips_and_its_stored_copy_keeps_no_text() -> None:
    body = GroupTextBody(group=GROUP, id=b64e(bytes(16)), seq=1, heads=["x" * 43], text="Hi")
    inner = Inner(
        from_="alice", to="bob", id=b64e(bytes(16)), seq=0, ts=5, kind="group_text", body=body
    )
    assert Inner.model_validate(parse_json_object(encode_inner(inner))) == inner
    assert "Hi" not in body.stored_json()


def test_a_group_kind_is_a_control_kind_outside_the_one_to_one_order() -> None:
    body = GroupTextBody(group=GROUP, id=b64e(bytes(16)), seq=1, heads=["x" * 43], text="Hi")
    with pytest.raises(ValueError, match="seq"):
        Inner(from_="alice", to="bob", id="i", seq=1, ts=5, kind="group_text", body=body)


def test_a_forged_or_altered_operation_does_not_verify() -> None:
    first = create()
    assert not groups.verify_op(first, PUBLIC["bob"])
    altered = first.model_copy(update={"members": ["bob", "dave"]})
    assert not groups.verify_op(altered, PUBLIC["alice"])
    with pytest.raises(RequestError) as exc:
        groups.check_op({}, altered, GROUP, PUBLIC["alice"])
    assert code_of(exc) == "bad_op_signature"


def test_the_hash_names_the_signed_bytes() -> None:
    first = create()
    assert groups.op_hash(first) == groups.op_hash(GroupOp.model_validate(first.model_dump()))
    assert groups.op_hash(first) != groups.op_hash(create(["bob", "dave"]))


# --- refusals of form (§19.2) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"members": [f"user{i}" for i in range(100)]}, "too_many_members"),
        ({"name": "x" * 65}, "name_too_long"),
        ({"name": "  "}, "bad_group_op"),
        ({"members": ["alice", "bob"]}, "bad_group_op"),
        ({"members": ["bob", "bob"]}, "bad_group_op"),
        ({"parents": ["A" * 43]}, "bad_group_op"),
        ({"picture": b64e(b"not an image")}, "bad_group_op"),
    ],
)
def test_a_create_out_of_form_is_refused_with_its_code(kwargs: dict[str, Any], code: str) -> None:
    args: dict[str, Any] = {"members": ["bob"], "name": "Board", **kwargs}
    parents = args.pop("parents", [])
    bad = op("alice", "create", parents, **args)
    with pytest.raises(RequestError) as exc:
        groups.check_form(bad)
    assert code_of(exc) == code


def test_ninety_nine_others_make_a_full_group_of_a_hundred() -> None:
    groups.check_form(op("alice", "create", [], members=[f"u{i:02}" for i in range(99)], name="A"))


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("add", {}),
        ("remove", {"members": ["alice"]}),
        ("rename", {"name": "x", "members": ["bob"]}),
        ("rename", {}),
        ("leave", {"name": "x"}),
        ("picture", {"name": "x"}),
    ],
)
def test_an_operation_with_the_wrong_fields_for_its_kind_is_refused(
    kind: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(RequestError) as exc:
        groups.check_form(op("alice", kind, [groups.op_hash(create())], **kwargs))
    assert code_of(exc) == "bad_group_op"


# --- refusals against the state (§19.4) ----------------------------------------------------


def test_a_change_by_a_member_who_is_not_an_admin_is_refused() -> None:
    held = by_hash(create())
    change = op("bob", "add", list(held), members=["dave"])
    with pytest.raises(RequestError) as exc:
        groups.check_op(held, change, GROUP, PUBLIC["bob"])
    assert (code_of(exc), exc.value.status) == ("not_admin", 403)


def test_a_change_by_a_stranger_is_refused() -> None:
    held = by_hash(create())
    with pytest.raises(RequestError) as exc:
        groups.check_op(held, op("dave", "leave", list(held)), GROUP, PUBLIC["dave"])
    assert code_of(exc) == "not_member"


def test_a_change_for_an_unknown_group_is_refused() -> None:
    change = op("alice", "rename", [groups.op_hash(create())], name="New")
    with pytest.raises(RequestError) as exc:
        groups.check_op({}, change, GROUP, PUBLIC["alice"])
    assert (code_of(exc), exc.value.status) == ("unknown_group", 404)


def test_an_add_past_a_hundred_members_is_refused() -> None:
    held = by_hash(create([f"u{i:02}" for i in range(98)]))
    groups.check_op(held, op("alice", "add", list(held), members=["zed"]), GROUP, PUBLIC["alice"])
    change = op("alice", "add", list(held), members=["zed", "zoe"])
    with pytest.raises(RequestError) as exc:
        groups.check_op(held, change, GROUP, PUBLIC["alice"])
    assert code_of(exc) == "too_many_members"


def test_a_second_create_of_a_known_group_is_refused() -> None:
    held = by_hash(create())
    with pytest.raises(RequestError) as exc:
        groups.check_op(held, create(["dave"]), GROUP, PUBLIC["alice"])
    assert code_of(exc) == "group_exists"


def test_an_operation_whose_parent_has_not_arrived_waits() -> None:
    first = create()
    rename = op("alice", "rename", [groups.op_hash(first)], name="New")
    later = op("alice", "rename", [groups.op_hash(rename)], ts=2, name="Newer")
    with pytest.raises(Unavailable):
        groups.check_op(by_hash(first), later, GROUP, PUBLIC["alice"])
    pending = groups.resolve(by_hash(first, later))
    assert pending is not None and pending.name == "Board"
    assert pending.pending == {groups.op_hash(later)}


def test_a_group_message_is_refused_from_a_non_member_and_after_leaving() -> None:
    first = create()
    state = groups.resolve(by_hash(first))
    groups.check_message(state, "bob", "alice")
    for membership, me, author, code in [
        (None, "bob", "alice", "unknown_group"),
        (state, "dave", "alice", "left_group"),
        (state, "bob", "dave", "not_member"),
    ]:
        with pytest.raises(RequestError) as exc:
            groups.check_message(membership, me, author)
        assert code_of(exc) == code


# --- the rule (§19.3) ----------------------------------------------------------------------


def test_a_replayed_add_does_not_bring_a_removed_member_back() -> None:
    first = create()
    add = op("alice", "add", [groups.op_hash(first)], members=["dave"])
    remove = op("alice", "remove", [groups.op_hash(add)], ts=2, members=["dave"])
    held = by_hash(first, add, remove)
    state = groups.resolve({**held, groups.op_hash(add): add})
    assert state is not None and "dave" not in state.members


def test_a_removed_admins_concurrent_changes_are_undone() -> None:
    first = create()
    promote = op("alice", "promote", [groups.op_hash(first)], members=["bob"])
    base = [groups.op_hash(promote)]
    removal = op("alice", "remove", base, ts=2, members=["bob"])
    add = op("bob", "add", base, ts=2, members=["dave"])
    rename = op("bob", "rename", [groups.op_hash(add)], ts=3, name="Bob's")
    state = groups.resolve(by_hash(first, promote, removal, add, rename))
    assert state is not None
    assert state.members == {"alice", "carol"}
    assert state.name == "Board"
    assert {groups.op_hash(add), groups.op_hash(rename)} <= state.void


def test_what_a_removed_member_did_before_its_removal_stays() -> None:
    first = create()
    promote = op("alice", "promote", [groups.op_hash(first)], members=["bob"])
    add = op("bob", "add", [groups.op_hash(promote)], ts=2, members=["dave"])
    removal = op("alice", "remove", [groups.op_hash(add)], ts=3, members=["bob"])
    state = groups.resolve(by_hash(first, promote, add, removal))
    assert state is not None and state.members == {"alice", "carol", "dave"}


def test_two_admins_removing_each_other_at_once_the_first_in_order_wins() -> None:
    first = create()
    promote = op("alice", "promote", [groups.op_hash(first)], members=["bob"])
    base = [groups.op_hash(promote)]
    by_alice = op("alice", "remove", base, ts=2, members=["bob"])
    by_bob = op("bob", "remove", base, ts=2, members=["alice"])
    state = groups.resolve(by_hash(first, promote, by_alice, by_bob))
    assert state is not None
    winner = min([by_alice, by_bob], key=lambda o: groups.hash_order(groups.op_hash(o)))
    assert state.members == {"alice", "bob", "carol"} - set(winner.members)


def test_when_the_last_admin_leaves_the_first_member_by_name_is_admin() -> None:
    first = create(["carol", "bob"])
    leave = op("alice", "leave", [groups.op_hash(first)])
    state = groups.resolve(by_hash(first, leave))
    assert state is not None
    assert state.members == {"bob", "carol"}
    assert state.admins == {"bob"}


def test_a_new_operation_follows_every_head() -> None:
    first = create()
    a = op("alice", "rename", [groups.op_hash(first)], name="A")
    b = op("alice", "picture", [groups.op_hash(first)], ts=2)
    state = groups.resolve(by_hash(first, a, b))
    assert state is not None
    assert set(state.heads) == {groups.op_hash(a), groups.op_hash(b)}


# --- convergence (§19.3): any delivery order of the same signed operations -----------------


def history(rng: random.Random, steps: int) -> list[GroupOp]:
    """Admins acting on views of their own (concurrently), now and then learning each other's
    operations: a random signed history with concurrent branches."""
    first = create(["bob", "carol", "dave"])
    views = {name: by_hash(first) for name in USERS[:4]}
    made = [first]
    for ts in range(2, steps + 2):
        actor = rng.choice(sorted(views))
        view = views[actor]
        if rng.random() < 0.3:  # learn what another admin did
            views[actor] = {**view, **views[rng.choice(sorted(views))]}
            continue
        state = groups.resolve(view)
        assert state is not None
        kind, members = rng.choice(
            [
                ("add", [rng.choice(USERS)]),
                ("remove", [rng.choice(USERS)]),
                ("promote", [rng.choice(USERS)]),
                ("rename", []),
                ("leave", []),
            ]
        )
        args: dict[str, Any] = {"members": members} if members else {}
        if kind == "rename":
            args["name"] = f"name {ts}"
        if actor in members or (kind == "leave" and actor not in state.members):
            continue
        new = op(actor, kind, list(state.heads), ts, **args)
        view[groups.op_hash(new)] = new
        made.append(new)
    return made


def deliver(ops: list[GroupOp], order: list[int]) -> dict[str, GroupOp]:
    """One receiver, the operations in `order`, each in a body with the group's create as a
    daemon sends it, checked as §19.4 says; a body whose parents are missing is tried again
    after the others (as a sender retries `unavailable`)."""
    held: dict[str, GroupOp] = {}
    queue = [[ops[0], ops[i]] if i else [ops[0]] for i in order]
    while queue:
        waiting = []
        for body in queue:
            try:
                held.update(groups.accept_ops(held, body, GROUP, PUBLIC))
            except Unavailable:
                waiting.append(body)
            except RequestError:
                continue  # refused for good
        if len(waiting) == len(queue):
            break
        queue = waiting
    return held


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), steps=st.integers(3, 14), data=st.data())
def test_any_delivery_order_gives_the_same_membership(
    seed: int, steps: int, data: st.DataObject
) -> None:
    ops = history(random.Random(seed), steps)
    first = data.draw(st.permutations(range(len(ops))))
    second = data.draw(st.permutations(range(len(ops))))
    held_one, held_two = deliver(ops, first), deliver(ops, second)
    assert set(held_one) == set(held_two)
    one, two = groups.resolve(held_one), groups.resolve(held_two)
    assert one == two
    # Everyone may have left or been removed (seed 91738336, 7 steps: all four leave): the group
    # is then empty, never gone, and an admin is always a member.
    assert one is not None and one.admins <= one.members
    assert len(one.members) <= groups.MAX_MEMBERS
