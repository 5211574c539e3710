"""What the fuzzer's requests are made of: the members and their real keys, requests signed with
Ed25519 or authenticated by the pair key's MAC (PROTOCOL.md §4, §14.8), and envelopes sealed to
their recipients' real keys, version 1 (§6) and version 2 (§14.4: an Olm message of a real
session inside), with inner messages of every kind, valid or spoiled (`hostile.py`)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from flame.core import ratchet
from flame.core.crypto import Identity
from flame.core.encoding import b64d, b64e
from flame.core.envelope import seal_bytes
from flame.core.models import ProfileFields
from flame.core.profile import make_profile
from flame.core.signing import DIRECTORY_AUDIENCE, mac_request, sign_request
from flame.devtools.fuzz.hostile import Hostile
from flame.devtools.fuzz.olm import Olm
from flame.errors import BadRequest

KINDS = ["text", "receipt", "profile_update", "file_offer", "file_cancel", "file_decline"]
KINDS += ["edit", "delete", "reaction", "typing"]  # PROTOCOL.md §17
CONTROL_KINDS = {"receipt", "file_cancel", "file_decline", "profile_update"}
CONTROL_KINDS |= {"edit", "delete", "reaction", "typing"}
REFS_MAX = 64
CHUNK = 64 * 1024
MAC_SHARE = 0.4  # of the requests to daemons: authenticated by the pair key, not signed
UPLOADS_MAX = 64


@dataclass(frozen=True)
class Member:
    name: str
    identity: Identity
    port: int  # its daemon's peer listener; 0: a member without a daemon (mallory)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Case:
    route: str  # as the app registers it: "GET /api/v1/files/{transfer_id}"
    method: str
    url: str  # raw, sent as it is
    body: bytes
    headers: dict[str, str]
    tags: frozenset[str] = frozenset()  # what the report also counts by: "mac", "v2", ...


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
    daemons: list[Member]  # the members with a daemon: the peer routes' targets
    mallory: Member  # a member without a daemon: the author of every version 2 envelope
    olm: Olm  # mallory's sessions with each daemon's user
    directory_port: int
    fuzz: Hostile
    uploads: list[Upload] = field(default_factory=list)
    pair_keys: dict[tuple[str, str], bytes] = field(default_factory=dict)
    refs: list[dict[str, str]] = field(default_factory=list)  # texts sent: the actions' targets

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.directory_port}"

    @property
    def members(self) -> list[Member]:
        return [*self.daemons, self.mallory]

    def three(self) -> tuple[Member, Member, Member]:
        """A sender (any member), a receiver and a third daemon, all different."""
        receiver, third = self.fuzz.rng.sample(self.daemons, 2)
        others = [m for m in self.members if m not in (receiver, third)]
        return self.fuzz.pick(others), receiver, third

    def pair_key(self, signer: Member, target: Member) -> bytes:
        key = (signer.name, target.name)
        if key not in self.pair_keys:
            self.pair_keys[key] = ratchet.pair_key(
                signer.identity.exchange, signer.name, target.identity.x25519_key, target.name
            )
        return self.pair_keys[key]

    def sign(
        self,
        signer: Member,
        target: Member | None,
        method: str,
        host: str,
        path: str,
        body: bytes,
        *,
        unsigned_body: bool = False,
    ) -> tuple[dict[str, str], str]:
        """Headers for a request by `signer` to `target`'s daemon (None: the directory), and how
        it is authenticated ("ed25519" or "mac"), sometimes with one header spoiled."""
        request = (
            signer.name,
            DIRECTORY_AUDIENCE if target is None else target.name,
            method,
            path,
            host,
            body,
            int(time.time()),
        )
        if target is not None and self.fuzz.chance(MAC_SHARE):
            auth = "mac"
            headers = mac_request(
                self.pair_key(signer, target), *request, unsigned_body=unsigned_body
            )
        else:
            auth = "ed25519"
            headers = sign_request(signer.identity, *request, unsigned_body=unsigned_body)
        headers["Content-Type"] = "application/json"
        if self.fuzz.chance(0.08):  # a spoiled header: dropped, garbled, out of time, another's
            name = self.fuzz.pick(sorted(h for h in headers if h.startswith("Flame-")))
            if self.fuzz.chance(0.3):
                del headers[name]
            else:
                headers[name] = self.fuzz.pick(
                    ["", "0", "9" * 13, "x" * 300, "é", self.fuzz.b64(16), self.fuzz.b64(64)]
                )
        return headers, auth

    def peer_case(
        self,
        signer: Member,
        target: Member,
        method: str,
        path: str,
        body: bytes,
        route: str | None = None,
        tags: frozenset[str] = frozenset(),
        **sign: Any,
    ) -> Case:
        headers, auth = self.sign(signer, target, method, target.host, path, body, **sign)
        url = f"https://{target.host}{path}"
        route = route or f"{method} {path.split('?')[0]}"
        return Case(route, method, url, body, headers, tags | {auth})

    def directory_case(
        self, signer: Member | None, method: str, path: str, body: bytes, route: str | None = None
    ) -> Case:
        host = f"127.0.0.1:{self.directory_port}"
        if signer is None:
            headers, auth = {"Content-Type": "application/json"}, "unsigned"
        else:
            headers, auth = self.sign(signer, None, method, host, path, body)
        route = route or f"{method} {path.split('?')[0]}"
        return Case(route, method, f"https://{host}{path}", body, headers, frozenset({auth}))

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
        elif kind in ("edit", "delete", "reaction"):
            body = self.action(kind, author, to)
        elif kind == "typing":
            body = {"typing": self.fuzz.chance(0.7)}
        else:
            body = {"transfer_id": self.fuzz.b64(16)}
        envelope_id = self.fuzz.b64(16)
        if kind == "text" and len(self.refs) < REFS_MAX:
            self.refs.append({"id": envelope_id, "author": author.name})
        if kind == "text" and self.refs and self.fuzz.chance(0.2):
            body["reply_to"] = self.fuzz.pick(self.refs)
        inner = {
            "from": author.name,
            "to": to.name,
            "id": envelope_id,
            "seq": 0 if kind in CONTROL_KINDS else 1,
            "ts": _ms(),
            "kind": kind,
            "body": body,
        }
        return inner, upload

    def action(self, kind: str, author: Member, to: Member) -> dict[str, Any]:
        """An edit, delete or reaction (§17.2-17.4) of a text sent before (of any conversation,
        by either side) or of a message that never was."""
        target = (
            self.fuzz.pick(self.refs)
            if self.refs and self.fuzz.chance(0.7)
            else {"id": self.fuzz.b64(16), "author": self.fuzz.pick([author.name, to.name])}
        )
        if kind == "edit":
            return {"target": target, "text": self.fuzz.pick(["edited", "é" * 100])}
        if kind == "reaction":
            emoji = self.fuzz.pick(["👍", "🎉", "x", "👍🏽", "🇫🇷"])
            return {"target": target, "emoji": emoji, "on": self.fuzz.chance(0.7)}
        return {"target": target}

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

    def keep_upload(self, upload: Upload | None) -> None:
        """The receiver holds this offer (it went unspoiled): its chunks can be sent, if the
        receiver has a daemon (an offer to mallory, deposited for her, goes nowhere)."""
        if upload is not None and upload.receiver.port and len(self.uploads) < UPLOADS_MAX:
            self.uploads.append(upload)

    def envelope(self, author: Member, to: Member) -> tuple[dict[str, Any], int]:
        """A sealed inner message (spoiled or not) from `author` to `to`, as a JSON object, and its
        version: mallory's to a daemon's user are version 2, the others' version 1."""
        if author is self.mallory and to.name in self.olm.prekeys:
            return self.envelope_v2(author, to), 2
        inner, upload = self.inner(author, to)
        valid = json.dumps(inner).encode()
        plaintext = self.document(inner) if self.fuzz.chance(0.7) else valid
        if self.fuzz.chance(0.03):  # a ratchet message where version 1 carries none (§14.4)
            plaintext = json.dumps({**inner, "kind": "ratchet", "seq": 0}).encode()
        if plaintext == valid:
            self.keep_upload(upload)
        try:
            envelope_id = b64d(inner["id"], length=16)
        except BadRequest:
            envelope_id = os.urandom(16)
        sealed = seal_bytes(
            author.identity.exchange, to.name, to.identity.x25519_key, envelope_id, plaintext
        ).model_dump()
        return (self.fuzz.mutate(sealed) if self.fuzz.chance(0.1) else sealed), 1

    def envelope_v2(self, author: Member, to: Member) -> dict[str, Any]:
        """Version 2 (PROTOCOL.md §14.4): the inner message (spoiled at times, or not matching its
        envelope, or itself a ratchet message) encrypted under a real Olm session with `to`, in
        an outer `ratchet` message (spoiled at times), sealed with `v` 2."""
        inner, upload = self.inner(author, to)
        valid = json.dumps(inner).encode()
        roll = self.fuzz.rng.random()
        if roll < 0.25:
            plaintext = self.document(inner)
        elif roll < 0.3:  # from, to or id other than the envelope's
            key = self.fuzz.pick(["from", "to", "id"])
            changed = {**inner, key: self.fuzz.pick(["carol", self.fuzz.b64(16)])}
            plaintext = json.dumps(changed).encode()
        elif roll < 0.33:  # a ratchet message inside a ratchet message
            plaintext = json.dumps({**inner, "kind": "ratchet", "seq": 0}).encode()
        else:
            plaintext = valid
        outer: dict[str, Any] = {
            "from": author.name,
            "to": to.name,
            "id": inner["id"],
            "seq": 0,
            "ts": 0,
            "kind": "ratchet",
            "body": self.olm.encrypt(to.name, plaintext),
        }
        sealed_plaintext = json.dumps(outer).encode()
        if self.fuzz.chance(0.2):
            sealed_plaintext = self.document(outer)
        elif self.fuzz.chance(0.03):  # version 2 without a ratchet message (§14.4)
            sealed_plaintext = valid
        if plaintext == valid and sealed_plaintext == json.dumps(outer).encode():
            self.keep_upload(upload)
        sealed = seal_bytes(
            author.identity.exchange,
            to.name,
            to.identity.x25519_key,
            b64d(inner["id"], length=16),
            sealed_plaintext,
            version=2,
        ).model_dump()
        return self.fuzz.mutate(sealed) if self.fuzz.chance(0.05) else sealed


def _ms() -> int:
    return int(time.time() * 1000)
