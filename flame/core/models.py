"""Wire and domain models. Peer input is parsed into these at the edge; they travel inward.

No I/O here.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from flame.core.actions import ACTION_BODIES, Ref
from flame.core.encoding import b64d
from flame.core.group_models import GROUP_KIND_BODIES
from flame.core.image import AVATAR_MAX_BYTES, check_image

# Re-exported: the shared field types and base of every model (core/wire.py).
from flame.core.wire import B64 as B64
from flame.core.wire import BIDI_CONTROLS as BIDI_CONTROLS
from flame.core.wire import INVISIBLE as INVISIBLE
from flame.core.wire import USERNAME_RE as USERNAME_RE
from flame.core.wire import Line as Line
from flame.core.wire import Username as Username
from flame.core.wire import Wire as Wire
from flame.core.wire import check_username as check_username
from flame.core.wire import without_none as without_none
from flame.errors import BadRequest

STATUSES = ("online", "away", "busy", "offline")
Status = Literal["online", "away", "busy", "offline"]
PROTOCOL_VERSIONS = (1, 2)  # version 2: ratchet sessions inside the envelope (PROTOCOL.md §14)


# Files up to this size travel inside their offer (PROTOCOL.md §11.6), so relays can hold them.
INLINE_MAX_BYTES = 1024 * 1024
INLINE_B64_MAX = (INLINE_MAX_BYTES * 4 + 2) // 3
MAX_CAPTION = 16_000  # characters of a file's caption (PROTOCOL.md §11.2)
# A sealed body: the largest inner message padded, sealed and encoded fits with room to spare. The
# largest is a file offer carrying 1 MiB inline: about 1.87 MB in version 1, 2.49 MB in version 2,
# where its ratchet ciphertext is encoded once more (PROTOCOL.md §14.4; a test checks); the longest
# text message (100,000 characters, each up to 6 bytes as JSON) comes to about 800 KB.
SEALED = Annotated[str, Field(max_length=2_600_000)]


class EnrollRequest(Wire):
    username: Username
    invite: str | None = Field(default=None, max_length=200)
    identity_key: B64
    x25519_key: B64
    x25519_sig: B64
    proof: B64  # identity key's signature over the enrollment proof string (PROTOCOL.md §5.1)


class UserRecord(Wire):
    """What the directory vouches for: a username bound to an identity and an X25519 key."""

    username: Username
    identity_key: B64
    x25519_key: B64
    x25519_sig: B64
    enrolled_at: int


class PresenceRecord(Wire):
    """A presence report, signed by its owner (PROTOCOL.md §5.3). `ts` is epoch seconds; `tls` is
    b64u(SHA-256 of the peer listener's DER certificate), null for a plain http:// address."""

    username: Username
    address: str = Field(max_length=300)
    tls: B64 | None
    status: Status
    versions: list[int] = Field(max_length=16)
    ts: int
    sig: B64


class DirectoryEntry(Wire):
    user: UserRecord
    presence: PresenceRecord | None


class DirectoryListing(Wire):
    users: list[DirectoryEntry]


class Envelope(Wire):
    """The sealed unit on the wire (PROTOCOL.md §6). Everything but `to` is opaque to relays."""

    v: int
    id: B64
    to: Username
    eph: B64
    sk: B64
    ct: SEALED


class EnvelopeBatch(Wire):
    envelopes: list[Envelope] = Field(min_length=1, max_length=1000)


class EnvelopeResult(Wire):
    id: str
    status: Literal["stored", "duplicate", "rejected"]
    error: str | None = None
    message: str | None = None


class RelayAck(Wire):
    """The recipient's signed word that it holds these envelopes: a relay may drop them."""

    relay: Username
    to: Username
    ids: list[str] = Field(max_length=1000)
    ts: int
    sig: B64


class BatchResult(Wire):
    results: list[EnvelopeResult]
    ack: RelayAck | None = None  # asked for with ?ack=1 by a relay delivering deposits


class Deposit(Wire):
    """A sealed envelope left with a relay for its recipient, until `expires_at` (epoch s)."""

    envelope: Envelope
    expires_at: int


class DepositBatch(Wire):
    deposits: list[Deposit] = Field(min_length=1, max_length=1000)


class CollectRequest(Wire):
    limit: int = Field(default=256, ge=1, le=1000)


class Collected(Wire):
    envelopes: list[Envelope]
    more: bool


class TransferStatus(Wire):
    """What the receiver holds of a transfer (PROTOCOL.md §11.3)."""

    transfer_id: str = Field(max_length=200)
    state: str = Field(max_length=32)
    received_bytes: int = Field(ge=0)
    size: int = Field(ge=0)


class TextBody(Wire):
    text: str
    reply_to: Ref | None = None  # a reply to that message (PROTOCOL.md §17.1); absent, never null

    @model_serializer(mode="wrap")
    def _omit_absent_reply(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return without_none(handler(self), "reply_to")


# --- profiles (PROTOCOL.md §12.1; signing in core/profile.py) ------------------------------------

MAX_DISPLAY_NAME = 64
MAX_POSITION = 100
MAX_LOCATION = 100
MAX_BIO = 1000
AVATAR_B64_MAX = (AVATAR_MAX_BYTES * 4 + 2) // 3


def _text_block(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise ValueError("must be text, without control characters other than new lines")
    if not BIDI_CONTROLS.isdisjoint(value):
        raise ValueError(f"must be text {INVISIBLE}")
    return value


def _avatar(value: str | None) -> str | None:
    if value is not None:
        try:
            check_image(b64d(value, what="avatar"))
        except BadRequest as exc:
            raise ValueError(exc.message) from exc
    return value


Block = Annotated[str, AfterValidator(_text_block)]
Avatar = Annotated[str | None, Field(max_length=AVATAR_B64_MAX), AfterValidator(_avatar)]


class ProfileFields(Wire):
    """What the user edits. Lengths count characters."""

    display_name: Line = Field(default="", max_length=MAX_DISPLAY_NAME)
    position: Line = Field(default="", max_length=MAX_POSITION)
    location: Line = Field(default="", max_length=MAX_LOCATION)
    bio: Block = Field(default="", max_length=MAX_BIO)


class Profile(Wire):
    """A signed profile record. `ts` is the owner's clock in milliseconds; `avatar` is base64url
    of a PNG, JPEG or WebP image of at most 64 KiB and 256 pixels a side (core/image.py)."""

    username: Username
    display_name: Line = Field(max_length=MAX_DISPLAY_NAME)
    position: Line = Field(max_length=MAX_POSITION)
    location: Line = Field(max_length=MAX_LOCATION)
    bio: Block = Field(max_length=MAX_BIO)
    avatar: Avatar
    ts: int = Field(ge=0)
    sig: B64

    def avatar_bytes(self) -> bytes | None:
        return None if self.avatar is None else b64d(self.avatar, what="avatar")


class ProfileUpdateBody(Wire):
    """The body of a `profile_update` inner message: the author's new signed profile."""

    profile: Profile


class FileOfferBody(Wire):
    """A file offer (PROTOCOL.md §11.2): what the file is, and the secrets that let the recipient
    take its chunks. Byte fields are base64url; core.files.check_offer decodes and checks them."""

    transfer_id: B64
    name: str = Field(max_length=1024)
    size: int = Field(ge=1, le=2**53)
    media_type: str = Field(max_length=127)
    # Absent (never null on the wire) when the file is streamed while its upload still arrives:
    # its hash then trails the last chunk (PROTOCOL.md §11.4).
    sha256: B64 | None = None
    key: B64
    token: B64
    chunk_bytes: int
    # The whole content, base64url, for a file of at most INLINE_MAX_BYTES sent inline; absent
    # (never null on the wire) for a file whose bytes are streamed (PROTOCOL.md §11.6).
    data: str | None = Field(default=None, max_length=INLINE_B64_MAX)
    # What the sender wrote with the file, shown under it; absent (never null or empty) when
    # nothing was written (PROTOCOL.md §11.2).
    caption: str | None = Field(default=None, min_length=1, max_length=MAX_CAPTION)

    @model_serializer(mode="wrap")
    def _omit_absent_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return without_none(without_none(without_none(handler(self), "data"), "caption"), "sha256")

    def stored_json(self) -> str:
        """What the message store keeps: the offer without its inline bytes (those become the
        received file)."""
        return self.model_dump_json(exclude={"data"})


class FileCancelBody(Wire):
    """The sender stopped a transfer (PROTOCOL.md §11.5)."""

    transfer_id: B64


class FileDeclineBody(Wire):
    """The recipient refused a transfer (PROTOCOL.md §11.5)."""

    transfer_id: B64


class GroupFileBody(Wire):
    """`group_file`: a file sent to a group (PROTOCOL.md §19.7): `group`, `id`, `seq` and `heads`
    as `group_text`'s, and the file's offer (§11.2), the same in every member's copy: one
    transfer id, one file key, one token, so the chunks are sealed once for all of them."""

    group: B64
    id: B64
    seq: int = Field(ge=1, le=2**53 - 1)
    heads: list[B64] = Field(min_length=1, max_length=64)
    offer: FileOfferBody

    def stored_json(self) -> str:
        """A sender's per-member copy keeps neither the caption nor an inline file's bytes."""
        return self.model_dump_json(exclude={"offer": {"data", "caption"}})


# Inner message kinds and the model of each one's body (PROTOCOL.md §6.4). A kind is added here
# and given a receiver in messaging.RECEIVERS; an unknown kind is refused as bad_envelope.
class ReceiptBody(Wire):
    """`delivered`: the author's messages with these envelope ids are stored at the recipient;
    `read`: the recipient's user has seen them (PROTOCOL.md §13.2)."""

    state: Literal["delivered", "read"]
    ids: list[str] = Field(min_length=1, max_length=1000)


class RatchetBody(Wire):
    """The body of the version 2 outer kind `ratchet` (PROTOCOL.md §14.4): an Olm message of the
    session `session`; `identity` (the author's Curve25519 ratchet identity) only in a prekey
    message (`type` 0), which starts the session."""

    session: str = Field(min_length=1, max_length=64)
    type: Literal[0, 1]
    identity: B64 | None = None
    ciphertext: SEALED

    @model_serializer(mode="wrap")
    def _omit_absent_identity(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return without_none(handler(self), "identity")


# Bounds of the inner message's numbers (PROTOCOL.md §6.4): integers a browser holds exactly, and
# times a browser's Date can show (8.64e15 ms, the year 275760).
SEQ_MAX = 2**53 - 1
TS_MAX_MS = 8_640_000_000_000_000
SEQUENCED_KINDS = {"text", "file_offer"}  # kinds that are part of a conversation's order
KIND_BODIES: dict[str, type[Wire]] = {
    "text": TextBody,
    "receipt": ReceiptBody,
    "profile_update": ProfileUpdateBody,
    "file_offer": FileOfferBody,
    "file_cancel": FileCancelBody,
    "file_decline": FileDeclineBody,
    "ratchet": RatchetBody,  # version 2 only: the envelope's layer around the real inner message
    **ACTION_BODIES,  # edit, delete, reaction, typing (PROTOCOL.md §17)
    **GROUP_KIND_BODIES,  # group_ops, group_text (PROTOCOL.md §19)
    "group_file": GroupFileBody,  # §19.7
}
# Optional fields that are absent, never null, on the wire, by kind (§11.2, §11.6, §17.1).
ABSENT_NOT_NULL = {"file_offer": ("data", "caption"), "text": ("reply_to",)}


class Inner(BaseModel):
    """The decrypted inner message (PROTOCOL.md §6.4). `ts` is the author's clock in milliseconds."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", populate_by_name=True)

    from_: Username = Field(alias="from")
    to: Username
    id: str
    seq: int = Field(ge=0, le=SEQ_MAX)  # 1, 2, ... per conversation; 0 for control kinds
    ts: int = Field(ge=0, le=TS_MAX_MS)
    kind: str
    body: SerializeAsAny[Wire]

    @model_validator(mode="before")
    @classmethod
    def _body_of_kind(cls, data: Any) -> Any:
        """Parse `body` with the model of its `kind`."""
        if isinstance(data, dict) and not isinstance(data.get("kind"), str):
            raise ValueError("kind must be a string")
        if isinstance(data, dict) and not isinstance(data.get("body"), dict | Wire):
            raise ValueError("body must be an object")
        if isinstance(data, dict) and isinstance(data.get("body"), dict):
            kind = data["kind"]
            for optional in ABSENT_NOT_NULL.get(kind, ()):
                if data["body"].get(optional, "") is None:
                    raise ValueError(f"{optional} is absent, never null (PROTOCOL.md §11, §17.1)")
            model = KIND_BODIES.get(kind)
            if model is None:
                raise ValueError("unknown message kind")
            data = {**data, "body": model.model_validate(data["body"])}
        elif isinstance(data, dict) and isinstance(data.get("body"), Wire):
            if KIND_BODIES.get(data.get("kind")) is not type(data["body"]):  # type: ignore[arg-type]
                raise ValueError("the body does not match the kind")
        return data

    @model_validator(mode="after")
    def _sequenced(self) -> Inner:
        """Conversation messages count from 1; control kinds (receipts) carry 0."""
        if (self.kind in SEQUENCED_KINDS) != (self.seq >= 1):
            raise ValueError(f"seq {self.seq} does not fit kind {self.kind!r}")
        return self
