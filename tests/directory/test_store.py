"""The directory's store, the same tests on both back ends (SQLite, PostgreSQL): invites spent
once, the change cursor, and the property that deltas add up to the listing; and SQLite's group
commit of presence reports."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flame.core.models import DirectoryEntry, Status
from flame.core.presence import REPUBLISH_S
from flame.directory.sqlite_store import SqliteStore
from flame.directory.store import DirectoryStore
from flame.errors import BadRequest, Conflict, Forbidden
from tests.directory.helpers import NOW, by_name, enroll, presence


async def test_an_invite_is_spent_once_and_only_by_its_username(
    directory_store: DirectoryStore,
) -> None:
    code = await directory_store.create_invite("alice", rekey=False, now=NOW, ttl_s=60)
    with pytest.raises(Forbidden) as wrong:
        await enroll(directory_store, "mallory", code)
    assert wrong.value.code == "bad_invite"
    await enroll(directory_store, "alice", code.lower())
    with pytest.raises(Forbidden) as again:
        await enroll(directory_store, "alice", code)
    assert again.value.code == "invite_used"
    late = await directory_store.create_invite("bob", rekey=False, now=NOW - 120, ttl_s=60)
    with pytest.raises(Forbidden) as expired:
        await enroll(directory_store, "bob", late)
    assert expired.value.code == "invite_expired"
    with pytest.raises(Conflict):
        await enroll(directory_store, "alice")  # open registration, but the name is taken
    rekey = await directory_store.create_invite("alice", rekey=True, now=NOW, ttl_s=60)
    new_alice = await enroll(directory_store, "alice", rekey)
    entry = await directory_store.entry("alice")
    assert entry is not None and entry.user == new_alice


async def test_two_enrollments_racing_for_one_invite_spend_it_once(
    directory_store: DirectoryStore,
) -> None:
    code = await directory_store.create_invite("carol", rekey=True, now=NOW, ttl_s=60)
    await enroll(directory_store, "carol")
    results = await asyncio.gather(
        *(enroll(directory_store, "carol", code) for _ in range(4)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, Forbidden)]
    assert len(refused) == 3 and all(r.code == "invite_used" for r in refused)


async def test_the_cursor_moves_only_when_the_listing_changes(
    directory_store: DirectoryStore,
) -> None:
    store = directory_store
    start = await store.head()
    await enroll(store, "alice")
    await enroll(store, "bob")
    after_enroll = await store.head()
    assert after_enroll == start + 2
    await store.put_presence(presence("alice"), NOW + 60)
    seen = await store.changes(after_enroll)
    assert [e.user.username for e in seen.entries] == ["alice"]
    assert seen.entries[0].presence == presence("alice")
    # The same report again, later: only its expiry moves; the listing keeps the published one.
    await store.put_presence(presence("alice", ts=NOW + 20), NOW + 80)
    assert await store.head() == seen.cursor
    assert (await store.changes(seen.cursor)).entries == []
    # A new status is a change; so is a record older than REPUBLISH_S.
    await store.put_presence(presence("alice", "away", ts=NOW + 40), NOW + 100)
    await store.put_presence(presence("alice", "away", ts=NOW + 40 + REPUBLISH_S), NOW + 200)
    changed = await store.changes(seen.cursor)
    assert changed.cursor == seen.cursor + 2
    only = changed.entries[0].presence
    assert only is not None and only.ts == NOW + 40 + REPUBLISH_S
    # Expiry drops the record as one change; a log-off of nobody changes nothing.
    assert await store.expire_presence(NOW + 199) == 0
    assert await store.expire_presence(NOW + 200) == 1
    gone = await store.changes(changed.cursor)
    assert [(e.user.username, e.presence) for e in gone.entries] == [("alice", None)]
    await store.delete_presence("alice")
    assert await store.head() == gone.cursor


async def test_a_cursor_from_the_future_is_refused(directory_store: DirectoryStore) -> None:
    await enroll(directory_store, "alice")
    head = await directory_store.head()
    with pytest.raises(BadRequest) as refused:
        await directory_store.changes(head + 1)
    assert refused.value.code == "bad_cursor"


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["enroll", "rekey", "report", "refresh", "away", "log_off", "expire", "sync"]
        ),
        st.integers(0, 4),
    ),
    max_size=30,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
async def test_deltas_applied_in_order_hold_exactly_the_listing(
    directory_store: DirectoryStore, ops: list[tuple[str, int]]
) -> None:
    """After any sequence of enrollments, rekeys, reports, log-offs and expiries, a reader that
    synced now and then by cursor holds exactly what the full listing says."""
    store = directory_store
    first = await store.changes(0)
    held: dict[str, DirectoryEntry] = by_name(first.entries)
    cursor = first.cursor
    clock = NOW + int(await store.head()) * 1000  # every example later than the last one's
    for op, n in ops:
        name = f"user{n}"
        clock += 7
        enrolled = await store.entry(name) is not None
        if op == "enroll" and not enrolled:
            await enroll(store, name, now=clock)
        elif op == "rekey" and enrolled:
            code = await store.create_invite(name, rekey=True, now=clock, ttl_s=60)
            await enroll(store, name, code, now=clock)
        elif op in ("report", "refresh", "away") and enrolled:
            status: Status = "away" if op == "away" else "online"
            await store.put_presence(presence(name, status, ts=clock), clock + 30)
        elif op == "log_off" and enrolled:
            await store.delete_presence(name)
        elif op == "expire":
            await store.expire_presence(clock)
        elif op == "sync":
            delta = await store.changes(cursor)
            held.update(by_name(delta.entries))
            cursor = delta.cursor
    delta = await store.changes(cursor)
    held.update(by_name(delta.entries))
    assert held == by_name((await store.listing()).entries)


async def test_sqlite_reports_that_arrive_together_share_one_durable_commit(
    tmp_path: Path,
) -> None:
    """The embedded back end commits every report before it answers, a keep-alive as its new
    expiry, and the reports that arrive during one commit in the next (PROTOCOL.md §5.3): one
    transaction, one head for the records it publishes, the expiries still there after a
    restart."""
    store = await SqliteStore.open(tmp_path)
    try:
        for name in ("alice", "bob", "carol"):
            await enroll(store, name)
            await store.put_presence(presence(name), NOW + 60)
        head, commits = await store.head(), store.reports.commits
        await asyncio.gather(
            store.put_presence(presence("alice", ts=NOW + 10), NOW + 500),  # keeps it alive
            store.put_presence(presence("bob", "away", ts=NOW + 10), NOW + 510),  # changes
            store.put_presence(presence("carol", "busy", ts=NOW + 10), NOW + 520),
            store.put_presence(presence("alice", ts=NOW + 20), NOW + 530),
        )
        assert store.reports.commits == commits + 1 and await store.head() == head + 1
        changed = await store.changes(head)
        assert [e.user.username for e in changed.entries] == ["bob", "carol"]
    finally:
        await store.close()
    again = await SqliteStore.open(tmp_path)
    try:
        assert again.expiry == {"alice": NOW + 530, "bob": NOW + 510, "carol": NOW + 520}
        assert await again.expire_presence(NOW + 529) == 2  # bob and carol; alice lives on
        assert set(again.published) == {"alice"}
    finally:
        await again.close()
