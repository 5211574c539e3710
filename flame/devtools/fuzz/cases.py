"""The fuzzer's requests, one builder per route of the remote API and of the directory: a valid
request made with the members' real keys (`world.py`), then spoiled (`hostile.py`) and, most of
the time, signed or MAC'd after spoiling, so that the receiver's checks pass and its parsers see
the hostile part. `ROUTES` must name every route the two apps register: tests/e2e/test_fuzz.py
and the run itself compare it with their routers."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.files import ChunkCipher, Layout
from flame.core.prekeys import sign_prekey
from flame.core.presence import make_presence
from flame.core.relays import make_ack
from flame.devtools.fuzz.world import CHUNK, Case, World
from flame.services.account import enroll_request

# --- the remote API (PROTOCOL.md §7, §11, §12.1, §13.3, §16) -----------------------------------


def hello(world: World) -> Case:
    """Unsigned (anyone), or signed or MAC'd by a member, or with spoiled headers (§7.1)."""
    caller, target, _ = world.three()
    case = world.peer_case(caller, target, "GET", "/api/v1/hello", b"")
    if world.fuzz.chance(0.3):
        return Case(case.route, "GET", case.url, b"", {}, frozenset({"unsigned"}))
    return case


def envelopes(world: World) -> Case:
    author, target, _ = world.three()
    sealed = [world.envelope(author, target) for _ in range(world.fuzz.rng.randint(1, 3))]
    batch = [envelope for envelope, _ in sealed]
    body = json.dumps({"envelopes": batch}).encode()
    if world.fuzz.chance(0.2):
        body = world.document({"envelopes": batch})
    path = "/api/v1/envelopes" + ("?ack=1" if world.fuzz.chance(0.2) else "")
    tags = frozenset(f"v{version}" for _, version in sealed)
    return world.peer_case(author, target, "POST", path, body, tags=tags)


def profile(world: World) -> Case:
    caller, target, _ = world.three()
    body = b"" if world.fuzz.chance(0.9) else world.fuzz.encode({"x": 1})
    return world.peer_case(caller, target, "GET", "/api/v1/profile", body)


def deposits(world: World) -> Case:
    author, relay, recipient = world.three()
    if world.fuzz.chance(0.1):
        recipient = world.fuzz.pick([relay, author])
    envelope, version = world.envelope(author, recipient)
    valid = {"deposits": [{"envelope": envelope, "expires_at": int(time.time()) + 60}]}
    body = world.document(valid)
    tags = frozenset({f"v{version}"})
    return world.peer_case(author, relay, "POST", "/api/v1/relay/deposits", body, tags=tags)


def collect(world: World) -> Case:
    caller, relay, _ = world.three()
    body = world.document({"limit": world.fuzz.pick([1, 10, 1000])})
    return world.peer_case(caller, relay, "POST", "/api/v1/relay/collect", body)


def ack(world: World) -> Case:
    caller, relay, _ = world.three()
    record = make_ack(
        caller.identity, relay.name, caller.name, [world.fuzz.b64(16)], int(time.time())
    )
    body = world.document(record.model_dump())
    return world.peer_case(caller, relay, "POST", "/api/v1/relay/ack", body)


FILE_ROUTE = "GET /api/v1/files/{transfer_id}"
CHUNKS_ROUTE = "PUT /api/v1/files/{transfer_id}/chunks"


def file_status(world: World) -> Case:
    upload = world.fuzz.pick(world.uploads) if world.uploads else None
    caller, target, _ = world.three()
    transfer_id, token = world.fuzz.b64(16), world.fuzz.b64(32)
    if upload is not None:
        caller, target, transfer_id = upload.sender, upload.receiver, b64e(upload.transfer_id)
        token = upload.token if world.fuzz.chance(0.8) else token
    path = f"/api/v1/files/{transfer_id}"
    case = world.peer_case(caller, target, "GET", path, b"", FILE_ROUTE)
    case.headers["Flame-Upload-Token"] = token
    return case


