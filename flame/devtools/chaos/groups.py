"""The chaos harness's group mode (PROTOCOL.md §19): one group of every daemon, made before the
faults start; a share of the planned messages goes to it instead of to one person. At the end,
every accepted group message is at every other member exactly once, each author's group seqs are
exactly 1..n at each member, and the author sees every member's copy delivered. Read through the
UI APIs only (docs/UI_API.md, "Groups")."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flame.devtools.chaos.peers import Chaos
from flame.devtools.chaos.sending import GROUP_PREFIX, Planned, Sending
from flame.devtools.ui import ToolFailed

POLL_S = 0.5
EXAMPLES = 10
PAGES_MAX = 1000


def is_group(recipient: str) -> bool:
    return recipient.startswith(GROUP_PREFIX)


def to_group(plan: list[Planned], rng: random.Random, share: float, group_id: str) -> int:
    """Send a `share` of the plan (chosen by `rng`) to the group; returns how many."""
    chosen = [item for item in plan if rng.random() < share]
    for item in chosen:
        item.recipient = GROUP_PREFIX + group_id
    return len(chosen)


async def make_group(chaos: Chaos, timeout_s: float) -> str:
    """The first daemon makes a group of all of them; returns once every one holds it."""
    names = list(chaos.peers)
    creator = chaos.peers[names[0]].ui
    assert creator is not None
    status, reply = await creator.post(
        "/ui/api/groups", {"name": "Chaos", "members": names[1:], "picture": None}
    )
    if status != 201:
        raise ToolFailed(f"the group was not made: {status} {reply}")
    group_id = str(reply["group"]["id"])
    deadline = time.monotonic() + timeout_s
    for name in names[1:]:
        ui = chaos.peers[name].ui
        assert ui is not None
        while (await ui.get(f"/ui/api/groups/{group_id}"))[0] != 200:
            if time.monotonic() > deadline:
                raise ToolFailed(f"{name} did not hold the group within {timeout_s:.0f} s")
            await asyncio.sleep(0.1)
    return group_id


async def group_rows(chaos: Chaos, group_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every daemon's messages of the group, page by page, oldest first."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, peer in chaos.peers.items():
        assert peer.ui is not None
        found: list[dict[str, Any]] = []
        before: str | None = None
        for _ in range(PAGES_MAX):
            params = {"limit": "200", **({"before": before} if before else {})}
            reply = await peer.ui.get_json(f"/ui/api/groups/{group_id}/messages", params)
            found = list(reply["messages"]) + found
            before = reply["next_before"]
            if before is None:
                break
        rows[name] = found
    return rows


@dataclass
class GroupVerdict:
    counts: dict[str, int]
    examples: dict[str, list[str]]

    @property
    def settled(self) -> bool:
        c = self.counts
        return not (c["lost"] or c["without_receipt"])


def check_group(
    rows: dict[str, list[dict[str, Any]]], sending: Sending, receipts: bool
) -> GroupVerdict:
    examples: dict[str, list[str]] = {}

    def example(kind: str, text: str) -> None:
        if len(examples.setdefault(kind, [])) < EXAMPLES:
            examples[kind].append(text)

    accepted = [a for a in sending.accepted if is_group(a.recipient)]
    incoming = {
        name: Counter((m["author"], m["text"]) for m in found if m["direction"] == "in")
        for name, found in rows.items()
    }
    outgoing = {
        name: {m["text"]: m for m in found if m["direction"] == "out"}
        for name, found in rows.items()
    }
    lost = duplicated = without_receipt = 0
    for a in accepted:
        for member, held in incoming.items():
            if member == a.sender:
                continue
            times = held[(a.sender, a.text)]
            if times == 0:
                lost += 1
                example("lost", f"#{a.index} {a.sender}'s {a.text[:24]!r} not at {member}")
            duplicated += max(0, times - 1)
        home = outgoing[a.sender].get(a.text)
        done = home is not None and home["delivered"] == home["recipients"] == len(rows) - 1
        if receipts and not done:
            without_receipt += 1
            state = "missing" if home is None else f"{home['delivered']}/{home['recipients']}"
            example("without_receipt", f"#{a.index} {a.sender}: delivered {state}")
    out_of_order = 0
    for member, found in rows.items():
        for author in rows:
            if author == member:
                continue
            sent = sorted(m["seq"] for m in outgoing[author].values())
            got = [m["seq"] for m in found if m["direction"] == "in" and m["author"] == author]
            if sorted(got) != sent or sent != list(range(1, len(sent) + 1)):
                out_of_order += 1
                example("sequence", f"{author} -> {member}: sent {len(sent)}, held {len(got)}")
    counts = {
        "group_accepted": len(accepted),
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "without_receipt": without_receipt,
    }
    return GroupVerdict(counts, examples)


async def wait_group_quiet(
    chaos: Chaos,
    group_id: str,
    sending: Sending,
    receipts: bool,
    timeout_s: float,
    progress: Callable[[str], None],
) -> tuple[bool, GroupVerdict]:
    """Until every accepted group message is everywhere (and acknowledged), or `timeout_s`."""
    started = time.monotonic()
    while True:
        verdict = check_group(await group_rows(chaos, group_id), sending, receipts)
        if verdict.settled:
            return True, verdict
        if time.monotonic() - started > timeout_s:
            progress(f"group not quiet after {timeout_s:.0f} s: {verdict.counts}")
            return False, verdict
        await asyncio.sleep(POLL_S)
