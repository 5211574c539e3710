"""The chaos harness's checks, once everything is up and quiet: every accepted message delivered
exactly once, in per-sender order (the seqs of each pair exactly 1..n at the recipient), from the
right author, with its receipt back at the sender, under the protocol version the cluster speaks
(PROTOCOL.md §14.2); and each conversation listed in order. What the daemons hold is read through
their UI APIs only (docs/UI_API.md), never from their databases.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from flame.devtools.chaos.peers import Chaos, Peer
from flame.devtools.chaos.sending import Accepted, Sending
from flame.devtools.ui import PAGE, ToolFailed

RECEIPT_STATES = ("delivered", "read")
POLL_S = 0.5
EXAMPLES = 10  # problem examples kept in the JSON per kind
SNAPSHOT_PAGES = 10_000  # of one conversation, at most
WANTED_VERSION = 2  # every daemon of the harness speaks versions 1 and 2: each text goes as 2


def candidate_keys(author: str, message_id: str) -> tuple[str, ...]:
    """The UI's id of a message, and the key the store may use for it (author:envelope id)."""
    if message_id.startswith(f"{author}:"):
        return (message_id, message_id.removeprefix(f"{author}:"))
    return (message_id, f"{author}:{message_id}")


Row = dict[str, Any]  # a Message as the UI API shows it (docs/UI_API.md)


@dataclass
class Snapshot:
    """Every daemon's messages, as each one's UI API lists its conversations with the others."""

    rows: dict[str, list[Row]]

    @classmethod
    async def take(cls, chaos: Chaos) -> Snapshot:
        rows = {}
        for name, peer in chaos.peers.items():
            others = [other for other in chaos.peers if other != name]
            for attempt in range(5):
                try:
                    rows[name] = await listed(peer, others)
                    break
                except (ToolFailed, aiohttp.ClientError, TimeoutError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)
        return cls(rows)

    def texts(self, name: str) -> list[Row]:
        return [r for r in self.rows[name] if r["kind"] == "text"]

    def incoming(self, name: str) -> dict[str, Row]:
        return {r["id"]: r for r in self.texts(name) if r["direction"] == "in"}

    def outgoing(self, name: str) -> dict[str, Row]:
        return {r["id"]: r for r in self.texts(name) if r["direction"] == "out"}


async def listed(peer: Peer, others: list[str]) -> list[Row]:
    """Every message of `peer`'s conversations with `others`, read without marking any read (the
    snapshot must not change what it looks at)."""
    assert peer.ui is not None
    found: list[Row] = []
    for other in others:
        found += await peer.ui.conversation(other, max_pages=SNAPSHOT_PAGES)
    return found


def find(rows: dict[str, Row], author: str, message_id: str) -> Row | None:
    for key in candidate_keys(author, message_id):
        if key in rows:
            return rows[key]
    return None


def settled(snapshot: Snapshot, accepted: list[Accepted], receipts: bool) -> tuple[bool, str]:
    """Whether every accepted message is at its recipient and acknowledged at its sender, and no
    outgoing message anywhere is still on its way."""
    incoming = {name: snapshot.incoming(name) for name in snapshot.rows}
    outgoing = {name: snapshot.outgoing(name) for name in snapshot.rows}
    missing = sum(1 for a in accepted if find(incoming[a.recipient], a.sender, a.id) is None)
    wanted = RECEIPT_STATES if receipts else ("sent", *RECEIPT_STATES)
    unacknowledged = 0
    for a in accepted:
        row = find(outgoing[a.sender], a.sender, a.id)
        if row is None or row["state"] not in wanted:
            unacknowledged += 1
    settled_states = ("failed", *wanted)
    in_transit = sum(
        1 for rows in outgoing.values() for r in rows.values() if r["state"] not in settled_states
    )
    done = missing == 0 and unacknowledged == 0 and in_transit == 0
    return done, (
        f"{missing} not yet at their recipient, {unacknowledged} without "
        f"{'a receipt' if receipts else 'an acknowledgement'} at their sender; {in_transit} "
        f"outgoing messages in all not yet {'/'.join(wanted)} or failed"
    )


async def wait_quiet(
    chaos: Chaos,
    accepted: list[Accepted],
    receipts: bool,
    timeout_s: float,
    progress: Callable[[str], None],
) -> tuple[bool, float]:
    started = time.monotonic()
    last_report = started
    while True:
        done, state = settled(await Snapshot.take(chaos), accepted, receipts)
        now = time.monotonic()
        if done:
            return True, now - started
        if now - started > timeout_s:
            progress(f"not quiet after {timeout_s:.0f} s: {state}")
            return False, now - started
        if now - last_report > 5.0:
            last_report = now
            progress(f"waiting: {state}")
        await asyncio.sleep(POLL_S)


@dataclass
class Verdict:
    counts: dict[str, Any]
    delivery_s: list[float]
    examples: dict[str, list[str]]


