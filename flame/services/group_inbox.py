"""Receiving groups' inner kinds (PROTOCOL.md §19.4, §19.5), after the inbox's checks of every
envelope (§6.5): operations are checked in order and kept whole or not at all; a group message
is stored once, with its delivered receipt, or refused with nothing stored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from flame.core import group_files as file_rules
from flame.core import groups as rules
from flame.core.files import check_offer
from flame.core.group_models import GroupOp, GroupOpsBody, GroupTextBody
from flame.core.models import GroupFileBody
from flame.errors import BadEnvelope, RequestError, TooManyRequests, Unavailable
from flame.services.contacts import Contacts
from flame.services.events import GroupChanged, GroupMessageAdded
from flame.services.files.offers import Offers, incoming_transfer
from flame.services.groups import Groups
from flame.store import files as file_store
from flame.store import group_files as file_rows
from flame.store import groups as store
from flame.store.files import Transfer
from flame.store.group_files import GroupFile
from flame.store.groups import GroupMessage
from flame.store.messages import Incoming


@dataclass(eq=False)
class GroupInbox:
    groups: Groups
    contacts: Contacts
    offers: Offers
    # Set when a streamed group file arrives: its chunks are fetched (services/group_fetch.py).
    files_wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive_ops(self, items: list[Incoming]) -> list[bool | RequestError]:
        """Each envelope's operations: True new, False all held already, or the refusal."""
        outcomes: list[bool | RequestError] = []
        for item in items:
            body = item.inner.body
            assert isinstance(body, GroupOpsBody)  # core.models.KIND_BODIES
            try:
                outcomes.append(await self._receive_ops(body))
            except RequestError as exc:
                outcomes.append(exc)
        return outcomes

    async def _keys(self, ops: list[GroupOp]) -> dict[str, bytes]:
        """The pinned identity key of every author of `ops` (asking the directory, within the
        budget of PROTOCOL.md §4.3, about one not known yet)."""
        ctx = self.groups.ctx
        keys = {ctx.me: ctx.keys.identity().identity_key}
        for author in sorted({op.author for op in ops} - {ctx.me}):
            try:
                contact = await self.contacts.find(author, for_peer=True)
            except TooManyRequests as exc:
                raise Unavailable(exc.message) from exc
            if contact is not None and not contact.key_changed:
                keys[author] = contact.identity_key
        return keys

    async def _receive_ops(self, body: GroupOpsBody) -> bool:
        groups = self.groups
        ctx = groups.ctx
        keys = await self._keys(body.ops)
        async with groups.lock:
            held = await store.held_ops(ctx.db, body.group)
            new = rules.accept_ops(held, body.ops, body.group, keys)
            if not new:
                return False  # every one held already: a replay changes nothing (§19.4)
            every = {**held, **new}
            after = rules.resolve(every)
            if after is None:
                raise BadEnvelope("The operations bring no group.", code="bad_group_op")
            if not held and ctx.me not in after.members:
                raise RequestError(
                    "This user is not a member of that group.", code="not_member", status=403
                )
            fanout = await groups.fan_out(body.group, self._forwards(every, new))
            await store.save_ops(
                ctx.db, new, after, ctx.me, ctx.clock.now(), fanout,
                ctx.settings.daemon.message_ttl_s,
            )  # fmt: skip
        if fanout:
            ctx.wake.outbox.set()
        group = await store.get_group(ctx.db, body.group)
        if group is not None:
            ctx.events.publish(GroupChanged(await groups.card(group)))
        return True

    def _forwards(
        self, every: dict[str, GroupOp], new: dict[str, GroupOp]
    ) -> dict[str, list[GroupOp]]:
        """What this user must pass on (PROTOCOL.md §19.4): to each member it added, the new
        operations that do not follow that add (their authors may not have known of it)."""
        me = self.groups.ctx.me
        order = rules.log_order(every)
        create = every[order[0]]
        bodies: dict[str, list[GroupOp]] = {}
        for h in order:
            op = every[h]
            if op.author != me or op.op not in ("add", "create"):
                continue
            for member in op.members:  # in or out now: what it was told must be brought up to date
                missed = [
                    every[n]
                    for n in order
                    if n in new and not rules.follows(every, n, h) and n != h
                ]
                if missed:
                    bodies.setdefault(member, [create])
                    bodies[member] += [o for o in missed if o not in bodies[member]]
        return bodies

    async def receive_texts(self, items: list[Incoming]) -> list[bool | RequestError]:
        """Group messages: each checked (§19.5) and the good ones stored once, with their
        delivered receipts, in one transaction."""
        outcomes: list[bool | RequestError | None] = []
        accepted: list[tuple[int, Incoming, GroupMessage]] = []
        for item in items:
            body = item.inner.body
            assert isinstance(body, GroupTextBody)  # core.models.KIND_BODIES
            try:
                if not body.text.strip():
                    raise BadEnvelope("A group message is not empty.")
                await self._check_text(item.inner.from_, body.group, body.heads)
            except RequestError as exc:
                outcomes.append(exc)
                continue
            accepted.append(
                (len(outcomes), item, _message(item, body.group, body.id, body.seq, body.text))
            )
            outcomes.append(None)
        return await self._store(outcomes, accepted)

    async def receive_files(self, items: list[Incoming]) -> list[bool | RequestError]:
        """Files sent to the group (§19.7): checked as a group message and as an offer
        (§11.2, §11.6), the transfer recorded (an inline file written first), then the message
        stored as a group message's is; a streamed file's chunks are fetched afterwards."""
        ctx = self.groups.ctx
        outcomes: list[bool | RequestError | None] = []
        accepted: list[tuple[int, Incoming, GroupMessage]] = []
        fresh: list[tuple[Transfer, GroupFile]] = []
        for item in items:
            body = item.inner.body
            assert isinstance(body, GroupFileBody)  # core.models.KIND_BODIES
            author = item.inner.from_
            try:
                await self._check_text(author, body.group, body.heads)
                found = await self._file_of(item, body)
            except RequestError as exc:
                outcomes.append(exc)
                continue
            if found is not None:
                fresh.append(found)
            text = body.offer.caption or ""
            accepted.append(
                (len(outcomes), item, _message(item, body.group, body.id, body.seq, text))
            )
            outcomes.append(None)
        await file_rows.insert_incoming(ctx.db, fresh)
        files = {row.group_message: transfer for transfer, row in fresh}
        results = await self._store(outcomes, accepted, files)
        for transfer, _ in fresh:
            if transfer.state == "complete":  # inline: arrived whole
                self.offers.runtime.publish(transfer)
            else:
                self.files_wake.set()
        return results

    async def _file_of(
        self, item: Incoming, body: GroupFileBody
    ) -> tuple[Transfer, GroupFile] | None:
        """The transfer and group file a new offer makes (None: this envelope again)."""
        ctx = self.groups.ctx
        author = item.inner.from_
        offer = check_offer(body.offer, ctx.settings.files.max_file_bytes, hash_first=True)
        existing = await file_store.get(ctx.db, author, "in", offer.transfer_id)
        if existing is not None:
            if existing.message_id != item.key:
                raise BadEnvelope("This transfer id is already in use.", code="duplicate_transfer")
            return None
        held = await store.held_ops(ctx.db, body.group)
        recipients = file_rules.recipients(held, body.heads, author)
        if ctx.me not in recipients:
            raise RequestError(
                "This user was not a member when the file was sent.", code="left_group", status=410
            )
        caption = body.offer.caption or ""
        transfer = incoming_transfer(author, offer, caption, item.key, ctx.clock.now())
        if offer.data is not None:
            transfer = await self.offers.write_inline(transfer, offer.data)
        return transfer, GroupFile(author, offer.transfer_id, body.group, item.key, recipients)

    async def _store(
        self,
        outcomes: list[bool | RequestError | None],
        accepted: list[tuple[int, Incoming, GroupMessage]],
        files: dict[str, Transfer] | None = None,
    ) -> list[bool | RequestError]:
        """The accepted group messages stored once, with their delivered receipts, in one
        transaction; `outcomes` completed."""
        ctx = self.groups.ctx
        if accepted:
            receipts = self.groups.receipts.delivered([item for _, item, _ in accepted])
            stored = await store.store_incoming(
                ctx.db,
                [(item.key, message) for _, item, message in accepted],
                receipts,
                ctx.clock.now(),
            )
            for (index, _, _), kept in zip(accepted, stored, strict=True):
                outcomes[index] = kept is not None
                if kept is not None:
                    file = (files or {}).get(kept.id)
                    ctx.events.publish(GroupMessageAdded(kept, (), file))
            if receipts:
                self.groups.receipts.owing()
        return [outcome for outcome in outcomes if outcome is not None]

    async def _check_text(self, author: str, group_id: str, heads: list[str]) -> None:
        ctx = self.groups.ctx
        group = await store.get_group(ctx.db, group_id)
        held = await store.held_hashes(ctx.db, group_id, heads)
        if group is None or len(held) < len(set(heads)):
            # The operations that make the author's membership are on their way (§19.5).
            raise Unavailable("This daemon does not hold that group's membership yet.")
        if ctx.me not in group.members:
            raise RequestError(
                "This user is not in that group any more.", code="left_group", status=410
            )
        if author not in group.members:
            raise RequestError(
                f"{author} is not a member of this group.", code="not_member", status=403
            )


def _message(item: Incoming, group: str, message_id: str, seq: int, text: str) -> GroupMessage:
    return GroupMessage(
        0, "", group, message_id, "in", item.inner.from_, seq, text, item.inner.ts / 1000, None,
        item.inner.id,
    )  # fmt: skip
