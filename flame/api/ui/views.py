"""Everything the browser sees, shaped here and only here: one builder per UI object and one per
live event (docs/UI_API.md lists them; tests/api/test_ui_contract.py fails when the two drift).

Builders take domain objects (store dataclasses, services' people and events) and return JSON
values; nothing else in the daemon writes a dict for the browser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flame.api.ui.group_views import copy_json, group_json, group_message_json
from flame.core.actions import ACTION_WINDOW_MS
from flame.core.crypto import fingerprint
from flame.core.files import media_class
from flame.services import events
from flame.services.people import ContactCard, Person
from flame.services.search import SearchResult
from flame.store.actions import Version
from flame.store.files import Transfer
from flame.store.keylog import Alarm, LoggedKey
from flame.store.messages import Message, Quote, ReactionCount
from flame.store.profiles import StoredProfile
from flame.store.search import HIT_END, HIT_START, MessageHit

Json = dict[str, Any]
# What the UI may see of a file offer: never its key or upload token (PROTOCOL.md §11.2).
PUBLIC_OFFER_FIELDS = ("transfer_id", "name", "size", "media_type")


# --- objects ----------------------------------------------------------------------------------


def me_json(username: str, fingerprint: str, directory: str) -> Json:
    """`Me`."""
    return {"username": username, "fingerprint": fingerprint, "directory": directory}


def login_info_json(username: str) -> Json:
    """`LoginInfo`: whose daemon the login page unlocks (what `hello` tells anyone, §7.1)."""
    return {"username": username}


def login_json(me: Json, token: str) -> Json:
    """`Login`: who logged in, and the page token this page sends with every request."""
    return {"me": me, "token": token}


def message_json(message: Message, transfer: Transfer | None = None) -> Json:
    """`Message`; a file offer's `file` is its transfer's `File` when there is one, and its
    `text` the caption (PROTOCOL.md §11.2). A message deleted for everyone is a tombstone: no
    text, no file, no reactions (PROTOCOL.md §17.3)."""
    text_field = "caption" if message.kind == "file_offer" else "text"
    deleted = message.deleted is not None
    view: Json = {
        "id": message.id,
        "peer": message.peer,
        "direction": message.direction,
        "author": message.author,
        "kind": message.kind,
        "text": str(message.body.get(text_field) or ""),
        "sent_at": message.sent_at,
        "received_at": message.received_at,
        "seq": message.seq,
        "state": message.state,
        "error": message.error,
        "protocol_version": message.version,
        "relayed_at": message.relayed_at,
        "edited_at": message.edited_at,
        "deleted": deleted,
        "reply_to": None if message.quote is None else quote_json(message.quote),
        "reactions": [] if deleted else [reaction_json(r) for r in message.reactions],
        "actions_until": _actions_until(message),
    }
    if message.kind == "file_offer" and not deleted:
        view["file"] = (
            file_json(transfer)
            if transfer is not None
            else {name: message.body.get(name) for name in PUBLIC_OFFER_FIELDS}
        )
    return view


def _actions_until(message: Message) -> float | None:
    """Until when this user may edit their message (a text) or delete it for everyone."""
    if message.direction != "out" or message.deleted is not None:
        return None
    return message.sent_at + ACTION_WINDOW_MS / 1000


def quote_json(quote: Quote) -> Json:
    """`Quote`: what a reply shows of the message it answers."""
    return {
        "id": quote.id,
        "author": quote.author,
        "kind": quote.kind,
        "text": quote.text,
        "state": quote.state,
    }


def reaction_json(reaction: ReactionCount) -> Json:
    """`Reaction`: one emoji on a message, and who put it there."""
    return {"emoji": reaction.emoji, "count": len(reaction.people), "people": list(reaction.people)}


def version_json(version: Version) -> Json:
    """`Version`: one text an edited message had."""
    return {"text": version.text, "written_at": version.written_at}


def file_json(transfer: Transfer) -> Json:
    """`File`: what the browser may know of a transfer, never its key, token or stored name."""
    return {
        "peer": transfer.peer,
        "transfer_id": transfer.transfer_id,
        "direction": transfer.direction,
        "name": transfer.name,
        "size": transfer.size,
        "type": transfer.declared_type,
        "media": media_class(transfer.media_type),
        "state": transfer.state,
        "bytes": transfer.size if transfer.state == "complete" else transfer.held_bytes,
        "sent_bytes": transfer.sent_bytes,
        "error": transfer.error,
        "created_at": transfer.created_at,
        "completed_at": transfer.completed_at,
    }


def _file_or_none(transfer: Transfer | None) -> Json | None:
    return None if transfer is None else file_json(transfer)


def avatar_url(username: str, profile: StoredProfile | None) -> str | None:
    if profile is None or profile.avatar is None:
        return None
    # The version makes a new avatar a new URL, so the browser never shows a stale cached one.
    return f"/ui/api/profiles/{quote(username, safe='')}/avatar?v={profile.ts}"


def _summary(person: Person) -> Json:
    """The few profile fields shown wherever a person appears."""
    profile = person.profile
    return {
        "display_name": profile.display_name if profile is not None else "",
        "position": profile.position if profile is not None else "",
        "avatar_url": avatar_url(person.username, profile),
        "blocked": person.blocked,
    }


def profile_json(person: Person) -> Json:
    """`Profile`: everything the profile page shows about someone (this user or anyone else)."""
    profile = person.profile
    return {
        "username": person.username,
        "is_me": person.is_me,
        "known": person.known,
        **_summary(person),
        "location": profile.location if profile is not None else "",
        "bio": profile.bio if profile is not None else "",
        "updated_at": profile.ts / 1000 if profile is not None else None,
        "status": person.status,
        "fingerprint": person.fingerprint,
        "safety_number": person.safety_number,
        "key_changed": person.key_changed,
        "protocol_version": person.protocol_version,
        "session_reset_at": person.session_reset_at,
        "verified": person.verified,
        "key_history": [key_event_json(entry) for entry in person.key_history],
        "key_changed_at": person.key_changed_at,
    }


def key_event_json(entry: LoggedKey) -> Json:
    """`KeyEvent`: one entry of a person's key history in the key log (PROTOCOL.md §18.6)."""
    return {"kind": entry.kind, "at": entry.ts, "fingerprint": fingerprint(entry.identity_key)}