def check(snapshot: Snapshot, sending: Sending, receipts: bool) -> Verdict:
    """Every accepted message: at its recipient exactly once, with its sender's seq, from the
    right author; the seqs of each pair exactly 1..n at the recipient; the receipt back home."""
    examples: dict[str, list[str]] = defaultdict(list)

    def example(kind: str, text: str) -> None:
        if len(examples[kind]) < EXAMPLES:
            examples[kind].append(text)

    names = list(snapshot.rows)
    incoming = {name: snapshot.incoming(name) for name in names}
    outgoing = {name: snapshot.outgoing(name) for name in names}
    lost = duplicated = out_of_order = without_receipt = wrong_author = 0
    states: Counter[str] = Counter()
    versions: Counter[str] = Counter()  # what the recipients say each text arrived under
    delivery_s: list[float] = []
    accepted_ids: set[tuple[str, str]] = set()
    for a in sending.accepted:
        accepted_ids.update((a.recipient, key) for key in candidate_keys(a.sender, a.id))
        row = find(incoming[a.recipient], a.sender, a.id)
        if row is None:
            lost += 1
            example("lost", f"#{a.index} {a.sender}->{a.recipient} id {a.id} seq {a.seq}")
        else:
            if row["author"] != a.sender or row["peer"] != a.sender:
                wrong_author += 1
                example("wrong_author", f"{a.id}: author {row['author']}, peer {row['peer']}")
            if int(row["seq"]) != a.seq:
                out_of_order += 1
                example("out_of_order", f"{a.id}: seq {row['seq']} at recipient, {a.seq} sent")
            if row["received_at"] is not None:
                delivery_s.append(max(0.0, float(row["received_at"]) - a.sent_at))
            version = str(row.get("protocol_version"))
            versions[version] += 1
            if version != str(WANTED_VERSION):
                example("version", f"{a.id} {a.sender}->{a.recipient}: version {version}")
        home = find(outgoing[a.sender], a.sender, a.id)
        state = "missing" if home is None else str(home["state"])
        states[state] += 1
        if state not in RECEIPT_STATES:
            without_receipt += 1
            why = f" ({home['error']})" if home is not None and home.get("error") else ""
            example("without_receipt", f"{a.id} {a.sender}->{a.recipient}: {state}{why}")

    # Each text at most once at its recipient (a resent copy under a new id would be a duplicate).
    extra_stored = unexplained = 0
    accepted_texts = {a.text for a in sending.accepted}
    pairs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for name in names:
        by_text: Counter[str] = Counter()
        for key, row in incoming[name].items():
            text = str(row["text"])
            by_text[text] += 1
            pairs[(row["author"], name)].append(int(row["seq"]))
            if (name, key) not in accepted_ids:
                if text in sending.maybe_stored and text not in accepted_texts:
                    extra_stored += 1  # a POST cut by a kill, committed all the same: fine
                else:
                    unexplained += 1
                    example("unexplained", f"at {name}: {key} {text[:40]!r}")
        for text, count in by_text.items():
            if count > 1:
                duplicated += count - 1
                example("duplicated", f"at {name}: {count} times {text[:40]!r}")

    # Per pair, the recipient holds seqs 1..n exactly (no gap, no repeat), n = what the sender
    # sent that recipient (every outgoing message counts, acknowledged to this harness or not).
    gaps = 0
    for sender in names:
        for recipient in names:
            if sender == recipient:
                continue
            sent = sorted(
                int(r["seq"]) for r in outgoing[sender].values() if r["peer"] == recipient
            )
            got = sorted(pairs.get((sender, recipient), []))
            if got != sent or sent != list(range(1, len(sent) + 1)):
                gaps += 1
                example(
                    "sequence",
                    f"{sender}->{recipient}: sender has {len(sent)} (max "
                    f"{sent[-1] if sent else 0}), recipient {len(got)} distinct "
                    f"{len(set(got))} (max {got[-1] if got else 0})",
                )
    delivered = len(sending.accepted) - lost
    counts: dict[str, Any] = {
        "accepted": len(sending.accepted),
        "delivered": delivered,
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order + gaps,
        "without_receipt": without_receipt,
        "wrong_author": wrong_author,
        "unexplained": unexplained,
        "stored_without_answer": extra_stored,
        "sender_states": dict(sorted(states.items())),
        "sequence_problems": gaps,
        "by_version": dict(sorted(versions.items())),
        "not_version_2": delivered - versions[str(WANTED_VERSION)],
    }
    if not receipts:
        counts["without_receipt_not_required"] = without_receipt
    return Verdict(counts, delivery_s, dict(examples))


async def check_ui_order(chaos: Chaos, snapshot: Snapshot, examples: dict[str, list[str]]) -> int:
    """Each recipient's UI lists each sender's messages in seq order, all of them, walking back
    page by page from the newest as the page does. Returns the number of conversations listed
    out of order or incompletely."""
    bad = 0
    for name, peer in chaos.peers.items():
        assert peer.ui is not None
        incoming = snapshot.incoming(name)
        for other in chaos.peers:
            if other == name:
                continue
            expected = sorted(int(r["seq"]) for r in incoming.values() if r["author"] == other)
            if not expected:
                continue
            pages = (len(snapshot.rows[name]) // PAGE) + 5
            messages = await peer.ui.conversation(other, max_pages=pages)
            listed = [
                int(m["seq"]) for m in messages if m["direction"] == "in" and m["author"] == other
            ]
            if listed != expected:
                bad += 1
                inversions = sum(1 for a, b in itertools.pairwise(listed) if b <= a)
                if len(examples.setdefault("ui_order", [])) < EXAMPLES:
                    examples["ui_order"].append(
                        f"{name} lists {other}'s {len(listed)} messages with {inversions} "
                        f"inversions (its snapshot holds {len(expected)})"
                    )
    return bad
