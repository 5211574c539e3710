"""The fuzzer's requests, one builder per route: a valid request made with the members' real keys,
then spoiled (`hostile.py`) and, most of the time, signed after spoiling, so that the receiver's
signature check passes and its parsers see the hostile part. Envelopes are sealed to their
recipients' real keys with the authors' real keys, so the inner messages are opened too."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flame.core.crypto import Identity
from flame.core.encoding import b64d, b64e
from flame.core.envelope import seal_bytes
from flame.core.files import ChunkCipher, Layout
from flame.core.models import ProfileFields
from flame.core.presence import make_presence
from flame.core.profile import make_profile
from flame.core.relays import make_ack
from flame.core.signing import DIRECTORY_AUDIENCE, sign_request
from flame.devtools.fuzz.hostile import Hostile
from flame.errors import BadRequest
from flame.services.account import enroll_request

KINDS = ["text", "receipt", "profile_update", "file_offer", "file_cancel", "file_decline"]
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Member:
    name: str
    identity: Identity
    port: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Case:
    route: str  # what the report counts by: "POST /api/v1/envelopes"
    method: str
    url: str  # raw, sent as it is
    body: bytes
    headers: dict[str, str]


@dataclass
class Upload:
    """A streamed file a member offered another in a valid offer: the chunk route's material."""

    sender: Member
    receiver: Member
    transfer_id: bytes
    key: bytes
    token: str
    size: int


@dataclass
class World:
    members: list[Member]
    directory_port: int
    fuzz: Hostile
    uploads: list[Upload] = field(default_factory=list)

    def three(self) -> tuple[Member, Member, Member]:
        """A sender, a receiver and a third member, all different."""
        order = self.fuzz.rng.sample(self.members, 3)
        return order[0], order[1], order[2]

    def sign(
        self,
        signer: Member,
        audience: str,
        method: str,
        host: str,
        path: str,
        body: bytes,
        *,
        unsigned_body: bool = False,
    ) -> dict[str, str]:
        headers = sign_request(
            signer.identity,
            signer.name,
            audience,
            method,
            path,
            host,
            body,
            int(time.time()),
            unsigned_body=unsigned_body,
        )
        headers["Content-Type"] = "application/json"
        if self.fuzz.chance(0.08):  # a spoiled header: dropped, garbled, out of time, another's
            name = self.fuzz.pick(sorted(h for h in headers if h.startswith("Flame-")))
            if self.fuzz.chance(0.3):
                del headers[name]
            else:
                headers[name] = self.fuzz.pick(
                    ["", "0", "9" * 13, "x" * 300, "é", self.fuzz.b64(16), self.fuzz.b64(64)]
                )
        return headers

    def peer_case(
        self, signer: Member, target: Member, method: str, path: str, body: bytes, **sign: Any
    ) -> Case:
        headers = self.sign(signer, target.name, method, target.host, path, body, **sign)
        url = f"http://{target.host}{path}"
        return Case(f"{method} {path.split('?')[0]}", method, url, body, headers)

    def document(self, valid: dict[str, Any]) -> bytes:
        """A valid document, spoiled most of the time."""
        if self.fuzz.chance(0.15):
            return json.dumps(valid).encode()
        return self.fuzz.encode(self.fuzz.mutate(valid, self.fuzz.rng.randint(1, 3)))

    # --- inner messages and envelopes -----------------------------------------------------------

    def inner(self, author: Member, to: Member) -> tuple[dict[str, Any], Upload | None]:
        kind = self.fuzz.pick(KINDS)
        upload = None
        body: dict[str, Any]
        if kind == "text":
            body = {"text": self.fuzz.pick(["hello", "é" * 100, "x" * 3000])}
        elif kind == "receipt":
            body = {"state": self.fuzz.pick(["delivered", "read"]), "ids": [self.fuzz.b64(16)]}
        elif kind == "profile_update":
            fields = ProfileFields(display_name=author.name.title(), bio="fuzz")
            profile = make_profile(author.identity, author.name, fields, None, _ms())
            body = {"profile": profile.model_dump()}
        elif kind == "file_offer":
            body, upload = self.offer(author, to)
        else:
            body = {"transfer_id": self.fuzz.b64(16)}
        inner = {
            "from": author.name,
            "to": to.name,
            "id": self.fuzz.b64(16),
            "seq": 0 if kind in ("receipt", "file_cancel", "file_decline", "profile_update") else 1,
            "ts": _ms(),
            "kind": kind,
            "body": body,
        }
        return inner, upload

    def offer(self, author: Member, to: Member) -> tuple[dict[str, Any], Upload]:
        size = self.fuzz.pick([1, 1000, CHUNK, CHUNK + 1, 3 * CHUNK])
        data = os.urandom(size)
        transfer_id, key, token = os.urandom(16), os.urandom(32), os.urandom(32)
        body = {
            "transfer_id": b64e(transfer_id),
            "name": self.fuzz.pick(["notes.txt", "a.pdf", "x" * 300, ".hidden", "a/b.txt"]),
            "size": size,
            "media_type": "application/octet-stream",
            "sha256": b64e(hashlib.sha256(data).digest()),
            "key": b64e(key),
            "token": b64e(token),
            "chunk_bytes": CHUNK,
        }
        if size <= 1000 and self.fuzz.chance(0.5):
            body["data"] = b64e(data)
        return body, Upload(author, to, transfer_id, key, b64e(token), size)

    def envelope(self, author: Member, to: Member) -> dict[str, Any]:
        """A sealed inner message (spoiled or not) from `author` to `to`, as a JSON object."""
        inner, upload = self.inner(author, to)
        plaintext = self.document(inner) if self.fuzz.chance(0.7) else json.dumps(inner).encode()
        if (
            upload is not None
            and plaintext == json.dumps(inner).encode()
            and len(self.uploads) < 64
        ):
            self.uploads.append(upload)  # the receiver will hold it: its chunks can be sent
        try:
            envelope_id = b64d(inner["id"], length=16)
        except BadRequest:
            envelope_id = os.urandom(16)
        sealed = seal_bytes(
            author.identity.exchange, to.name, to.identity.x25519_key, envelope_id, plaintext
        ).model_dump()
        return self.fuzz.mutate(sealed) if self.fuzz.chance(0.1) else sealed


