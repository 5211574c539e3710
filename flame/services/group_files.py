"""Files sent to groups (PROTOCOL.md §19.7), from this user's side and as a holder: the browser's
upload becomes one offer fanned out to every member (the bytes sealed once, under one file key),
and a member or the author serves the chunks it holds to the members the file was sent to.

Fetching chunks from holders is services/group_fetch.py; receiving the offers
services/group_inbox.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from aiohttp import StreamReader

from flame.core.encoding import b64d, b64e
from flame.core.files import TAG_BYTES, TRANSFER_ID_BYTES
from flame.core.group_files import HOLD_WAIT_S, answer_end
from flame.core.states import OPEN_STATES
from flame.errors import BadRequest, Conflict, FlameError, NotFound, TransferRefused
from flame.net.peer_client import TOKEN_HEADER
from flame.services.files.atrest import read_sealed
from flame.services.files.chunks import status_of
from flame.services.files.disk import run_blocking, stored_path
from flame.services.files.runtime import FileRuntime
from flame.services.files.uploads import Uploads
from flame.services.groups import Groups
from flame.store import files as file_store
from flame.store import group_files as store
from flame.store.files import Transfer
from flame.store.group_files import GroupFile
from flame.store.groups import GroupMessage

log = logging.getLogger("flame.groups")
HOLD_POLL_S = 0.2  # how often a holder looks whether it holds more, while a fetcher waits
SERVABLE_STATES = ("receiving", "complete")


@dataclass(eq=False)
class GroupFiles:
    groups: Groups
    uploads: Uploads
    runtime: FileRuntime

    # --- this user's files ----------------------------------------------------------------

    async def begin(
        self, group_id: str, name: str, size: int, declared_type: str, caption: str
    ) -> Transfer:
        """Record a file the browser is about to upload to a group it is a member of."""
        await self.groups.member_of(group_id)
        me = self.groups.ctx.me
        return await self.uploads.begin_upload(
            me, name, size, declared_type, caption, to_group=True
        )

    async def take(
        self, group_id: str, transfer_id: str, length: int | None, content: StreamReader
    ) -> tuple[GroupMessage, Transfer]:
        """The browser's bytes, sealed once under the file key, then the offer to every member
        (all or none, as a group message, §19.5). The author's copy is complete from then on:
        it serves its chunks to the members (§19.7)."""
        ctx = self.groups.ctx
        transfer = await self.own(transfer_id)
        if transfer.state != "uploading":
            raise Conflict(f"This file is {transfer.state}, not waiting for its bytes.")
        await self.groups.member_of(group_id)
        digest, head = await self.uploads.receive_upload(transfer, length, content)
        offer = await self.uploads.offer_of(transfer, digest, head)
        try:
            message = await self.groups.send_file(group_id, offer)
        except FlameError as exc:
            await self.runtime.close(transfer.key, "failed", exc.message)
            raise
        await file_store.set_message(ctx.db, transfer.key, message.id)
        if not await file_store.close(
            ctx.db, transfer.key, "complete", None, ctx.clock.now(), only_from=("waiting",)
        ):  # cancelled while the offer was being queued: take it back
            await self._tell_cancelled(message.id)
        sent = await self.own(transfer_id)
        self.runtime.publish(sent)
        return message, sent

    async def own(self, transfer_id: str) -> Transfer:
        transfer = await file_store.get(self.groups.ctx.db, self.groups.ctx.me, "out", transfer_id)
        if transfer is None:
            raise NotFound("There is no such file in this group.", code="unknown_file")
        return transfer

    async def find(self, group_id: str, author: str, transfer_id: str) -> Transfer:
        """A file of this group, this user's or a member's."""
        ctx = self.groups.ctx
        row = await store.get(ctx.db, author, transfer_id)
        transfer = None
        if row is not None and row.group_id == group_id:
            transfer = await file_store.get(ctx.db, *store.transfer_key(ctx.me, row))
        if transfer is None:
            raise NotFound("There is no such file in this group.", code="unknown_file")
        return transfer

    async def files_of(self, keys: list[str]) -> dict[str, Transfer]:
        """The file each of these group messages carries, by group message id."""
        return await store.by_messages(self.groups.ctx.db, self.groups.ctx.me, keys)

    async def cancel(self, group_id: str, transfer_id: str) -> Transfer:
        """The author takes a file back: its copy is deleted, nothing more is served, and every
        member it was sent to is told (`file_cancel`, §11.5), which deletes what they hold."""
        transfer = await self.find(group_id, self.groups.ctx.me, transfer_id)
        if not await self.runtime.close(
            transfer.key, "cancelled", "You cancelled it.", only_from=(*OPEN_STATES, "complete")
        ):
            raise Conflict(f"This file is already {transfer.state}.", code="transfer_closed")
        if transfer.message_id is not None:
            await self._tell_cancelled(transfer.message_id)
        return await self.own(transfer_id)

    async def _tell_cancelled(self, group_message: str) -> None:
        ctx = self.groups.ctx
        row = await store.by_message(ctx.db, group_message)
        if row is None:
            return
        for member in row.recipients:
            await self.uploads.send_control(member, "file_cancel", row.transfer_id)

    async def decline(self, group_id: str, author: str, transfer_id: str) -> Transfer:
        """A member refuses a group file: what arrived is deleted and it serves nothing more.
        The author is not told: the others still fetch it."""
        transfer = await self.find(group_id, author, transfer_id)
        if transfer.direction != "in" or not await self.runtime.close(
            transfer.key, "declined", "You declined it."
        ):
            raise Conflict(f"This file is already {transfer.state}.", code="transfer_closed")
        return await self.find(group_id, author, transfer_id)

    # --- serving other members (§19.7) -------------------------------------------------------

    async def holding(
        self, caller: str, author: str, transfer_id: str, token: str | None
    ) -> tuple[GroupFile, Transfer]:
        """The group file whose chunks `caller` asks for, in the order of §19.7's checks."""
        ctx = self.groups.ctx
        ctx.keys.identity()
        try:
            b64d(transfer_id, length=TRANSFER_ID_BYTES, what="transfer id")
            row = await store.get(ctx.db, author, transfer_id)
        except BadRequest:
            row = None
        transfer = (
            None if row is None else await file_store.get(ctx.db, *store.transfer_key(ctx.me, row))
        )
        if row is None or transfer is None:
            raise TransferRefused(
                "This daemon holds no such group file.", status=404, code="unknown_transfer"
            )
        group = await store_group(self.groups, row.group_id)
        if caller not in row.recipients or caller not in group:
            raise TransferRefused("This file was not sent to you.", status=403, code="not_member")
        if token is None or not hmac.compare_digest(
            token.encode(), b64e(transfer.upload_token).encode()
        ):
            raise TransferRefused(
                f"The {TOKEN_HEADER} header is missing or wrong.", status=403, code="bad_token"
            )
        check_servable(transfer)
        return row, transfer

    async def held_range(self, transfer: Transfer, raw_start: str) -> tuple[Transfer, int, int]:
        """The chunks from `start` that this daemon holds (at most ANSWER_MAX_BYTES of them),
        waiting up to HOLD_WAIT_S for the first one: (the transfer as it is now, start, end)."""
        if not (raw_start.isascii() and raw_start.isdigit()) or len(raw_start) > 12:
            raise BadRequest("'start' must be a chunk index (digits).")
        start, layout = int(raw_start), transfer.layout
        if start >= layout.count:
            raise TransferRefused(
                f"The file has {layout.count} chunks.", status=400, code="past_end"
            )
        loop = asyncio.get_running_loop()
        until = loop.time() + HOLD_WAIT_S
        while True:
            held = (
                layout.count
                if transfer.state == "complete"
                else (layout.held_chunks(transfer.held_bytes))
            )
            if held > start:
                return transfer, start, answer_end(start, held, layout.chunk_bytes + TAG_BYTES)
            if loop.time() >= until:
                raise TransferRefused(
                    f"This daemon holds chunks up to {held} only; ask another holder.",
                    status=409,
                    code="not_held",
                    **status_of(transfer),
                )
            await asyncio.sleep(HOLD_POLL_S)
            transfer = await file_store.get(self.groups.ctx.db, *transfer.key) or transfer
            check_servable(transfer)

    async def sealed_chunks(
        self, transfer: Transfer, start: int, end: int
    ) -> AsyncGenerator[bytes, None]:
        """The stored sealed chunks start..end-1, as they travel, at most files.send_rate_bytes_s;
        counted as served."""
        settings, layout = self.groups.ctx.settings, transfer.layout
        fd = None
        for partial in (transfer.state == "receiving", transfer.state != "receiving"):
            with contextlib.suppress(FileNotFoundError):  # completed (renamed) meanwhile
                fd = await run_blocking(
                    os.open, stored_path(settings, transfer, partial=partial), os.O_RDONLY
                )
                break
        if fd is None:
            raise TransferRefused("This daemon's copy is gone.", status=410, code="transfer_closed")
        served = 0
        rate = settings.files.send_rate_bytes_s  # what this daemon sends, as for pushes
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            for index in range(start, end):
                sealed = await run_blocking(read_sealed, fd, layout, index)
                yield sealed
                served += layout.plain_len(index)
                if rate > 0 and (ahead := began + served / rate - loop.time()) > 0:
                    await asyncio.sleep(ahead)
        finally:
            os.close(fd)
            await store.add_served(self.groups.ctx.db, transfer.key, served)


async def store_group(groups: Groups, group_id: str) -> frozenset[str]:
    """The members of the group as this daemon holds it now (none: not held)."""
    try:
        group = await groups.get(group_id)
    except NotFound:
        return frozenset()
    return frozenset(group.members)


def check_servable(transfer: Transfer) -> None:
    if transfer.state not in SERVABLE_STATES:
        raise TransferRefused(
            f"This file is {transfer.state}: nothing of it is served.",
            status=410,
            code="transfer_closed",
            **status_of(transfer),
        )
