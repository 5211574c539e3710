"""Fetching the chunks of files sent to groups (PROTOCOL.md §19.7): for every incoming group
file still receiving, ask its holders in the order of core/group_files.sources (the recipients
before this user, nearest first, then the author) and write what they send through the same
verification as streamed one-to-one files (services/files/chunks.py). The chunks are sealed
under the file key, so a member's copy is as good as the author's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field

from flame.core.encoding import b64e
from flame.core.files import TAG_BYTES
from flame.core.group_files import STALL_S, UNREACHABLE_S, sources
from flame.errors import FlameError, PeerRefused, PeerUnreachable, TransferRefused
from flame.net.chunk_fetch import open_chunks
from flame.net.peer_client import PeerClient
from flame.services.blocks import Blocks
from flame.services.contacts import Contacts
from flame.services.context import Context
from flame.services.files.chunks import Chunks
from flame.services.files.runtime import FileRuntime, Key
from flame.store import files as file_store
from flame.store import group_files as store
from flame.store.files import Transfer
from flame.store.group_files import GroupFile

log = logging.getLogger("flame.transfers")
LOOK_AGAIN_S = 5.0  # the loop looks for new or stalled group files at least this often
RETRY_MAX_S = 30.0
# Our own refusals of what a holder sent: that holder is left aside for a while.
HOLDER_FAULTS = {"bad_chunk", "bad_request", "past_end", "wrong_offset"}


@dataclass(eq=False)
class GroupFetch:
    ctx: Context
    runtime: FileRuntime
    chunks: Chunks
    client: PeerClient
    blocks: Blocks
    contacts: Contacts
    wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    fetches: dict[Key, asyncio.Task[None]] = field(default_factory=dict, init=False)

    async def fetch_group_files(self) -> None:
        """The loop: one fetch per receiving group file; woken when an offer arrives."""
        try:
            while True:
                self.wake.clear()
                for row, transfer in await store.fetchable(self.ctx.db):
                    if transfer.key not in self.fetches:
                        task = asyncio.create_task(
                            self.fetch(row, transfer), name=f"fetch:{transfer.transfer_id}"
                        )
                        self.fetches[transfer.key] = task
                        task.add_done_callback(functools.partial(self._fetched, transfer.key))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LOOK_AGAIN_S):
                        await self.wake.wait()
        finally:
            tasks = list(self.fetches.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _fetched(self, key: Key, task: asyncio.Task[None]) -> None:
        if self.fetches.get(key) is task:
            del self.fetches[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("fetching %s crashed", key[2], exc_info=task.exception())

    async def fetch(self, row: GroupFile, transfer: Transfer) -> None:
        """Until the file is complete or closed: from the first holder that sends something,
        then from the nearest again; a holder that has nothing new is left aside for STALL_S,
        one that cannot be reached for UNREACHABLE_S; when none answered, wait and try again."""
        stalled: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        wait_s = 1.0
        while True:
            current = await file_store.get(self.ctx.db, *transfer.key)
            if current is None or current.state != "receiving":
                return
            progressed = False
            for holder in sources(row.recipients, self.ctx.me, row.author):
                if stalled.get(holder, 0.0) > loop.time() or await self.blocks.is_blocked(holder):
                    continue
                aside = STALL_S
                try:
                    got = await self._fetch_from(holder, row, current)
                except TransferRefused as exc:  # ours: what the holder sent, or the file closed
                    if exc.code not in HOLDER_FAULTS:
                        return
                    got = 0
                except PeerRefused as exc:
                    log.info("%s has nothing of %s for us: %s", holder, row.transfer_id, exc)
                    got = 0
                except (PeerUnreachable, FlameError) as exc:  # no answer, or no address now
                    log.info("cannot fetch %s from %s: %s", row.transfer_id, holder, exc)
                    got, aside = 0, UNREACHABLE_S
                if got > 0:
                    progressed = True
                    break
                stalled[holder] = loop.time() + aside
            if progressed:
                wait_s = 1.0
                continue
            soonest = min(stalled.values(), default=loop.time() + wait_s) - loop.time()
            await asyncio.sleep(max(0.2, min(wait_s, soonest)))
            wait_s = min(RETRY_MAX_S, wait_s * 2)

    async def _fetch_from(self, holder: str, row: GroupFile, transfer: Transfer) -> int:
        """One request to one holder: the chunks it sends from the first one not held,
        verified and written; returns how many bytes came."""
        contact = await self.contacts.find(holder)  # a member never written to: the directory
        endpoint = None if contact is None or contact.key_changed else contact.endpoint
        if endpoint is None:
            raise PeerUnreachable(f"{holder}'s address is not known (or their key changed).")
        layout = transfer.layout
        start = layout.held_chunks(transfer.held_bytes)
        token = b64e(transfer.upload_token)
        async with open_chunks(
            self.client, endpoint, row.author, row.transfer_id, token, start
        ) as response:
            length = response.content_length
            if length is None or length < TAG_BYTES:
                raise PeerRefused(
                    f"{holder} sent no chunks.", status=response.status, code="bad_request"
                )
            before = transfer.held_bytes
            status = await self.chunks.take_chunks(transfer, start, length, response.content)
        return int(status["received_bytes"]) - before