CONTACT_FIELDS = (
    *("username", "status", "fingerprint", "safety_number", "key_changed", "protocol_version"),
    *("session_reset_at", "verified", "display_name", "position", "avatar_url", "blocked"),
    "key_changed_at",
)


def contact_json(card: ContactCard) -> Json:
    """`Contact`: a row of the contact list: the person's profile fields, and the conversation's."""
    profile = profile_json(card.person)
    last = card.last_message
    return {
        **{name: profile[name] for name in CONTACT_FIELDS},
        "unread": card.unread,
        "last_message": message_json(last) if last is not None else None,
    }


PERSON_FIELDS = (
    *("username", "display_name", "position", "location"),
    *("avatar_url", "blocked", "is_me", "status"),
)


def person_json(person: Person) -> Json:
    """`Person`: a person in search results (the profile's first fields)."""
    profile = profile_json(person)
    return {name: profile[name] for name in PERSON_FIELDS}


def snippet_json(snippet: str) -> list[Json]:
    """'a \\x02hit\\x03 b' -> [{text: 'a ', hit: false}, {text: 'hit', hit: true}, ...]: the UI
    highlights with elements it builds, never by parsing markup."""
    segments: list[Json] = []
    for index, piece in enumerate(snippet.split(HIT_START)):
        hit, _, rest = piece.partition(HIT_END) if index > 0 else ("", "", piece)
        if hit:
            segments.append({"text": hit, "hit": True})
        if rest:
            segments.append({"text": rest, "hit": False})
    return segments


def hit_json(hit: MessageHit) -> Json:
    """`Hit`: a message that matched a search, with the matching part of its text."""
    return {"message": message_json(hit.message), "snippet": snippet_json(hit.snippet)}


def search_json(result: SearchResult) -> Json:
    """The answer of a search: `Person`s and `Hit`s."""
    return {
        "query": result.query,
        "order": result.order,
        "people": [person_json(p) for p in result.people],
        "messages": [hit_json(hit) for hit in result.messages],
    }


def my_status_json(event: events.MyStatusChanged) -> Json:
    """`MyStatus` (also the `my_status` event)."""
    return {"type": "my_status", "choice": event.choice, "status": event.status}


def settings_json(read_receipts: bool) -> Json:
    """`Settings`."""
    return {"read_receipts": read_receipts}


def block_json(username: str, blocked_at: float) -> Json:
    """`Block`: someone this user blocked, and since when."""
    return {"username": username, "blocked_at": blocked_at}


def blocked_json(listing: dict[str, float]) -> Json:
    """The block list."""
    return {"blocked": [block_json(name, at) for name, at in listing.items()]}


