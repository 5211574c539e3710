"""Copies of group messages held while a member's key change is pending (PROTOCOL.md §19.5):
nothing is sealed under a key that may no longer be the member's; once this user accepts the
new key, the member is sent every operation of each group concerned (its new daemon may hold
none, as a new member's), then each held copy, sealed now, in the order they were written."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flame.core.encoding import b64e
from flame.core.group_models import GroupTextBody
from flame.core.models import GroupFileBody, Inner, Wire
from flame.errors import FlameError
from flame.services.events import MessageStateChanged
from flame.services.files.atrest import read_whole
from flame.services.groups import Groups, ordered
from flame.store import files as file_store
from flame.store import group_held as store
from flame.store import groups as group_store
from flame.store import outbox as outbox_store
from flame.store.group_held import HeldCopy

log = logging.getLogger("flame.groups")


@dataclass(eq=False)
class GroupHeld:
    groups: Groups

    async def release(self, member: str) -> int:
        """This user accepted `member`'s new key: their held copies go. Returns how many."""
        groups = self.groups
        ctx = groups.ctx
        held = await store.held_for(ctx.db, member)
        if not held:
            return 0
        contact = await groups.contacts.find(member)
        if contact is None or contact.key_changed:
            return 0
        queued: list[outbox_store.Queued] = []
        for group_id in sorted({await self._group_of(copy) for copy in held}):
            ops = ordered(await group_store.held_ops(ctx.db, group_id))
            if ops:
                queued += await groups.fan_out(group_id, {member: ops})
        failed: list[tuple[str, str]] = []
        for copy in held:
            try:
                body = await self._body(copy)
            except FlameError as exc:
                failed.append((copy.copy_id, exc.message))
                continue
            await groups.sessions.ensure(contact)
            inner = Inner(
                from_=ctx.me,
                to=member,
                id=copy.copy_id.split(":", 1)[1],
                seq=0,
                ts=int(copy.sent_at * 1000),
                kind=copy.kind,
                body=body,
            )
            sealed = await groups.sessions.seal(contact, inner)
            queued.append(
                outbox_store.Queued(
                    copy.copy_id, copy.kind, member, sealed.envelope, sealed.ratchet
                )
            )
        await store.release(ctx.db, queued, ctx.clock.now(), ctx.settings.daemon.message_ttl_s)
        await outbox_store.mark_failed(ctx.db, failed)
        await store.drop(ctx.db, [copy_id for copy_id, _ in failed])
        ctx.wake.outbox.set()
        for copy in held:
            reason = dict(failed).get(copy.copy_id)
            state = "failed" if reason else "sending"
            ctx.events.publish(MessageStateChanged(copy.copy_id, member, state, reason))
        log.info("released %d held group copies to %s", len(held) - len(failed), member)
        return len(held) - len(failed)

    async def _group_of(self, copy: HeldCopy) -> str:
        return str(copy.body["group"])

    async def _body(self, copy: HeldCopy) -> Wire:
        """The copy's body as it was written: the stored body, with the group message's text
        (a file's caption) and an inline file's content put back."""
        if copy.kind == "group_text":
            return GroupTextBody.model_validate({**copy.body, "text": copy.text})
        offer = dict(copy.body["offer"])
        if copy.text:
            offer["caption"] = copy.text
        ctx = self.groups.ctx
        transfer = await file_store.get(ctx.db, ctx.me, "out", str(offer["transfer_id"]))
        if transfer is None or transfer.state not in ("waiting", "complete"):
            raise FlameError("The file is no longer sent.")
        if transfer.inline:
            offer["data"] = b64e(await read_whole(ctx.settings, transfer))
        return GroupFileBody.model_validate({**copy.body, "offer": offer})
