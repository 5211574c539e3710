"""The UI objects of groups (docs/UI_API.md, "Groups"; PROTOCOL.md §19), listed with every other
UI object in api/ui/views.py's OBJECTS."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from flame.store.groups import Copy, GroupCard, GroupMessage, count_states

Json = dict[str, Any]


def copy_json(copy: Copy) -> Json:
    """`Copy`: an outgoing group message's copy to one member; `id` is what `message_state`
    events name."""
    return {"member": copy.member, "id": copy.id, "state": copy.state, "error": copy.error}


def group_message_json(
    message: GroupMessage, copies: Sequence[Copy] = (), file: Json | None = None
) -> Json:
    """`GroupMessage`; "delivered to `delivered` of `recipients`, read by `read`"; `file` the
    `File` it carries (PROTOCOL.md §19.7), its `text` then the caption."""
    delivered, read = count_states(list(copies))
    return {
        "id": message.id,
        "group": message.group_id,
        "direction": message.direction,
        "author": message.author,
        "seq": message.seq,
        "text": message.text,
        "sent_at": message.sent_at,
        "received_at": message.received_at,
        "recipients": len(copies),
        "delivered": delivered,
        "read": read,
        "copies": [copy_json(c) for c in copies],
        "file": file,
    }


def group_json(card: GroupCard) -> Json:
    """`Group`: a group as this user holds it (PROTOCOL.md §19)."""
    group = card.group
    last = card.last_message
    return {
        "id": group.id,
        "name": group.name,
        "picture_url": (
            f"/ui/api/groups/{quote(group.id, safe='')}/picture?v="
            + hashlib.sha256(group.picture.encode()).hexdigest()[:12]
            if group.picture is not None
            else None
        ),
        "members": list(group.members),
        "admins": list(group.admins),
        "is_member": group.is_member,
        "is_admin": card.me in group.admins and group.is_member,
        "unread": card.unread,
        "last_message": group_message_json(last) if last is not None else None,
    }
