"""The chaos harness's sending: the planned messages at a steady rate through the senders' UI APIs,
each refused or cut attempt tried again as a new message, and a record of what was accepted and
what may have been stored without an answer (a POST cut by a kill)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from flame.devtools.chaos.peers import REQUEST_TIMEOUT_S, SEND_CONCURRENCY, Chaos
from flame.devtools.ui import ToolFailed

MAX_ATTEMPTS = 40  # per planned message; each is a fresh POST (a new message)
SEND_TAIL_S = 120.0  # after the planned sends, how long the deferred ones may still wait
RETRY_AFTER_S = 0.5  # a POST refused because its sender was down is tried again after this
TEXT_CHARS = 80
GROUP_PREFIX = (
    "group:"  # a recipient "group:<id>": the message goes to that group (chaos/groups.py)
)


def pick_pairs(rng: random.Random, names: tuple[str, ...], count: int) -> list[tuple[str, str]]:
    """`count` (sender, recipient) pairs, two different names each."""
    pairs = []
    for _ in range(count):
        sender, recipient = rng.sample(names, 2)
        pairs.append((sender, recipient))
    return pairs


@dataclass
class Planned:
    index: int
    sender: str
    recipient: str
    attempts: int = 0
    not_before: float = 0.0

    def text(self) -> str:
        head = f"chaos {self.index:06d}.{self.attempts} {self.sender}>{self.recipient} "
        return head + "x" * max(0, TEXT_CHARS - len(head))


@dataclass
class Accepted:
    index: int
    sender: str
    recipient: str
    text: str
    id: str
    seq: int
    sent_at: float  # the message's sent_at (the sender daemon's clock at commit)
    accepted_at: float  # this process's clock when the 201 arrived


@dataclass
class Sending:
    """What the sender did: every accepted message, and what became of the other attempts."""

    accepted: list[Accepted] = field(default_factory=list)
    deferred: list[Planned] = field(default_factory=list)
    maybe_stored: set[str] = field(default_factory=set)  # texts of POSTs whose fate is unknown
    refused_down: int = 0  # attempts made (or skipped) while the sender was down
    no_session: int = 0  # refused: no session with the recipient yet, the directory down
    relogins: int = 0
    errors: list[str] = field(default_factory=list)  # unexpected answers from a running daemon
    skipped: list[Planned] = field(default_factory=list)


async def post_message(chaos: Chaos, item: Planned, sending: Sending) -> None:
    """One attempt: POST through the sender's UI API. Not accepted: deferred for a new try."""
    peer = chaos.peers[item.sender]
    item.attempts += 1
    text = item.text()
    ui = peer.ui
    if not peer.up or ui is None:
        _defer(item, sending, down=True)
        return
    try:
        path = f"/ui/api/conversations/{item.recipient}/messages"
        if item.recipient.startswith(GROUP_PREFIX):
            path = f"/ui/api/groups/{item.recipient.removeprefix(GROUP_PREFIX)}/messages"
        async with ui.session.post(path, json={"text": text}) as response:
            status = response.status
            body = await response.text()
    except aiohttp.ClientConnectorError:
        _defer(item, sending, down=True)  # never connected: nothing was stored
        return
    except (aiohttp.ClientError, TimeoutError, RuntimeError):
        sending.maybe_stored.add(text)  # cut mid-request: perhaps stored, perhaps not
        _defer(item, sending, down=True)
        return
    if status == 201:
        message = json.loads(body)["message"]
        sending.accepted.append(
            Accepted(
                item.index,
                item.sender,
                item.recipient,
                text,
                str(message["id"]),
                int(message["seq"]),
                float(message["sent_at"]),
                time.time(),
            )
        )
        return
    if status == 401 and peer.up:
        # The daemon was restarted under us and forgot the session: log in again.
        async with peer.lock:
            if peer.up and peer.ui is ui:
                sending.relogins += 1
                try:
                    await peer.node.login()
                except ToolFailed as exc:
                    sending.errors.append(exc.message)
        _defer(item, sending, down=True)
        return
    if status == 503 and '"no_session"' in body:
        # No session yet and the directory down (version 2 only): nothing was stored.
        sending.no_session += 1
        _defer(item, sending, down=False)
        return
    sending.maybe_stored.add(text)
    if len(sending.errors) < 1000:
        sending.errors.append(f"{item.sender} -> {item.recipient}: {status} {body[:200]}")
    _defer(item, sending, down=False)


def _defer(item: Planned, sending: Sending, *, down: bool) -> None:
    if down:
        sending.refused_down += 1
    if item.attempts >= MAX_ATTEMPTS:
        sending.skipped.append(item)
        return
    item.not_before = time.monotonic() + RETRY_AFTER_S
    sending.deferred.append(item)


def _ready_retry(chaos: Chaos, sending: Sending) -> Planned | None:
    now = time.monotonic()
    for position, item in enumerate(sending.deferred):
        if item.not_before <= now and chaos.peers[item.sender].up:
            return sending.deferred.pop(position)
    return None


async def send_all(
    chaos: Chaos,
    plan: list[Planned],
    sending: Sending,
    duration_s: float,
    quiet: Callable[[], bool],
    failed: Callable[[], bool],
    progress: Callable[[str], None],
) -> None:
    """The plan at a steady rate over `duration_s`, one retry beside each planned send; then the
    deferred ones, once `quiet()` says the faults are over. Bounded: each message has at most
    MAX_ATTEMPTS attempts, and what is still deferred SEND_TAIL_S after the planned sends is
    skipped. Stops early when `failed()` (the faults could not be healed)."""
    interval = duration_s / max(1, len(plan))
    gate = asyncio.Semaphore(SEND_CONCURRENCY)
    in_flight: set[asyncio.Task[None]] = set()

    async def attempt(item: Planned) -> None:
        async with gate:
            await post_message(chaos, item, sending)

    def launch(item: Planned) -> None:
        task = asyncio.create_task(attempt(item))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    started = time.monotonic()
    reported = 0
    try:
        for tick, item in enumerate(plan):
            await asyncio.sleep(max(0.0, started + tick * interval - time.monotonic()))
            if failed():
                return
            launch(item)
            retry = _ready_retry(chaos, sending)
            if retry is not None:
                launch(retry)
            if tick + 1 >= reported + max(1, len(plan) // 10):
                reported = tick + 1
                progress(
                    f"sent {tick + 1}/{len(plan)} planned, {len(sending.accepted)} accepted, "
                    f"{len(sending.deferred)} waiting for their sender"
                )
        deadline = time.monotonic() + SEND_TAIL_S
        while (in_flight or sending.deferred) and not failed():
            if time.monotonic() > deadline:
                sending.skipped.extend(sending.deferred)
                sending.deferred.clear()
                break
            if quiet() or not in_flight:
                retry = _ready_retry(chaos, sending)
                if retry is not None:
                    launch(retry)
                    await asyncio.sleep(interval)
                    continue
            await asyncio.sleep(0.05)
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=REQUEST_TIMEOUT_S + 5)
    finally:
        for task in list(in_flight):
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
