"""docs/UI_API.md and the code say the same: every UI object and every live event has one builder
(flame/api/ui/views.py), and each builder emits exactly the fields its table lists."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from flame.api.ui import views
from flame.services import events
from flame.services.people import ContactCard, Person
from flame.store.actions import Version
from flame.store.files import Transfer
from flame.store.groups import Copy, Group, GroupCard, GroupMessage
from flame.store.keylog import Alarm, LoggedKey
from flame.store.messages import Message, Quote, ReactionCount
from flame.store.profiles import StoredProfile
from flame.store.search import HIT_END, HIT_START, MessageHit

DOC = (Path(__file__).resolve().parents[2] / "docs" / "UI_API.md").read_text(encoding="utf-8")

MESSAGE = Message(7, "alice:m1", "alice", "in", "alice", 3, "text", {"text": "hi"}, 1.0, 2.0,
                  "received", None)  # fmt: skip
OFFER = Message(8, "bob:m2", "alice", "out", "bob", 4, "file_offer",
                {"transfer_id": "t", "name": "a.png", "size": 3, "media_type": "image/png",
                 "key": "secret", "token": "secret"}, 1.0, None, "sent", None)  # fmt: skip
TRANSFER = Transfer(
    peer="alice",
    direction="out",
    transfer_id="t",
    message_id="bob:m2",
    name="a.png",
    size=3,
    declared_type="image/png",
    media_type="image/png",
    sha256=b"h",
    file_key=b"k" * 32,
    upload_token=b"t" * 32,
    chunk_bytes=65536,
    stored_name="out-" + "0" * 32,
    state="complete",
    created_at=1.0,
    held_bytes=3,
    completed_at=2.0,
)
QUOTE = Quote("bob:m0", "bob", "text", "earlier", "shown")
REACTION = ReactionCount("👍", ("alice", "bob"))
PROFILE = StoredProfile("alice", "Alice", "CEO", "Paris", "bio", b"webp", 1000, "sig", 1.0)
PERSON = Person("alice", False, True, PROFILE, "online", False, "fp", "00000", False)
ENTRY = LoggedKey(3, "alice", b"i" * 32, b"x" * 32, 1700000000, "rekey")
ALARM = Alarm(1, "rekeyed:3", "rekeyed", "The directory gave your account new keys.", 2.0, "{}")
GROUP = Group("g" * 22, "Board", None, ("alice", "bob"), ("alice",), ("h" * 43,), True, 1.0, 2, 0)
GROUP_MESSAGE = GroupMessage(3, "bob:m", "g" * 22, "m", "out", "bob", 1, "hi", 1.0, None, None)
COPY = Copy("bob:m", "alice", "bob:e", "delivered", None)
GROUP_CARD = GroupCard(GROUP, "bob", 1, GROUP_MESSAGE)
SAMPLES: dict[str, tuple[Any, ...]] = {
    "Me": ("bob", "fp", "ok"),
    "LoginInfo": ("bob",),
    "Login": ({"username": "bob"}, "token"),
    "Contact": (ContactCard(PERSON, 2, MESSAGE),),
    "Message": (OFFER, TRANSFER),
    "Quote": (QUOTE,),
    "Reaction": (REACTION,),
    "Version": (Version("hi", 1.0),),
    "File": (TRANSFER,),
    "Profile": (PERSON,),
    "Person": (PERSON,),
    "Hit": (MessageHit(MESSAGE, f"a {HIT_START}hit{HIT_END} b"),),
    "MyStatus": (events.MyStatusChanged("online", "away"),),
    "Settings": (True,),
    "Block": ("mallory", 1.0),
    "Diagnostics": (2, 1),
    "KeyEvent": (ENTRY,),
    "KeyLog": ("ok", 4, [ALARM]),
    "KeyLogAlarm": (ALARM,),
    "Group": (GROUP_CARD,),
    "GroupMessage": (GROUP_MESSAGE, [COPY]),
    "Copy": (COPY,),
}
EVENT_SAMPLES: list[events.Event] = [
    events.MessageAdded(MESSAGE),
    events.MessageStateChanged("bob:m2", "alice", "delivered", None),
    events.MessageChanged(MESSAGE),
    events.MessageRemoved("alice:m1", "alice"),
    events.ActionFailed("alice", "bob:m2", "edit", "too late"),
    events.TypingChanged("alice", True, 6.0),
    events.PresenceChanged("alice", "away"),
    events.KeyChanged("alice"),
    events.SessionReset("alice"),
    events.VersionChanged("alice", 1),
    events.DirectoryStateChanged("degraded"),
    events.KeyLogAlarmRaised(ALARM),
    events.MyStatusChanged("busy", "busy"),
    events.ProfileChanged(PERSON),
    events.ProfileRejected("alice", "bad signature"),
    events.BlockChanged("mallory", blocked=True),
    events.FileStateChanged(TRANSFER),
    events.FileProgress(TRANSFER, "send", 2, 10.0, 0.5),
    events.GroupChanged(GROUP_CARD),
    events.GroupMessageAdded(GROUP_MESSAGE, (COPY,)),
]


def documented_objects() -> dict[str, set[str]]:
    """`### Name` headings under `## Objects`, each with its table's field names."""
    section = DOC[DOC.index("\n## Objects") : DOC.index("\n## Live events")]
    found: dict[str, set[str]] = {}
    for block in re.split(r"\n### ", section)[1:]:
        name = block.split("\n", 1)[0].strip()
        found[name] = set(re.findall(r"^\| `([a-z_]+)` \|", block, re.M))
    return found


