"""The directory's key log as this daemon checks it (PROTOCOL.md §18.4): each new head must be
signed by the pinned log key and extend the last one taken (a consistency proof), and the entries
it adds must hash to it; this user's own entries must be this daemon's keys; the heads peers show
must agree with ours (§18.5). Keys the directory serves are pinned only once the log holds them.

Whatever fails is refused (the last good head is kept) and raises an alarm: stored, published to
the UI, and logged as an error. The directory's word is never needed to raise one: a fork is two
heads it signed that disagree.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flame.clock import wait_event
from flame.core import keylog
from flame.core.encoding import b64d, b64e
from flame.core.keylog import Frontier, KeyLogEntry, KeyLogHead
from flame.core.models import DirectoryEntry
from flame.core.transport import Endpoint
from flame.errors import BadRequest, FlameError, LogRefused
from flame.net import keylog_client
from flame.net.peer_client import PeerClient
from flame.services.context import Context
from flame.services.events import KeyLogAlarmRaised
from flame.store import keylog as keylog_store
from flame.store.keylog import Alarm, LoggedKey

log = logging.getLogger("flame.keylog")


def utc_text(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


PENDING_MAX = 1000  # peers' heads waiting to be compared
# The log is read at least every this many directory_sync_s (5 minutes by default), even when no
# answer shows it grew: a daemon whose keys the directory replaced gets no answers to its other
# requests, signed with keys the directory no longer holds (PROTOCOL.md §18.3, §18.4).
RECHECK_SYNCS = 15
CHECKED_MAX = 10_000


@dataclass(eq=False)
class KeyLog:
    ctx: Context
    client: PeerClient
    directory: Endpoint
    log_key: bytes | None = field(default=None, init=False)  # None: the directory keeps no log
    head: KeyLogHead | None = field(default=None, init=False)
    frontier: Frontier = field(default_factory=Frontier, init=False)
    history: dict[str, list[LoggedKey]] = field(default_factory=dict, init=False)
    state: str = field(default="unknown", init=False)  # "unknown" | "ok" | "none"
    # Heads that answers and requests carried, by whose they were (PROTOCOL.md §18.5).
    pending: dict[str, str] = field(default_factory=dict, init=False)
    checked: dict[str, tuple[str, int]] = field(default_factory=dict, init=False)
    hinted: bool = field(default=False, init=False)  # the directory's answers show a new head
    refused: str | None = field(default=None, init=False)  # the last head refused, as a header
    wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    loaded: bool = field(default=False, init=False)
    read_at: float = field(default=float("-inf"), init=False)  # the last read of the log
    # Called after every read that passed: keys that waited for the log may be pinned now.
    listeners: list[Callable[[], None]] = field(default_factory=list, init=False)

    async def load(self) -> None:
        """What the database holds; once, before anything reads the log."""
        async with self.load_lock:
            if self.loaded:
                return
            db = self.ctx.db
            self.log_key = await keylog_store.load_log_key(db)
            stored = await keylog_store.load_head(db)
            if stored is not None:
                self.head, self.frontier = stored
                self.state = "ok"
            for entry in await keylog_store.load_entries(db):
                self.history.setdefault(entry.username, []).append(entry)
            self.loaded = True

    # --- what other services ask ------------------------------------------------------------

    def header(self) -> str | None:
        """The head this daemon holds, as requests to peers carry it."""
        return None if self.head is None else keylog.head_header(self.head)

    def latest(self, username: str) -> LoggedKey | None:
        entries = self.history.get(username)
        return entries[-1] if entries else None

    def admits(self, username: str, identity_key: bytes, x25519_key: bytes) -> bool:
        """The directory serves these keys for `username`: they may be pinned only if they are the
        latest the log holds for it. With no log at the directory, anything (as before)."""
        if self.state == "none":
            return True
        latest = self.latest(username)
        return latest is not None and (latest.identity_key, latest.x25519_key) == (
            identity_key,
            x25519_key,
        )

    async def vet(self, entries: list[DirectoryEntry]) -> None:
        """Before `entries` from the directory are applied: if any carries keys the log does not
        hold yet (a new user, a rekey, or this daemon's first listing), read the log first."""
        await self.load()
        if self.state == "none" or (
            self.head is not None and all(self._is_latest(e) for e in entries)
        ):
            return
        try:
            await self.sync_once()
        except FlameError as exc:
            log.info("the key log could not be read: %s", exc.message)
            self.hinted = True  # `run` reads it again every directory_sync_s until it can
            self.wake.set()

    def holds(self, entry: DirectoryEntry) -> bool:
        """The log holds `entry`'s keys as the latest for its user (they may be pinned)."""
        return self.state == "none" or self._is_latest(entry)

    def _is_latest(self, entry: DirectoryEntry) -> bool:
        latest = self.latest(entry.user.username)
        return latest is not None and (
            b64e(latest.identity_key),
            b64e(latest.x25519_key),
        ) == (entry.user.identity_key, entry.user.x25519_key)

    def observe(self, source: str, text: str) -> None:
        """A head that an answer (or a peer's request) carried; compared later, by `run`."""
        if source == "directory":
            if text not in (self.header(), self.refused):
                self.hinted = True
                self.wake.set()
            return
        size = -1 if self.head is None else self.head.size
        if self.checked.get(source) != (text, size) and (
            source in self.pending or len(self.pending) < PENDING_MAX
        ):
            self.pending[source] = text
            self.wake.set()

    async def alarms(self) -> list[Alarm]:
        return await keylog_store.alarms(self.ctx.db)

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the log at start, whenever the directory's answers show a new head, and at least
        every RECHECK_SYNCS rounds; compare the heads peers show. What could not be checked is
        tried again every `directory_sync_s`."""
        await self.load()
        interval = self.ctx.settings.daemon.directory_sync_s
        while True:
            self.wake.clear()
            due = self.ctx.clock.now() - self.read_at >= RECHECK_SYNCS * interval
            try:
                if self.hinted or due or (self.head is None and self.state != "none"):
                    await self.sync_once()  # clears `hinted` once it has read the log
                await self.audit_once()
            except FlameError as exc:
                log.info("key log check incomplete: %s", exc.message)
            await wait_event(self.wake, interval)

    async def sync_once(self) -> None:
        """Take the directory's current head, if it passes every check of §18.4."""
        await self.load()
        async with self.lock:
            self.read_at = self.ctx.clock.now()
            key = await self._pinned_key()
            if key is None:
                return
            served = await keylog_client.head(self.client, self.directory)
            taken = True
            try:
                await self._take(key, served)
            except LogRefused as exc:
                await self._refused(exc, served)
                taken = False
            self.hinted = False  # the answers of this very read carried the head it just read
        for listener in self.listeners if taken else ():  # unlocked: they may read it again
            listener()

    async def _pinned_key(self) -> bytes | None:
        """The key log's public key: pinned at `flame init`, or (an account made before the log)
        the one the directory's hello names, over the pinned TLS, at the first sync."""
        if self.log_key is None:
            hello = await keylog_client.directory_hello(self.client, self.directory)
            if hello.key_log is None:
                self.state = "none"
                return None
            try:
                key = b64d(hello.key_log, length=32, what="key_log")
            except BadRequest:
                self.state = "none"
                return None
            await keylog_store.save_log_key(self.ctx.db, key)
            self.log_key = key
            log.info("%s pinned the directory's key log key %s", self.ctx.me, hello.key_log)
        return self.log_key

    async def _take(self, key: bytes, served: KeyLogHead) -> None:
        if not keylog.verify_head(served, key):
            raise LogRefused(
                "The directory's key log head is not signed by its pinned key.",
                kind="bad_signature",
            )
        known = self.head
        if known is not None:
            if keylog.same_tree(known, served):
                self.state = "ok"
                return
            proof = []
            if served.size > known.size:
                proof = await keylog_client.consistency(
                    self.client, self.directory, known.size, served.size
                )
            keylog.check_extends(known, served, proof)
        entries = await self._entries_to(served.size)
        frontier = keylog.check_entries(self.frontier, entries, served)
        keylog.check_kinds(entries, set(self.history))
        logged = [self._logged(self.frontier.size + i, e) for i, e in enumerate(entries)]
        await keylog_store.append(self.ctx.db, served, frontier, logged)
        self.head, self.frontier, self.state = served, frontier, "ok"
        for entry in logged:
            self.history.setdefault(entry.username, []).append(entry)
        await self._check_own(served)

    async def _entries_to(self, size: int) -> list[KeyLogEntry]:
        entries: list[KeyLogEntry] = []
        while self.frontier.size + len(entries) < size:
            start = self.frontier.size + len(entries)
            page = await keylog_client.entries(self.client, self.directory, start)
            if page.start != start or not page.entries:
                raise LogRefused(
                    f"The directory served no key log entries from {start} on, though its head "
                    f"counts {size}.",
                    kind="entries_mismatch",
                )
            entries.extend(page.entries[: size - start])
        return entries

    @staticmethod
    def _logged(position: int, entry: KeyLogEntry) -> LoggedKey:
        try:
            identity_key = b64d(entry.identity_key, length=32, what="identity_key")
            x25519_key = b64d(entry.x25519_key, length=32, what="x25519_key")
        except BadRequest as exc:
            raise LogRefused(
                f"Key log entry {position} holds a key that does not decode: {exc.message}.",
                kind="bad_entry",
            ) from None
        return LoggedKey(position, entry.username, identity_key, x25519_key, entry.ts, entry.kind)

    async def _check_own(self, head: KeyLogHead) -> None:
        """Every entry for this user after the one of this daemon's keys is someone else's."""
        account = self.ctx.keys.account
        mine = (account.identity_key, account.x25519_key)
        own = self.history.get(self.ctx.me, [])
        enrolled = next((e.position for e in own if (e.identity_key, e.x25519_key) == mine), None)
        if enrolled is None:
            await self._alarm(
                "not_logged",
                "not_logged",
                f"The directory's key log does not hold your keys ({head.size} entries): it may "
                "be giving others keys for you that you did not make. Tell your directory's "
                "administrator.",
                {"head": head.model_dump()},
            )
            return
        for entry in own:
            if entry.position > enrolled and (entry.identity_key, entry.x25519_key) != mine:
                await self._alarm(
                    "rekeyed",
                    f"rekeyed:{entry.position}",
                    f"The directory gave your account {self.ctx.me!r} new keys (key log entry "
                    f"{entry.position}, on {utc_text(entry.ts)}). If you did not set up Flame "
                    "again on another device, someone else may receive messages meant for you: "
                    "tell your directory's administrator.",
                    {"head": head.model_dump(), "position": entry.position},
                )

    async def _refused(self, exc: LogRefused, served: KeyLogHead) -> None:
        self.refused = keylog.head_header(served)
        known = None if self.head is None else self.head.model_dump()
        await self._alarm(
            exc.kind,
            f"{exc.kind}:{served.size}:{served.root}",
            f"{exc.message} This daemon keeps the key log it checked before and pins no new key "
            "from the directory until it is fixed. Tell your directory's administrator.",
            {"known": known, "served": served.model_dump()},
        )

    async def _alarm(self, kind: str, key: str, message: str, evidence: dict[str, object]) -> None:
        now = self.ctx.clock.now()
        alarm = await keylog_store.add_alarm(
            self.ctx.db, key, kind, message, now, json.dumps(evidence, sort_keys=True)
        )
        if alarm is not None:
            log.error("key log alarm (%s): %s", kind, message)
            self.ctx.events.publish(KeyLogAlarmRaised(alarm))

    # --- the heads peers show (PROTOCOL.md §18.5) ----------------------------------------------

    async def audit_once(self) -> None:
        """Compare every head peers showed since the last round with ours."""
        if self.log_key is None or self.head is None:
            return
        pending, self.pending = self.pending, {}
        for source, text in pending.items():
            try:
                theirs = keylog.parse_head_header(text)
            except ValueError:
                log.info("%s sent a key log head that does not parse; ignored", source)
                continue
            if not keylog.verify_head(theirs, self.log_key):
                log.info("%s sent a key log head the directory did not sign; ignored", source)
                continue
            try:
                await self._compare(source, theirs)
            except FlameError as exc:  # the directory did not give the proof: try again later
                self.pending.setdefault(source, text)
                log.info("the key log head of %s is not checked yet: %s", source, exc.message)
                continue
            if len(self.checked) >= CHECKED_MAX:
                self.checked.clear()
            assert self.head is not None
            self.checked[source] = (text, self.head.size)

    async def _compare(self, source: str, theirs: KeyLogHead) -> None:
        assert self.head is not None
        if theirs.size > self.head.size:
            await self.sync_once()  # the directory may have grown since: look first
        mine = self.head
        if keylog.same_tree(mine, theirs):
            return
        first, second = sorted((mine, theirs), key=lambda h: h.size)
        proof: list[bytes] = []
        if first.size < second.size:
            proof = await keylog_client.consistency(
                self.client, self.directory, first.size, second.size
            )
        roots = keylog.head_root(first), keylog.head_root(second)
        if not keylog.verify_consistency(first.size, second.size, *roots, proof):
            await self._alarm(
                "fork",
                f"fork:{theirs.size}:{theirs.root}",
                f"The directory showed {source} a key log that contradicts the one it showed you "
                f"(two heads it signed, of {first.size} and {second.size} entries, that no single "
                "log has): it may be giving different people different keys. Compare safety "
                "numbers in person, and tell your directory's administrator.",
                {"mine": mine.model_dump(), "theirs": theirs.model_dump(), "from": source},
            )