def key_log_alarm_json(alarm: Alarm) -> Json:
    """`KeyLogAlarm`: what the key log showed that is wrong (PROTOCOL.md §18.6)."""
    return {
        "id": alarm.id,
        "kind": alarm.kind,
        "message": alarm.message,
        "raised_at": alarm.raised_at,
    }


def key_log_json(state: str, size: int | None, alarms: list[Alarm]) -> Json:
    """`KeyLog`: the directory's key log as this daemon checked it."""
    return {
        "state": "alarm" if alarms else state,
        "size": size,
        "alarms": [key_log_alarm_json(alarm) for alarm in alarms],
    }


def diagnostics_json(outbox: int, relay_deposits: int) -> Json:
    """`Diagnostics`: what this daemon still holds on its way to others."""
    return {"outbox": outbox, "relay_deposits": relay_deposits}


# Every UI object, by the name docs/UI_API.md gives it.
OBJECTS: dict[str, Callable[..., Json]] = {
    "Me": me_json,
    "LoginInfo": login_info_json,
    "Login": login_json,
    "Contact": contact_json,
    "Message": message_json,
    "Quote": quote_json,
    "Reaction": reaction_json,
    "Version": version_json,
    "File": file_json,
    "Profile": profile_json,
    "Person": person_json,
    "Hit": hit_json,
    "MyStatus": my_status_json,
    "Settings": settings_json,
    "Block": block_json,
    "Diagnostics": diagnostics_json,
    "KeyEvent": key_event_json,
    "KeyLog": key_log_json,
    "KeyLogAlarm": key_log_alarm_json,
    "Group": group_json,
    "GroupMessage": group_message_json,
    "Copy": copy_json,
}


# --- events on the WebSocket ------------------------------------------------------------------


def hello_event(me: Json) -> Json:
    return {"type": "hello", "me": me}


def pong_event() -> Json:
    return {"type": "pong"}


def _file_progress(event: events.FileProgress) -> Json:
    transfer = event.transfer
    return {
        "peer": transfer.peer,
        "transfer_id": transfer.transfer_id,
        "direction": transfer.direction,
        "phase": event.phase,
        "bytes": event.done_bytes,
        "size": transfer.size,
        "rate_bps": round(event.rate_bps),
        "eta_s": event.eta_s,
    }


EventFields = Callable[[Any], Json]
EVENT_FIELDS: dict[type[events.Event], EventFields] = {
    events.MessageAdded: lambda e: {"message": message_json(e.message, e.transfer)},
    events.MessageStateChanged: lambda e: {
        "id": e.message_id,
        "peer": e.peer,
        "state": e.state,
        "error": e.error,
    },
    events.MessageChanged: lambda e: {"message": message_json(e.message)},
    events.MessageRemoved: lambda e: {"id": e.message_id, "peer": e.peer},
    events.ActionFailed: lambda e: {
        "peer": e.peer,
        "target": e.target,
        "kind": e.kind,
        "error": e.error,
    },
    events.TypingChanged: lambda e: {
        "username": e.username,
        "typing": e.typing,
        "expires_in_s": e.expires_in_s,
    },
    events.PresenceChanged: lambda e: {"username": e.username, "status": e.status},
    events.KeyChanged: lambda e: {"username": e.username},
    events.SessionReset: lambda e: {"username": e.username},
    events.VersionChanged: lambda e: {"username": e.username, "protocol_version": e.version},
    events.DirectoryStateChanged: lambda e: {"state": e.state},
    events.KeyLogAlarmRaised: lambda e: {"alarm": key_log_alarm_json(e.alarm)},
    events.MyStatusChanged: lambda e: {"choice": e.choice, "status": e.status},
    events.ProfileChanged: lambda e: {"profile": profile_json(e.person)},
    events.ProfileRejected: lambda e: {"username": e.username, "reason": e.reason},
    events.BlockChanged: lambda e: {"username": e.username, "blocked": e.blocked},
    events.FileStateChanged: lambda e: {"file": file_json(e.transfer)},
    events.FileProgress: _file_progress,
    events.GroupChanged: lambda e: {"group": group_json(e.card)},
    events.GroupMessageAdded: lambda e: {
        "message": group_message_json(e.message, e.copies, _file_or_none(e.file))
    },
}
WS_ONLY_EVENTS = ("hello", "pong")  # sent by the feed itself, not published by services


def event_json(event: events.Event) -> Json:
    return {"type": event.type, **EVENT_FIELDS[type(event)](event)}