def file_chunks(world: World) -> Case:
    """The sealed chunks of an upload the receiver holds (or hostile ones for a transfer it does
    not: it still sees the route, the token check and the stream)."""
    if world.uploads:
        upload = world.fuzz.pick(world.uploads)
        sender, receiver, transfer_id = upload.sender, upload.receiver, upload.transfer_id
        key, token, size = upload.key, upload.token, upload.size
    else:
        sender, receiver, _ = world.three()
        transfer_id, key, token, size = os.urandom(16), os.urandom(32), world.fuzz.b64(32), CHUNK
    layout = Layout(size, CHUNK)
    start = 0 if world.fuzz.chance(0.7) else world.fuzz.rng.randint(0, layout.count + 2)
    cipher = ChunkCipher(key, transfer_id)
    body = b"".join(
        cipher.seal(index, os.urandom(layout.plain_len(index)))
        for index in range(min(start, layout.count), layout.count)
    )
    if world.fuzz.chance(0.4) and body:
        spoiled = bytearray(body)
        spoiled[world.fuzz.rng.randrange(len(spoiled))] ^= 0xFF
        body = bytes(spoiled[: world.fuzz.rng.randint(1, len(spoiled))])
    path = f"/api/v1/files/{b64e(transfer_id)}/chunks?start={start}"
    case = world.peer_case(sender, receiver, "PUT", path, body, CHUNKS_ROUTE, unsigned_body=True)
    case.headers["Flame-Upload-Token"] = token
    case.headers["Content-Type"] = "application/octet-stream"
    return case


GROUP_CHUNKS_ROUTE = "GET /api/v1/group-files/{author}/{transfer_id}/chunks"


def group_chunks(world: World) -> Case:
    """A group file's chunks (PROTOCOL.md §19.7), asked of a member that holds none of them, by
    members and strangers, with hostile authors, ids, tokens and starts: every refusal before a
    byte is served."""
    caller, holder, author = world.three()
    author_name = world.fuzz.pick([author.name, caller.name, "nobody", "%ff", "a" * 70])
    transfer_id = world.fuzz.pick([world.fuzz.b64(16), world.fuzz.b64(3), "..", "%00"])
    start = world.fuzz.pick(["0", "1", "-1", "x", "9" * 20, ""])
    path = f"/api/v1/group-files/{author_name}/{transfer_id}/chunks?start={start}"
    case = world.peer_case(caller, holder, "GET", path, b"", GROUP_CHUNKS_ROUTE)
    if world.fuzz.chance(0.8):
        case.headers["Flame-Upload-Token"] = world.fuzz.b64(32)
    return case


def openapi(world: World) -> Case:
    """The served schema (§16): unsigned, or with whatever headers a member sends."""
    caller, target, _ = world.three()
    path = "/api/v1/openapi.json" + world.fuzz.pick(["", "", "?x=1", "?%ff"])
    case = world.peer_case(caller, target, "GET", path, b"")
    if world.fuzz.chance(0.5):
        return Case(case.route, "GET", case.url, b"", {}, frozenset({"unsigned"}))
    return case


# --- the directory (PROTOCOL.md §5, §14.3, §16) ------------------------------------------------


def dir_hello(world: World) -> Case:
    return world.directory_case(None, "GET", "/dir/v1/hello", b"")


def enroll(world: World) -> Case:
    name = "f" + "".join(world.fuzz.rng.choice("abcdefghij") for _ in range(10))
    valid = enroll_request(Identity.generate(), name, None).model_dump()
    body = world.document(valid) if world.fuzz.chance(0.97) else json.dumps(valid).encode()
    return world.directory_case(None, "POST", "/dir/v1/enroll", body)


CURSORS = ["", "?since=0", "?since=3", "?since=-1", "?since=x", "?since=" + "9" * 30, "?since="]


def users(world: World) -> Case:
    """The listing, or the changes after a cursor (§5.4), conditional or not."""
    path = "/dir/v1/users" + world.fuzz.pick(CURSORS)
    case = world.directory_case(world.fuzz.pick(world.members), "GET", path, b"")
    if world.fuzz.chance(0.3):
        case.headers["If-None-Match"] = world.fuzz.pick(['"x"', "*", 'W/"a"', '"c0"', "é"])
    return case


def subscribe(world: World) -> Case:
    """The subscription (§5.5) asked without a WebSocket handshake, or with a broken one (a
    complete handshake would hold the connection open: the e2e tests cover that)."""
    case = world.directory_case(world.fuzz.pick(world.members), "GET", "/dir/v1/subscribe", b"")
    if world.fuzz.chance(0.6):
        case.headers.update({"Upgrade": "websocket", "Connection": "Upgrade"})
        case.headers["Sec-WebSocket-Version"] = world.fuzz.pick(["13", "8", "x"])
        case.headers["Sec-WebSocket-Key"] = world.fuzz.pick(["", "x", "é", "a" * 100])
    return case


NAMES = ["alice", "bob", "mallory", "zz", "a" * 40, "%00", "%2e%2e", "x%ff", "."]


def user(world: World) -> Case:
    name = world.fuzz.pick(NAMES)
    signer = world.fuzz.pick(world.members)
    return world.directory_case(
        signer, "GET", f"/dir/v1/users/{name}", b"", "GET /dir/v1/users/{name}"
    )