def documented_events() -> dict[str, set[str]]:
    section = DOC[DOC.index("\n## Live events") :]
    found: dict[str, set[str]] = {}
    for kind, fields in re.findall(r"^\| `([a-z_]+)` \| ((?:[^|\\]|\\.)*)\|", section, re.M):
        if kind == "type":
            continue
        names = re.findall(r"(?:^|,)\s*`?([a-z_]+)(?=[:,`]|\s*$)", fields.strip().strip("`"))
        found[kind] = set(names)
    return found


def test_every_object_has_one_builder_and_its_documented_fields() -> None:
    documented = documented_objects()
    assert set(documented) == set(views.OBJECTS), "objects in UI_API.md and views.OBJECTS"
    assert set(SAMPLES) == set(views.OBJECTS)
    for name, build in views.OBJECTS.items():
        assert set(build(*SAMPLES[name])) == documented[name], name


def test_a_file_offer_never_shows_its_key_or_token() -> None:
    assert set(views.message_json(OFFER)["file"]) == set(views.PUBLIC_OFFER_FIELDS)
    assert "secret" not in repr(views.message_json(OFFER))
    assert "secret" not in repr(views.message_json(OFFER, TRANSFER))


def test_a_tombstone_shows_no_text_file_or_reactions() -> None:
    gone = dataclasses.replace(OFFER, body={}, deleted="everyone", reactions=(REACTION,))
    view = views.message_json(gone, TRANSFER)
    assert view["deleted"] is True and view["text"] == "" and "file" not in view
    assert view["actions_until"] is None and view["reactions"] == []
    assert "a.png" not in repr(view)


def test_every_event_has_one_builder_and_its_documented_fields() -> None:
    documented = documented_events()
    built = {kind.type for kind in views.EVENT_FIELDS} | set(views.WS_ONLY_EVENTS)
    assert set(documented) == built
    assert {type(e) for e in EVENT_SAMPLES} == set(views.EVENT_FIELDS) == set(events.EVENT_TYPES)
    for event in EVENT_SAMPLES:
        payload = views.event_json(event)
        assert payload["type"] == event.type
        assert set(payload) - {"type"} == documented[event.type], event.type
    assert set(views.hello_event({})) - {"type"} == documented["hello"]
    assert set(views.pong_event()) - {"type"} == documented["pong"]