def _ms() -> int:
    return int(time.time() * 1000)


# --- the peer routes ----------------------------------------------------------------------------


def hello(world: World) -> Case:
    _, target, _ = world.three()
    headers = world.sign(target, target.name, "GET", target.host, "/api/v1/hello", b"")
    url = f"http://{target.host}/api/v1/hello"
    return Case("GET /api/v1/hello", "GET", url, b"", headers)


def envelopes(world: World) -> Case:
    author, target, _ = world.three()
    batch = [world.envelope(author, target) for _ in range(world.fuzz.rng.randint(1, 3))]
    body = json.dumps({"envelopes": batch}).encode()
    if world.fuzz.chance(0.2):
        body = world.document({"envelopes": batch})
    path = "/api/v1/envelopes" + ("?ack=1" if world.fuzz.chance(0.2) else "")
    return world.peer_case(author, target, "POST", path, body)


def profile(world: World) -> Case:
    caller, target, _ = world.three()
    body = b"" if world.fuzz.chance(0.9) else world.fuzz.encode({"x": 1})
    return world.peer_case(caller, target, "GET", "/api/v1/profile", body)


def deposits(world: World) -> Case:
    author, relay, recipient = world.three()
    if world.fuzz.chance(0.1):
        recipient = world.fuzz.pick([relay, author])
    valid = {
        "deposits": [
            {"envelope": world.envelope(author, recipient), "expires_at": int(time.time()) + 60}
        ]
    }
    return world.peer_case(author, relay, "POST", "/api/v1/relay/deposits", world.document(valid))


def collect(world: World) -> Case:
    caller, relay, _ = world.three()
    body = world.document({"limit": world.fuzz.pick([1, 10, 1000])})
    return world.peer_case(caller, relay, "POST", "/api/v1/relay/collect", body)


def ack(world: World) -> Case:
    caller, relay, _ = world.three()
    record = make_ack(
        caller.identity, relay.name, caller.name, [world.fuzz.b64(16)], int(time.time())
    )
    return world.peer_case(
        caller, relay, "POST", "/api/v1/relay/ack", world.document(record.model_dump())
    )


