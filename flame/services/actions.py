"""What people do to messages (PROTOCOL.md §17): this user's edits, deletes and reactions, sent
through the outbox like texts (exactly once, receipts, relays) and applied here in the transaction
that stores them; and the receivers of the same kinds from peers, which check the rules before
anything is stored. The rules are core/actions.py's, the SQL store/actions.py's; a reply is a text
(services/messaging.py)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flame.core import actions as rules
from flame.core.actions import DeleteBody, EditBody, ReactionBody, Ref
from flame.core.models import Inner, Wire
from flame.core.states import OPEN_STATES
from flame.errors import Conflict, NotFound, RequestError
from flame.services.context import Context
from flame.services.events import MessageChanged, MessageRemoved
from flame.services.files.disk import remove_files
from flame.services.files.runtime import FileRuntime
from flame.services.messaging import Messaging
from flame.services.receipts import Receipts
from flame.store import actions as store
from flame.store import files as file_store
from flame.store import messages as message_store
from flame.store.actions import Target, Version
from flame.store.db import Tx
from flame.store.messages import Incoming, Message, message_key

NO_MESSAGE = "There is no such message in this conversation."


@dataclass(eq=False)
class Actions:
    ctx: Context
    messaging: Messaging
    receipts: Receipts
    files: FileRuntime

    # --- this user's ---------------------------------------------------------------------------

    async def edit(self, peer: str, key: str, text: str) -> Message:
        target = await self._own(peer, key)
        rules.check_editable(target.kind)
        self.messaging.check_text(text)
        now = self.ctx.clock.now()
        rules.check_window(target.ts_ms, int(now * 1000), None, now)
        rules.check_edit_count(target.versions)
        if text != target.text:
            await self._send(peer, "edit", EditBody(target=_ref(target), text=text))
        return await self._shown(key, publish=text != target.text)

    async def delete(self, peer: str, key: str, scope: str) -> Message | None:
        """For everyone (the author only, within the window; a tombstone on both sides) or for
        this user alone (not shown here any more; nothing is sent)."""
        target = await self._found(peer, key)
        if scope == "me":
            transfer = (await file_store.by_messages(self.ctx.db, [key])).get(key)
            if transfer is not None and transfer.state in OPEN_STATES:
                raise Conflict(
                    "This file is still on its way: cancel or decline it, or delete it for "
                    "everyone.",
                    code="transfer_open",
                )
            async with self.ctx.db.transaction() as conn:
                await store.apply_delete(conn, key, peer, "me", self.ctx.clock.now())
            await self._deleted([key])
            self.ctx.events.publish(MessageRemoved(key, peer))
            return None
        if target.author != self.ctx.me:
            raise rules.refusal("not_author", "Only the author of a message can delete it.")
        if target.deleted is not None:
            raise Conflict("This message is deleted already.", code="deleted")
        now = self.ctx.clock.now()
        rules.check_window(target.ts_ms, int(now * 1000), None, now)
        await self._send(peer, "delete", DeleteBody(target=_ref(target)))
        await self._deleted([key])
        return await self._shown(key)

    async def react(self, peer: str, key: str, emoji: str, on: bool) -> Message:
        target = await self._found(peer, key)
        if target.deleted is not None:
            raise Conflict("A deleted message takes no reactions.", code="deleted")
        rules.check_emoji(emoji)
        mine = await store.reactions_of(self.ctx.db, self.ctx.me, key)
        if (emoji in mine) != on:
            if on and len(mine) >= rules.MAX_REACTIONS:
                raise _too_many_reactions()
            await self._send(
                peer, "reaction", ReactionBody(target=_ref(target), emoji=emoji, on=on)
            )
        return await self._shown(key, publish=(emoji in mine) != on)

    async def history(self, peer: str, key: str) -> list[Version]:
        """Every text the message had, oldest first (one, if it was never edited)."""
        target = await self._found(peer, key)
        if target.deleted is not None:
            return []
        found = await store.versions(self.ctx.db, key)
        return found or [Version(target.text, target.ts_ms / 1000)]

    async def _send(self, peer: str, kind: str, body: Wire) -> None:
        """Through the outbox; applied here in the transaction that queues it."""
        now = self.ctx.clock.now()

        def effect(inner: Inner) -> Callable[[Tx], Awaitable[bool]]:
            return functools.partial(self._apply, inner=inner, peer=peer, now=now)

        await self.messaging.send_inner(peer, kind, body, effect)

    async def _deleted(self, keys: list[str]) -> None:
        """After a delete's commit: a file's stored bytes go (what sends or takes it stops), and
        the write-ahead log is cut, so no old page holds the text (PROTOCOL.md §17.3)."""
        for transfer in (await file_store.by_messages(self.ctx.db, keys)).values():
            self.files.stop(transfer.key)
            remove_files(self.ctx.settings, transfer)
        await self.ctx.db.truncate_wal()

    async def _found(self, peer: str, key: str) -> Target:
        target = await store.find_target(self.ctx.db, key, peer)
        if target is None or not target.is_message or target.deleted == "me":
            raise NotFound(NO_MESSAGE, code="no_message")
        return target

    async def _own(self, peer: str, key: str) -> Target:
        target = await self._found(peer, key)
        if target.author != self.ctx.me:
            raise rules.refusal("not_author", "Only the author of a message can edit it.")
        if target.deleted is not None:
            raise Conflict("This message is deleted.", code="deleted")
        return target

    async def _shown(self, key: str, *, publish: bool = True) -> Message:
        message = await message_store.get_message(self.ctx.db, key)
        if message is None:
            raise NotFound(NO_MESSAGE, code="no_message")
        (message,) = await store.decorate(self.ctx.db, [message])
        if publish and message.is_shown:
            self.ctx.events.publish(MessageChanged(message))
        return message

    async def _apply(self, conn: Tx, *, inner: Inner, peer: str, now: float) -> bool:
        """An edit, delete or reaction (by `inner`'s author, in the conversation with `peer`)
        applied in the caller's transaction: True when what is shown changed."""
        body = inner.body
        action = message_key(inner.from_, inner.id)
        if isinstance(body, EditBody):
            return await store.apply_edit(conn, body.target.key, action, body.text, inner.ts)
        if isinstance(body, DeleteBody):
            return await store.apply_delete(conn, body.target.key, peer, "everyone", now)
        if isinstance(body, ReactionBody):
            target = body.target.key
            return await store.apply_reaction(
                conn, target, inner.from_, body.emoji, body.on, inner.ts
            )
        return False

    # --- the receivers of peers' actions (services/inbox.py) -------------------------------------

    async def receive_edits(self, items: list[Incoming]) -> list[bool | RequestError]:
        return await self._receive(items, self._check_edit)

    async def receive_deletes(self, items: list[Incoming]) -> list[bool | RequestError]:
        return await self._receive(items, self._check_delete)

    async def receive_reactions(self, items: list[Incoming]) -> list[bool | RequestError]:
        return await self._receive(items, self._check_reaction)

    async def _receive(
        self, items: list[Incoming], check: Callable[[Incoming], Awaitable[None]]
    ) -> list[bool | RequestError]:
        """Check each against the rules (a refused one stores nothing), then store the rest with
        their delivered receipts and effects in one transaction, and show what changed."""
        outcomes: list[bool | RequestError] = [False] * len(items)
        accepted: list[tuple[int, Incoming]] = []
        for index, item in enumerate(items):
            try:
                await check(item)
            except RequestError as exc:
                outcomes[index] = exc
                continue
            accepted.append((index, item))
        changed: list[str] = []
        deleted: list[str] = []

        async def effect(conn: Tx, item: Incoming) -> None:
            inner = item.inner
            target = message_store.target_of(inner) or ""
            if await self._apply(conn, inner=inner, peer=inner.from_, now=item.received_at):
                changed.append(target)
                if isinstance(inner.body, DeleteBody):
                    deleted.append(target)

        fresh = [item for _, item in accepted]
        receipts = self.receipts.delivered(fresh)  # duplicates too (PROTOCOL.md §13.2)
        stored = await message_store.store_incoming(self.ctx.db, fresh, receipts, effect)
        for (index, _), message in zip(accepted, stored, strict=True):
            outcomes[index] = message is not None
        if deleted:
            await self._deleted(deleted)
        for key in dict.fromkeys(changed):
            await self._shown(key)
        if receipts:
            self.receipts.owing()
        return outcomes

    async def _target(self, item: Incoming, ref: Ref) -> Target:
        """The message of this conversation an action names (§17.6)."""
        rules.check_in_conversation(ref, self.ctx.me, item.inner.from_)
        target = await store.find_target(self.ctx.db, ref.key, item.inner.from_)
        if target is None or not target.is_message:
            raise rules.refusal("unknown_message", NO_MESSAGE)
        return target

    async def _check_edit(self, item: Incoming) -> None:
        body = item.inner.body
        assert isinstance(body, EditBody)  # core.models.KIND_BODIES
        rules.check_author(body.target, item.inner.from_)
        target = await self._target(item, body.target)
        rules.check_editable(target.kind)
        if target.deleted is not None:
            return  # deleted meanwhile: nothing to change (the edit is kept as seen)
        rules.check_window(target.ts_ms, item.inner.ts, target.received_at, item.received_at)
        rules.check_edit_count(target.versions)

    async def _check_delete(self, item: Incoming) -> None:
        body = item.inner.body
        assert isinstance(body, DeleteBody)
        rules.check_author(body.target, item.inner.from_)
        target = await store.find_target(self.ctx.db, body.target.key, item.inner.from_)
        if target is None or target.deleted is not None:
            return  # not here (yet): a hidden tombstone; or deleted already
        if not target.is_message:
            raise rules.refusal("unknown_message", NO_MESSAGE)
        rules.check_window(target.ts_ms, item.inner.ts, target.received_at, item.received_at)

    async def _check_reaction(self, item: Incoming) -> None:
        body = item.inner.body
        assert isinstance(body, ReactionBody)
        target = await self._target(item, body.target)
        rules.check_emoji(body.emoji)
        if target.deleted is None and body.on:
            theirs = await store.reactions_of(self.ctx.db, item.inner.from_, target.key)
            if body.emoji not in theirs and len(theirs) >= rules.MAX_REACTIONS:
                raise _too_many_reactions()


def _ref(target: Target) -> Ref:
    return Ref(id=target.key.split(":", 1)[1], author=target.author)


def _too_many_reactions() -> RequestError:
    return rules.refusal(
        "too_many_reactions", f"One person can add at most {rules.MAX_REACTIONS} reactions."
    )
