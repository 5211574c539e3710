"""Groups from this user's side (PROTOCOL.md §19): creating one, changing its membership, writing
to it, reading it back. Every group envelope is an ordinary one-to-one envelope to one member,
sealed like any other (services/sessions.py) and queued in the outbox with what caused it, in one
transaction. Receiving is services/group_inbox.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from flame.core import groups as rules
from flame.core.envelope import new_message_id
from flame.core.group_models import (
    GROUP_COPY_KINDS,
    GroupOp,
    GroupOpsBody,
    GroupTextBody,
    OpKind,
)
from flame.core.models import FileOfferBody, GroupFileBody, Wire
from flame.core.search import parse_query
from flame.errors import BadRequest, Conflict, NotFound, RequestError, TooLarge, Unavailable
from flame.services.blocks import Blocks
from flame.services.contacts import Contacts
from flame.services.context import Context
from flame.services.events import GroupChanged, GroupMessageAdded
from flame.services.features import PeerFeatures
from flame.services.receipts import Receipts
from flame.services.sealing import new_inner
from flame.services.sessions import Sessions
from flame.store import files as file_store
from flame.store import groups as store
from flame.store import outbox as outbox_store
from flame.store.contacts import Contact
from flame.store.group_files import GroupFile
from flame.store.groups import Fanout, Group, GroupCard, GroupMessage
from flame.store.messages import message_key

log = logging.getLogger("flame.groups")
OPS_KEY = "group_ops:"  # outbox key of an envelope of operations: it has no `messages` row


@dataclass(frozen=True, slots=True)
class PendingText:
    group_id: str
    text: str
    done: asyncio.Future[GroupMessage]
    file: FileOfferBody | None = None  # a group file (PROTOCOL.md §19.7): `text` is its caption


@dataclass(eq=False)
class Groups:
    ctx: Context
    contacts: Contacts
    sessions: Sessions
    blocks: Blocks
    receipts: Receipts
    features: PeerFeatures
    # One change of group state at a time: the membership row is computed from every held
    # operation, and a group message takes the next seq.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    outgoing: asyncio.Queue[PendingText] = field(default_factory=asyncio.Queue, init=False)

    # --- membership -----------------------------------------------------------------------

    async def get(self, group_id: str) -> Group:
        group = await store.get_group(self.ctx.db, group_id)
        if group is None:
            raise NotFound("There is no such group.", code="unknown_group")
        return group

    async def create(self, name: str, members: Sequence[str], picture: str | None) -> Group:
        """A new group of this user and `members` (each a contact this user may write to)."""
        me = self.ctx.me
        others = sorted(set(members) - {me})
        for member in others:
            await self.contacts.recipient(member)  # unknown, key changed, blocked: refused
        group_id = rules.new_group_id()
        op = self._sign(group_id, "create", [], members=others, name=name, picture=picture)
        async with self.lock:
            return await self._commit(group_id, {}, op)

    async def change(
        self,
        group_id: str,
        kind: OpKind,
        members: Sequence[str] = (),
        name: str | None = None,
        picture: str | None = None,
    ) -> Group:
        """An operation of this user on a group: add, remove, promote, rename, picture, leave."""
        if kind == "add":
            for member in members:
                await self.contacts.recipient(member)
        async with self.lock:
            held = await store.held_ops(self.ctx.db, group_id)
            state = rules.resolve(held)
            if state is None:
                raise NotFound("There is no such group.", code="unknown_group")
            if self.ctx.me not in state.members:
                raise Conflict("You are not in this group any more.", code="left_group")
            op = self._sign(
                group_id, kind, state.heads, members=sorted(members), name=name, picture=picture
            )
            return await self._commit(group_id, held, op)

    def _sign(
        self,
        group_id: str,
        kind: OpKind,
        parents: Sequence[str],
        *,
        members: Sequence[str] = (),
        name: str | None = None,
        picture: str | None = None,
    ) -> GroupOp:
        ctx = self.ctx
        op = rules.make_op(
            ctx.keys.identity(),
            ctx.me,
            group_id,
            kind,
            parents,
            int(ctx.clock.now() * 1000),
            members=members,
            name=name,
            picture=picture,
        )
        rules.check_form(op)  # the same words a receiver would answer with
        return op

    async def _commit(self, group_id: str, held: dict[str, GroupOp], op: GroupOp) -> Group:
        """Check a new operation of this user as a receiver would, store it with the envelopes
        that spread it (PROTOCOL.md §19.4), in one transaction; the lock is held."""
        ctx = self.ctx
        rules.check_op(held, op, group_id, ctx.keys.identity().identity_key)
        h = rules.op_hash(op)
        after = rules.resolve({**held, h: op})
        assert after is not None
        before = rules.resolve(held)
        everyone = set(after.members) | (set(op.members) if op.op == "remove" else set())
        if op.op == "leave" and before is not None:
            everyone |= before.members  # the others learn that this user left
        full = ordered({**held, h: op})
        create = full[0]
        bodies: dict[str, list[GroupOp]] = {}
        for member in sorted(everyone - {ctx.me}):
            is_new = op.op in ("create", "add") and member in op.members
            bodies[member] = full if is_new else ([create, op] if op is not create else [op])
        fanout = await self.fan_out(group_id, bodies)
        await store.save_ops(
            ctx.db,
            {h: op},
            after,
            ctx.me,
            ctx.clock.now(),
            fanout,
            ctx.settings.daemon.message_ttl_s,
        )
        ctx.wake.outbox.set()
        group = await self.get(group_id)
        ctx.events.publish(GroupChanged(await self.card(group)))
        return group

    async def card(self, group: Group) -> GroupCard:
        db = self.ctx.db
        unread = await store.unread_count(db, group.id)
        return GroupCard(group, self.ctx.me, unread, await store.last_message(db, group.id))

    async def cards(self) -> list[GroupCard]:
        return [await self.card(group) for group in await store.list_groups(self.ctx.db)]

    async def fan_out(
        self, group_id: str, bodies: dict[str, list[GroupOp]]
    ) -> list[outbox_store.Queued]:
        """Operations sealed for each member named (one envelope each)."""
        sealed = await self.seal_each(
            {m: GroupOpsBody(group=group_id, ops=ops) for m, ops in bodies.items()}, "group_ops"
        )
        return [item.queued for item in sealed if item.queued is not None]

    async def seal_each(self, bodies: dict[str, Wire], kind: str) -> list[Fanout]:
        """One envelope per member (PROTOCOL.md §19): sealed as any one-to-one message, under
        the member's session in version 2. A member this user blocked gets nothing (§12.4). A
        member whose key change is pending gets a message's copy unsealed and held (the copy's
        details say so) until this user accepts the new key (`release_held`); operations are
        sealed as to any contact. If any other member cannot be sealed to now (no session yet
        and version 1 refused, the directory down), nothing is sent to anyone: the error says
        to try again, as for one-to-one."""
        ctx = self.ctx
        found: dict[str, Contact] = {}
        for member in bodies:
            if await self.blocks.is_blocked(member):
                continue
            contact = await self.contacts.find(member)
            if contact is None:
                raise Unavailable(f"{member} cannot be reached yet; try again.")
            found[member] = contact
        needed = ("groups", "files") if kind == "group_file" else ("groups",)
        lacking = await self.features.lacking(list(found.values()), needed)
        out = []
        for member, contact in found.items():
            body = bodies[member]
            if member in lacking:  # its daemon could not read it (PROTOCOL.md §9, §19)
                if kind in GROUP_COPY_KINDS:
                    out.append(Fanout(new_inner(ctx, member, kind, body), None, lacking[member]))
                continue
            if contact.key_changed and kind in GROUP_COPY_KINDS:
                out.append(Fanout(new_inner(ctx, member, kind, body), None))
                continue
            await self.sessions.ensure(contact)
            inner = new_inner(ctx, member, kind, body)
            sealed = await self.sessions.seal(contact, inner)
            key = OPS_KEY + inner.id if kind == "group_ops" else message_key(ctx.me, inner.id)
            queued = outbox_store.Queued(key, kind, member, sealed.envelope, sealed.ratchet)
            out.append(Fanout(inner, queued))
        return out

    # --- messages ---------------------------------------------------------------------------

    async def send_text(self, group_id: str, text: str) -> GroupMessage:
        """A message to the members of the membership this user holds now, and no one else
        (PROTOCOL.md §19.5): one copy per member, stored with the message in one transaction
        (with whatever other group messages are waiting: `write_outgoing`)."""
        ctx = self.ctx
        ctx.keys.identity()
        if not text.strip():
            raise BadRequest("The message is empty.", code="empty_message")
        limit = ctx.settings.daemon.max_message_chars
        if len(text) > limit:
            raise TooLarge(
                f"The message is longer than {limit} characters.", code="message_too_long"
            )
        await self.member_of(group_id)
        done: asyncio.Future[GroupMessage] = asyncio.get_running_loop().create_future()
        self.outgoing.put_nowait(PendingText(group_id, text, done))
        return await done

    async def send_file(self, group_id: str, offer: FileOfferBody) -> GroupMessage:
        """A file's offer to the members of the membership this user holds now (PROTOCOL.md
        §19.7), stored and fanned out as a group message is."""
        await self.member_of(group_id)
        done: asyncio.Future[GroupMessage] = asyncio.get_running_loop().create_future()
        self.outgoing.put_nowait(PendingText(group_id, offer.caption or "", done, offer))
        return await done

    async def member_of(self, group_id: str) -> Group:
        group = await self.get(group_id)
        if not group.is_member:
            raise Conflict("You are not in this group any more.", code="left_group")
        return group

    async def write_outgoing(self) -> None:
        """The writer loop (tasks.py): every group message waiting at this moment is sealed
        for each member and stored in one transaction, as services/messaging.py does for
        one-to-one messages. Each sender is answered once its message is durable."""
        batch_max = self.ctx.settings.daemon.batch_max
        while True:
            batch = [await self.outgoing.get()]
            while len(batch) < batch_max and not self.outgoing.empty():
                batch.append(self.outgoing.get_nowait())
            try:
                async with self.lock:
                    written = await self._write_texts(batch)
            except asyncio.CancelledError:
                for item in batch:
                    item.done.cancel()
                raise
            except Exception as exc:
                log.exception("could not store %d outgoing group messages", len(batch))
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
                continue
            self.ctx.wake.outbox.set()
            for item, message in written:
                held = (await store.copies_of(self.ctx.db, [message.id]))[message.id]
                file = (
                    None
                    if item.file is None
                    else await file_store.get(
                        self.ctx.db, self.ctx.me, "out", item.file.transfer_id
                    )
                )
                self.ctx.events.publish(GroupMessageAdded(message, tuple(held), file))
                if not item.done.done():
                    item.done.set_result(message)

    async def _write_texts(
        self, batch: list[PendingText]
    ) -> list[tuple[PendingText, GroupMessage]]:
        """Seal each message for its group's members (one that cannot be sealed fails alone,
        PROTOCOL.md §19.5: all or none of its copies) and store the rest; the lock is held."""
        ctx = self.ctx
        groups: dict[str, Group] = {}
        seqs: dict[str, int] = {}
        kept: list[tuple[PendingText, store.OutgoingText]] = []
        for item in batch:
            try:
                group = groups.get(item.group_id) or await self.member_of(item.group_id)
                groups[item.group_id] = group
                seq = seqs.get(item.group_id, group.next_seq)
                message_id = new_message_id()
                heads = list(group.heads)
                others = sorted((m for m in group.members if m != ctx.me), key=str.encode)
                body: Wire
                file = None
                if item.file is None:
                    kind = "group_text"
                    body = GroupTextBody(
                        group=group.id, id=message_id, seq=seq, heads=heads, text=item.text
                    )
                else:
                    kind = "group_file"
                    body = GroupFileBody(
                        group=group.id, id=message_id, seq=seq, heads=heads, offer=item.file
                    )
                    key = message_key(ctx.me, message_id)
                    file = GroupFile(ctx.me, item.file.transfer_id, group.id, key, tuple(others))
                copies = await self.seal_each(dict.fromkeys(others, body), kind)
            except RequestError as exc:
                item.done.set_exception(exc)
                continue
            seqs[item.group_id] = seq + 1
            outgoing = store.OutgoingText(group.id, message_id, seq, item.text, copies, file)
            kept.append((item, outgoing))
        if not kept:
            return []
        stored = await store.store_outgoing(
            ctx.db, ctx.me, [o for _, o in kept], ctx.clock.now(), ctx.settings.daemon.message_ttl_s
        )
        return [(item, message) for (item, _), message in zip(kept, stored, strict=True)]

    async def page(
        self, group_id: str, before: tuple[float, int, int] | None, limit: int
    ) -> tuple[list[GroupMessage], dict[str, list[store.Copy]]]:
        await self.get(group_id)
        messages = await store.list_messages(self.ctx.db, group_id, before=before, limit=limit)
        copies = await store.copies_of(
            self.ctx.db, [m.id for m in messages if m.direction == "out"]
        )
        return messages, copies

    async def copies(self, key: str) -> list[store.Copy]:
        return (await store.copies_of(self.ctx.db, [key]))[key]

    async def search(self, text: str, limit: int) -> list[GroupMessage]:
        """Group messages matching the search box's words (PROTOCOL.md §12.3), newest first."""
        query = parse_query(text)
        if query.is_empty:
            return []
        return await store.search(self.ctx.db, query.match(), limit)

    async def mark_read(self, group_id: str, up_to: str | None) -> None:
        """The user saw the group up to the message `up_to` (or all): read receipts to the
        authors, if allowed, one per author, for the envelopes the messages came in."""
        ctx = self.ctx
        await self.get(group_id)
        up_to_rowid = await store.rowid_of(ctx.db, group_id, up_to)
        by_author = await store.mark_read(ctx.db, group_id, up_to_rowid)
        if not by_author or not await self.receipts.read_enabled():
            return
        queued = await self.receipts.build("read", by_author)
        async with ctx.db.transaction() as conn:
            await outbox_store.enqueue(
                conn, queued, ctx.clock.now(), ctx.settings.daemon.message_ttl_s
            )
        ctx.wake.outbox.set()


def ordered(ops: dict[str, GroupOp]) -> list[GroupOp]:
    """Every held operation, parents first (PROTOCOL.md §19.3 rule 2)."""
    return [ops[h] for h in rules.log_order(ops)]