def file_status(world: World) -> Case:
    upload = world.fuzz.pick(world.uploads) if world.uploads else None
    caller, target, _ = world.three()
    transfer_id, token = world.fuzz.b64(16), world.fuzz.b64(32)
    if upload is not None:
        caller, target, transfer_id = upload.sender, upload.receiver, b64e(upload.transfer_id)
        token = upload.token if world.fuzz.chance(0.8) else token
    case = world.peer_case(caller, target, "GET", f"/api/v1/files/{transfer_id}", b"")
    case.headers["Flame-Upload-Token"] = token
    return Case("GET /api/v1/files/{id}", case.method, case.url, case.body, case.headers)


def file_chunks(world: World) -> Case:
    if not world.uploads:
        return file_status(world)
    upload = world.fuzz.pick(world.uploads)
    layout = Layout(upload.size, CHUNK)
    start = 0 if world.fuzz.chance(0.7) else world.fuzz.rng.randint(0, layout.count + 2)
    cipher = ChunkCipher(upload.key, upload.transfer_id)
    body = b"".join(
        cipher.seal(index, os.urandom(layout.plain_len(index)))
        for index in range(min(start, layout.count), layout.count)
    )
    if world.fuzz.chance(0.4) and body:
        spoiled = bytearray(body)
        spoiled[world.fuzz.rng.randrange(len(spoiled))] ^= 0xFF
        body = bytes(spoiled[: world.fuzz.rng.randint(1, len(spoiled))])
    path = f"/api/v1/files/{b64e(upload.transfer_id)}/chunks?start={start}"
    case = world.peer_case(upload.sender, upload.receiver, "PUT", path, body, unsigned_body=True)
    case.headers["Flame-Upload-Token"] = upload.token
    case.headers["Content-Type"] = "application/octet-stream"
    return Case("PUT /api/v1/files/{id}/chunks", "PUT", case.url, body, case.headers)


# --- the directory's routes -------------------------------------------------------------------


def directory_case(
    world: World, signer: Member | None, method: str, path: str, body: bytes
) -> Case:
    host = f"127.0.0.1:{world.directory_port}"
    headers = (
        {"Content-Type": "application/json"}
        if signer is None
        else world.sign(signer, DIRECTORY_AUDIENCE, method, host, path, body)
    )
    route = f"{method} {path if not path.startswith('/dir/v1/users/') else '/dir/v1/users/{name}'}"
    return Case(route, method, f"http://{host}{path}", body, headers)


def dir_hello(world: World) -> Case:
    return directory_case(world, None, "GET", "/dir/v1/hello", b"")


def enroll(world: World) -> Case:
    name = "f" + "".join(world.fuzz.rng.choice("abcdefghij") for _ in range(10))
    valid = enroll_request(Identity.generate(), name, None).model_dump()
    body = world.document(valid) if world.fuzz.chance(0.97) else json.dumps(valid).encode()
    return directory_case(world, None, "POST", "/dir/v1/enroll", body)


def users(world: World) -> Case:
    case = directory_case(world, world.fuzz.pick(world.members), "GET", "/dir/v1/users", b"")
    if world.fuzz.chance(0.3):
        case.headers["If-None-Match"] = world.fuzz.pick(['"x"', "*", 'W/"a"', "é"])
    return case


def user(world: World) -> Case:
    name = world.fuzz.pick(["alice", "bob", "zz", "a" * 40, "%00", "%2e%2e", "x%ff", "."])
    return directory_case(
        world, world.fuzz.pick(world.members), "GET", f"/dir/v1/users/{name}", b""
    )


def presence(world: World) -> Case:
    member = world.fuzz.pick(world.members)
    record = make_presence(
        member.identity, member.name, f"http://{member.host}", "online", [1], int(time.time())
    )
    body = world.document(record.model_dump())  # spoiled: its signature no longer verifies
    return directory_case(world, member, "PUT", "/dir/v1/presence", body)


def log_off(world: World) -> Case:
    """DELETE /dir/v1/presence: a member's log-off (its next report puts it back)."""
    body = b"" if world.fuzz.chance(0.8) else world.fuzz.encode({"username": "x"})
    return directory_case(world, world.fuzz.pick(world.members), "DELETE", "/dir/v1/presence", body)


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
    (dir_hello, 1),
    (enroll, 2),
    (users, 1),
    (user, 1),
    (presence, 2),
    (log_off, 1),
]