def presence(world: World) -> Case:
    member = world.fuzz.pick(world.members)
    record = make_presence(
        member.identity,
        member.name,
        f"https://{member.host}",
        "online",
        [1, 2],
        int(time.time()),
        tls=world.fuzz.rng.randbytes(32),
    )
    body = world.document(record.model_dump())  # spoiled: its signature no longer verifies
    return world.directory_case(member, "PUT", "/dir/v1/presence", body)


def log_off(world: World) -> Case:
    """DELETE /dir/v1/presence: a member's log-off (its next report puts it back)."""
    body = b"" if world.fuzz.chance(0.8) else world.fuzz.encode({"username": "x"})
    return world.directory_case(world.fuzz.pick(world.members), "DELETE", "/dir/v1/presence", body)


def put_prekeys(world: World) -> Case:
    """Mallory's own prekeys (§14.3), signed by her, spoiled most of the time. Only hers: a valid
    upload replaces what the directory holds for its caller, and the daemons' users must keep
    their own, or honest sessions could not start."""
    mallory = world.mallory
    records = [
        sign_prekey(
            mallory.identity, mallory.name, world.olm.identity, world.fuzz.b64(32), fallback=False
        )
        for _ in range(world.fuzz.rng.randint(0, 3))
    ]
    fallback = sign_prekey(
        mallory.identity, mallory.name, world.olm.identity, world.fuzz.b64(32), fallback=True
    )
    valid = {
        "one_time": [r.model_dump() for r in records],
        "fallback": fallback.model_dump(),
    }
    return world.directory_case(mallory, "PUT", "/dir/v1/prekeys", world.document(valid))


def count_prekeys(world: World) -> Case:
    body = b"" if world.fuzz.chance(0.9) else world.fuzz.encode({"x": 1})
    return world.directory_case(world.fuzz.pick(world.members), "GET", "/dir/v1/prekeys", body)


def claim(world: World) -> Case:
    """A claim of anyone's prekey: it spends one of their one-time keys, as any member may."""
    name = world.fuzz.pick(NAMES)
    body = b"" if world.fuzz.chance(0.9) else world.fuzz.encode({"x": 1})
    return world.directory_case(
        world.fuzz.pick(world.members),
        "POST",
        f"/dir/v1/prekeys/{name}/claim",
        body,
        "POST /dir/v1/prekeys/{name}/claim",
    )


NUMBERS = ["0", "1", "2", "3", "999", "-1", "01", "x", "9" * 25, "%00", ""]
KEYLOG = [
    ("entries/{start}", 1),
    ("consistency/{first}/{second}", 2),
    ("inclusion/{index}/{size}", 2),
]


def keylog_head(world: World) -> Case:
    """The key log's signed head (§18.3), asked by a member."""
    body = b"" if world.fuzz.chance(0.9) else world.fuzz.encode({"x": 1})
    return world.directory_case(world.fuzz.pick(world.members), "GET", "/dir/v1/keylog/head", body)


def keylog_reads(world: World) -> Case:
    """Entries and proofs (§18.3), with numbers in range, out of it, and malformed."""
    template, count = world.fuzz.pick(KEYLOG)
    numbers = [world.fuzz.pick(NUMBERS) for _ in range(count)]
    path = "/dir/v1/keylog/" + template.split("/")[0] + "".join(f"/{n}" for n in numbers)
    return world.directory_case(
        world.fuzz.pick(world.members), "GET", path, b"", f"GET /dir/v1/keylog/{template}"
    )


def dir_openapi(world: World) -> Case:
    path = "/dir/v1/openapi.json" + world.fuzz.pick(["", "", "?x=1"])
    signer = world.fuzz.pick([None, *world.members])
    return world.directory_case(signer, "GET", path, b"")


Builder = Callable[[World], Case]
# Every route, weighted: the envelope and relay routes carry the inner messages.
ROUTES: list[tuple[Builder, int]] = [
    (hello, 1),
    (envelopes, 10),
    (profile, 1),
    (deposits, 5),
    (collect, 2),
    (ack, 2),
    (file_status, 1),
    (file_chunks, 2),
    (group_chunks, 1),
    (openapi, 1),
    (dir_hello, 1),
    (enroll, 2),
    (users, 1),
    (subscribe, 1),
    (user, 1),
    (presence, 2),
    (log_off, 1),
    (put_prekeys, 1),
    (count_prekeys, 1),
    (claim, 1),
    (dir_openapi, 1),
    (keylog_head, 1),
    (keylog_reads, 2),
]
