"""Conversations from this user's side: sending (message + sealed envelope + outbox entry in one
transaction, then the delivery loop is woken) and reading the history back.

Sends that arrive together share one transaction (group commit, docs/ARCHITECTURE.md): a burst
costs one fsync per group, not one per message. Each sender is answered once its message is
durable. Receiving is services/inbox.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from flame.core.actions import Ref
from flame.core.models import SEQUENCED_KINDS, Inner, TextBody, Wire
from flame.errors import BadRequest, NotFound, RequestError, TooLarge
from flame.services.contacts import Contacts
from flame.services.context import Context
from flame.services.events import MessageAdded
from flame.services.sealing import new_inner
from flame.services.sessions import SealedEnvelope, Sessions
from flame.services.status import StatusTracker
from flame.store import actions as action_store
from flame.store import files as file_store
from flame.store import messages as message_store
from flame.store.contacts import Contact
from flame.store.files import Transfer
from flame.store.messages import Effect, Message

log = logging.getLogger("flame.messaging")

Cursor = tuple[float, int, int]  # (sent_at, seq, rowid) of the oldest message of a page
Shown = tuple[Message, Transfer | None]  # a message, and its file's transfer if it offers one
# What a send changes here besides storing it (an edit, a delete, a reaction; PROTOCOL.md §17),
# in the transaction that stores it, once its inner message (id, time) is made.
EffectOf = Callable[[Inner], Effect]


@dataclass(frozen=True, slots=True)
class PendingSend:
    contact: Contact
    kind: str
    body: Wire
    done: asyncio.Future[Message]
    effect: EffectOf | None = None


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Shown]
    next_before: Cursor | None  # pass back to load older; None: this is the oldest page
    has_newer: bool = False  # (pages around one message) there are newer ones after it


@dataclass(eq=False)
class Messaging:
    ctx: Context
    contacts: Contacts
    sessions: Sessions
    status: StatusTracker
    outgoing: asyncio.Queue[PendingSend] = field(default_factory=asyncio.Queue, init=False)

    # --- sending ------------------------------------------------------------------------------

    async def send_text(self, peer: str, text: str, reply_to: str | None = None) -> Message:
        """A text, perhaps a reply to the message `reply_to` of this conversation (§17.1)."""
        self.ctx.keys.identity()
        self.check_text(text)
        ref = None
        if reply_to is not None:
            quoted = await message_store.get_message(self.ctx.db, reply_to)
            if quoted is None or quoted.peer != peer or not quoted.is_shown:
                raise NotFound("There is no such message in this conversation.", code="no_message")
            ref = Ref(id=quoted.id.split(":", 1)[1], author=quoted.author)
        # The writer loop hands it back with its quote and reactions already (`decorate`).
        return await self.send_inner(peer, "text", TextBody(text=text, reply_to=ref))

    def check_text(self, text: str) -> None:
        """What a text (or an edit's text) must be."""
        if not text.strip():
            raise BadRequest("The message is empty.", code="empty_message")
        limit = self.ctx.settings.daemon.max_message_chars
        if len(text) > limit:
            raise TooLarge(
                f"The message is longer than {limit} characters.", code="message_too_long"
            )

    async def send_inner(
        self, peer: str, kind: str, body: Wire, effect: EffectOf | None = None
    ) -> Message:
        """Queue an inner message of any kind the user sends `peer` (a text, a file offer, an
        edit, a delete, a reaction); returns it once stored. Appearing offline, it goes all the
        same, and tells `peer` the user is up (PROTOCOL.md §12.2)."""
        contact = await self.contacts.recipient(peer)
        self.status.wrote_to(peer)
        return (await self.send_to([contact], kind, body, effect))[0]

    async def send_to(
        self, contacts: list[Contact], kind: str, body: Wire, effect: EffectOf | None = None
    ) -> list[Message]:
        """Queue one message to each of `contacts` (a hidden kind such as a profile update goes to
        many); returns once all are stored."""
        self.ctx.keys.identity()
        for contact in contacts:  # a first message to a version 2 peer starts a session
            await self.sessions.ensure(contact)
        loop = asyncio.get_running_loop()
        pending = [PendingSend(c, kind, body, loop.create_future(), effect) for c in contacts]
        for item in pending:
            self.outgoing.put_nowait(item)
        return list(await asyncio.gather(*(item.done for item in pending)))

    async def write_outgoing(self) -> None:
        """The writer loop: every send waiting at this moment is sealed and stored in one
        transaction. Each sender's request is answered only after its message is durable."""
        batch_max = self.ctx.settings.daemon.batch_max
        while True:
            group = [await self.outgoing.get()]
            while len(group) < batch_max and not self.outgoing.empty():
                group.append(self.outgoing.get_nowait())
            sealed: list[message_store.Outgoing] = []
            try:
                group = await self._seal_group(group, sealed)
                messages = await self._store_group(sealed)
            except asyncio.CancelledError:
                for item in group:
                    item.done.cancel()
                raise
            except Exception as exc:
                log.exception("could not store %d outgoing messages", len(group))
                for item in group:
                    if not item.done.done():
                        item.done.set_exception(exc)
                continue
            messages = await action_store.decorate(self.ctx.db, messages)
            for item, message in zip(group, messages, strict=True):
                if message.is_shown:
                    self.ctx.events.publish(MessageAdded(message))
                if not item.done.done():
                    item.done.set_result(message)
            self.ctx.wake.outbox.set()

    async def _seal_group(
        self, group: list[PendingSend], sealed: list[message_store.Outgoing]
    ) -> list[PendingSend]:
        """Seal each send (PROTOCOL.md §6, §14) into `sealed`; a send that cannot be sealed (its
        peer's session is gone) fails alone. Returns the sends that were sealed."""
        ctx = self.ctx
        peers = sorted({item.contact.username for item in group})
        seqs = await message_store.next_sequences(ctx.db, peers)
        inners: dict[tuple[str, int], list[tuple[PendingSend, Inner]]] = defaultdict(list)
        for item in group:
            peer = item.contact.username
            seq = 0  # control kinds (profile updates) stay outside the conversation's order
            if item.kind in SEQUENCED_KINDS:
                seq = seqs[peer]
                seqs[peer] = seq + 1
            inner = new_inner(ctx, peer, item.kind, item.body, seq)
            inners[(peer, id(item.contact))].append((item, inner))
        envelopes: dict[int, tuple[Inner, SealedEnvelope]] = {}
        for sends in inners.values():  # all to one peer at once: its state pickled once
            try:
                sealed_all = await self.sessions.seal_all(
                    sends[0][0].contact, [inner for _, inner in sends]
                )
            except RequestError as exc:  # its session is gone: its sends fail, not the others
                for item, _ in sends:
                    item.done.set_exception(exc)
                continue
            for (item, inner), one in zip(sends, sealed_all, strict=True):
                envelopes[id(item)] = (inner, one)
        kept = []
        for item in group:
            if id(item) not in envelopes:
                continue
            inner, envelope = envelopes[id(item)]
            kept.append(item)
            effect = None if item.effect is None else item.effect(inner)
            sealed.append(
                message_store.Outgoing(inner, envelope.envelope, envelope.ratchet, effect)
            )
        return kept

    async def _store_group(self, sealed: list[message_store.Outgoing]) -> list[Message]:
        ctx = self.ctx
        if not sealed:
            return []
        return await message_store.store_outgoing(
            ctx.db, ctx.me, sealed, ctx.clock.now(), ctx.settings.daemon.message_ttl_s
        )

    # --- the history --------------------------------------------------------------------------

    async def with_transfers(self, messages: list[Message]) -> list[Shown]:
        """Each file offer with its transfer's state (and each message with what it quotes and
        its reactions, §17)."""
        messages = await action_store.decorate(self.ctx.db, messages)
        transfers = await file_store.by_messages(
            self.ctx.db, [m.id for m in messages if m.kind == "file_offer"]
        )
        return [(m, transfers.get(m.id)) for m in messages]

    async def page(self, peer: str, before: Cursor | None, limit: int) -> Page:
        """A page of a conversation, oldest first, ending just before `before`."""
        messages = await message_store.list_messages(self.ctx.db, peer, before=before, limit=limit)
        oldest = messages[0] if messages else None
        cursor = None
        if oldest is not None and len(messages) == limit:
            cursor = (oldest.sent_at, oldest.seq, oldest.rowid)
        return Page(await self.with_transfers(messages), cursor)

    async def around(self, peer: str, message_id: str, before: int, after: int) -> Page | None:
        """The page around one message (a search hit), or None if it is not in `peer`'s
        conversation."""
        found = await message_store.messages_around(self.ctx.db, peer, message_id, before, after)
        if found is None:
            return None
        messages, has_older, has_newer = found
        first = messages[0]
        cursor = (first.sent_at, first.seq, first.rowid) if has_older else None
        return Page(await self.with_transfers(messages), cursor, has_newer)

    async def newest_rowid(self, peer: str, up_to: str | None) -> int:
        """How far the user has seen `peer`'s conversation: up to the message `up_to`, or all."""
        if up_to is None:
            return await message_store.newest_rowid(self.ctx.db, peer)
        message = await message_store.get_message(self.ctx.db, up_to)
        return message.rowid if message is not None and message.peer == peer else 0
