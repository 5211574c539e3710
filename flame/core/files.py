"""Files (PROTOCOL.md §11): chunk sealing, the offer's rules, names, media types, progress figures.

No I/O here: the daemon reads and writes the bytes; this module decides what they must look like.
A file of at most INLINE_MAX_BYTES travels inside its offer instead (§11.6), sealed with it.

    nonce(i)  = 0x00000000 || u64be(i)                                   (12 bytes)
    aad(i)    = "flame/v1/file-chunk" || 0x00 || transfer_id[16] || u64be(i)
    sealed(i) = AES-256-GCM(file_key).encrypt(nonce(i), chunk(i), aad(i))   (len(chunk) + 16)

Every chunk but the last holds exactly `chunk_bytes` bytes. A chunk sealed for one index (or one
transfer) does not open at another, so a reordered, replayed or tampered chunk is refused.
A file offered without its SHA-256 carries it after its last chunk, sealed (§11.4's trailer).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import struct
import unicodedata
import urllib.parse
from collections import deque
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flame.core.encoding import b64d
from flame.core.models import INLINE_MAX_BYTES, FileOfferBody
from flame.errors import BadEnvelope, BadRequest, DecryptionFailed

CHUNK_CONTEXT = b"flame/v1/file-chunk\x00"
TRAILER_CONTEXT = b"flame/v1/file-hash\x00"
TAG_BYTES = 16
KEY_BYTES = 32
TOKEN_BYTES = 32
TRANSFER_ID_BYTES = 16
SHA256_BYTES = 32
TRAILER_BYTES = SHA256_BYTES + TAG_BYTES  # the sealed hash after a streamed file's last chunk
MIN_CHUNK_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 4 * 1024 * 1024
MAX_NAME_BYTES = 255
FALLBACK_NAME = "file"
OCTET_STREAM = "application/octet-stream"
SNIFF_BYTES = 64  # enough of a file's start to recognise every type of INLINE_TYPES


# --- chunks -------------------------------------------------------------------------------------


def chunk_nonce(index: int) -> bytes:
    return bytes(4) + struct.pack(">Q", index)


def chunk_aad(transfer_id: bytes, index: int) -> bytes:
    return CHUNK_CONTEXT + transfer_id + struct.pack(">Q", index)


def trailer_aad(transfer_id: bytes, count: int) -> bytes:
    return TRAILER_CONTEXT + transfer_id + struct.pack(">Q", count)


class ChunkCipher:
    """AES-256-GCM under one file key. Each (key, index) pair seals exactly one plaintext: the
    sender's copy of a file never changes, so a chunk sent again is the same ciphertext."""

    def __init__(self, key: bytes, transfer_id: bytes) -> None:
        if len(key) != KEY_BYTES or len(transfer_id) != TRANSFER_ID_BYTES:
            raise ValueError("a file key is 32 bytes and a transfer id 16")
        self.aead = AESGCM(key)
        self.transfer_id = transfer_id

    def seal(self, index: int, chunk: bytes) -> bytes:
        return self.aead.encrypt(chunk_nonce(index), chunk, chunk_aad(self.transfer_id, index))

    def open(self, index: int, sealed: bytes) -> bytes:
        """Raises DecryptionFailed (`bad_chunk`) for a wrong tag, key, index or transfer."""
        try:
            return self.aead.decrypt(chunk_nonce(index), sealed, chunk_aad(self.transfer_id, index))
        except InvalidTag as exc:
            raise DecryptionFailed(
                f"Chunk {index} does not verify (tampered, or sealed for another index).",
                code="bad_chunk",
            ) from exc

    def seal_trailer(self, count: int, sha256: bytes) -> bytes:
        """The whole file's SHA-256, sealed to follow its last chunk (`count`: the chunk count,
        a nonce index no chunk uses; the AAD's label is not a chunk's)."""
        return self.aead.encrypt(chunk_nonce(count), sha256, trailer_aad(self.transfer_id, count))

    def open_trailer(self, count: int, sealed: bytes) -> bytes:
        """The SHA-256 a trailer carries; DecryptionFailed (`bad_chunk`) when it does not open."""
        try:
            digest = self.aead.decrypt(
                chunk_nonce(count), sealed, trailer_aad(self.transfer_id, count)
            )
        except InvalidTag as exc:
            raise DecryptionFailed(
                "The file's hash trailer does not verify.", code="bad_chunk"
            ) from exc
        return digest  # 32 bytes: the receiver reads exactly TRAILER_BYTES


@dataclass(frozen=True, slots=True)
class Layout:
    """How a file of `size` bytes splits into chunks of `chunk_bytes` (the last may be shorter),
    and where each chunk and its sealed form start (PROTOCOL.md §11.4)."""

    size: int
    chunk_bytes: int

    @property
    def count(self) -> int:
        return math.ceil(self.size / self.chunk_bytes)

    def offset(self, index: int) -> int:
        return index * self.chunk_bytes

    def plain_len(self, index: int) -> int:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return min(self.chunk_bytes, self.size - index * self.chunk_bytes)

    def sealed_len(self, index: int) -> int:
        return self.plain_len(index) + TAG_BYTES

    def sealed_offset(self, index: int) -> int:
        """Where chunk `index` starts in the sealed form, on the wire and at rest (§11.4)."""
        return index * (self.chunk_bytes + TAG_BYTES)

    def sealed_bytes(self, start: int, end: int | None = None) -> int:
        """The body length of chunks start .. end-1, sealed (end defaults to the last chunk)."""
        end = self.count if end is None else end
        if not 0 <= start <= end <= self.count:
            raise IndexError((start, end))
        if start == end:
            return 0
        full = end - start - 1
        return full * (self.chunk_bytes + TAG_BYTES) + self.sealed_len(end - 1)

    def held_chunks(self, held_bytes: int) -> int:
        """Whole chunks in a verified prefix of `held_bytes` (the file's end counts as whole)."""
        return self.count if held_bytes >= self.size else held_bytes // self.chunk_bytes


# --- the offer ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """A file offer with its byte fields decoded and every rule of PROTOCOL.md §11.2 checked."""

    transfer_id: str
    transfer_id_bytes: bytes
    name: str
    size: int
    media_type: str
    sha256: bytes | None  # None: streamed, the hash trails the last chunk (§11.4)
    key: bytes
    token: bytes
    chunk_bytes: int
    data: bytes | None = None  # the whole content, when it came inline (§11.6)

    @property
    def layout(self) -> Layout:
        return Layout(self.size, self.chunk_bytes)


def check_offer(body: FileOfferBody, max_file_bytes: int, *, hash_first: bool = False) -> Offer:
    """Raises BadEnvelope (or its relatives) with a code the sender is told (PROTOCOL.md §11.2).
    `sha256` may be absent from a streamed offer, never from an inline one (§11.6) or where
    `hash_first` asks for it (a group's, §19.7)."""
    try:
        transfer_id = b64d(body.transfer_id, length=TRANSFER_ID_BYTES, what="transfer_id")
        if body.sha256 is None and (hash_first or body.data is not None):
            raise BadRequest("sha256 is missing")
        sha256 = (
            None if body.sha256 is None else b64d(body.sha256, length=SHA256_BYTES, what="sha256")
        )
        key = b64d(body.key, length=KEY_BYTES, what="key")
        token = b64d(body.token, length=TOKEN_BYTES, what="token")
    except BadRequest as exc:
        raise BadEnvelope(f"Malformed file offer: {exc.message}.") from exc
    if not is_normal_name(body.name):
        raise BadEnvelope(
            "The file name is not in normal form (path separators, control characters or a "
            "reserved name).",
            code="bad_file_name",
        )
    if not is_media_type(body.media_type):
        raise BadEnvelope("The media type is malformed.", code="bad_envelope")
    if not MIN_CHUNK_BYTES <= body.chunk_bytes <= MAX_CHUNK_BYTES:
        raise BadEnvelope(
            f"Chunks must be {MIN_CHUNK_BYTES} to {MAX_CHUNK_BYTES} bytes.", code="bad_chunk_size"
        )
    if body.size > max_file_bytes:
        raise BadEnvelope(
            f"The file is larger than this recipient accepts ({max_file_bytes} bytes).",
            code="file_too_large",
        )
    data = None if body.data is None or sha256 is None else _inline_data(body, sha256)
    return Offer(
        body.transfer_id,
        transfer_id,
        body.name,
        body.size,
        body.media_type,
        sha256,
        key,
        token,
        body.chunk_bytes,
        data,
    )


def _inline_data(body: FileOfferBody, sha256: bytes) -> bytes:
    """The content an offer carries inline: exactly `size` bytes (at most INLINE_MAX_BYTES) whose
    SHA-256 is the offer's (PROTOCOL.md §11.6)."""
    if body.size > INLINE_MAX_BYTES:
        raise BadEnvelope(
            f"Only files of at most {INLINE_MAX_BYTES} bytes may travel inline.",
            code="bad_envelope",
        )
    try:
        data = b64d(body.data or "", what="data")
    except BadRequest as exc:
        raise BadEnvelope(f"Malformed file offer: {exc.message}.") from exc
    if len(data) != body.size:
        raise BadEnvelope(
            f"The inline content is {len(data)} bytes, not the {body.size} offered.",
            code="bad_envelope",
        )
    if not hmac.compare_digest(hashlib.sha256(data).digest(), sha256):
        raise BadEnvelope(
            "The inline content's SHA-256 does not match the offer.", code="hash_mismatch"
        )
    return data


# --- names ----------------------------------------------------------------------------------------

# Device names Windows reserves, with or without an extension ("con.txt" is the console too).
RESERVED_NAMES = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"com{i}" for i in "123456789¹²³"}
    | {f"lpt{i}" for i in "123456789¹²³"}
)
# Characters Windows refuses in names; "/" and "\\" are path separators everywhere.
FORBIDDEN_CHARS = frozenset('<>:"/\\|?*')
# Control and format characters (bidi overrides such as U+202E, zero-width joiners), surrogates,
# line and paragraph separators: they disguise a name ("txt.exe" shown as "exe.txt") or break it.
DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
SEPARATORS = re.compile(r"[/\\]")


def sanitize_name(raw: str) -> str:
    """A name safe to show and to offer as a download name; never used as a path by Flame.

    The last path component (so `../../etc/passwd` is `passwd`), NFC, without control or format
    characters, without characters Windows refuses, without leading or trailing dots and spaces,
    not a reserved device name, at most 255 UTF-8 bytes with its extension kept; never empty.
    """
    name = unicodedata.normalize("NFC", raw)
    name = SEPARATORS.split(name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in DROPPED_CATEGORIES)
    name = "".join("_" if ch in FORBIDDEN_CHARS else ch for ch in name)
    name = name.strip(" .")
    if name.split(".")[0].strip().lower() in RESERVED_NAMES:
        name = "_" + name
    name = _truncate(name)
    return name or FALLBACK_NAME


def _truncate(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode()) > 16:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    room = MAX_NAME_BYTES - len(suffix.encode())
    cut = stem.encode()[:room].decode(errors="ignore")
    return unicodedata.normalize("NFC", cut).rstrip(" .") + suffix


def is_normal_name(name: str) -> bool:
    """What a conforming sender offers: a name that sanitising leaves unchanged."""
    return bool(name) and sanitize_name(name) == name


# --- media types ---------------------------------------------------------------------------------

MEDIA_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")
INLINE_TYPES = {
    "image/png": "image",
    "image/jpeg": "image",
    "image/gif": "image",
    "image/webp": "image",
    "audio/mpeg": "audio",
    "audio/ogg": "audio",
    "audio/wav": "audio",
    "audio/flac": "audio",
    "audio/mp4": "audio",
    "video/mp4": "video",
    "video/webm": "video",
}


def is_media_type(value: str) -> bool:
    return bool(MEDIA_TYPE_RE.fullmatch(value))


def normalize_media_type(declared: str) -> str:
    """The sender's declared type, lower-cased and without parameters, or octet-stream."""
    value = declared.split(";", 1)[0].strip().lower()
    return value if is_media_type(value) else OCTET_STREAM


def sniff_media(head: bytes) -> str | None:
    """The inline type a file's first bytes prove, or None: then it is only ever a download.

    Decided from magic bytes, never from the name or the declared type, so an SVG or HTML file
    calling itself image/png is still a download.
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio/mpeg"  # an ID3 tag, or an MPEG-1/2 layer III frame sync
    if head[4:8] == b"ftyp":
        return "audio/mp4" if head[8:12] in (b"M4A ", b"M4B ") else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:SNIFF_BYTES]:
        return "video/webm"
    return None


def content_disposition(name: str, *, inline: bool) -> str:
    """RFC 6266: an ASCII fallback and the exact name as RFC 5987 `filename*`."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\%' else "_" for ch in name)
    encoded = urllib.parse.quote(name, safe="")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def media_class(media_type: str | None) -> str | None:
    """ "image", "audio" or "video" for an inline type; None for a download."""
    return None if media_type is None else INLINE_TYPES.get(media_type)


# --- progress -------------------------------------------------------------------------------------


@dataclass
class ProgressMeter:
    """Rate and time left over a sliding window; `due` spaces out progress events. Pure: the
    caller passes the time."""

    size: int
    started_at: float
    interval_s: float = 0.25
    window_s: float = 3.0
    last_sent_at: float = float("-inf")
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def update(self, now: float, done_bytes: int) -> None:
        self.samples.append((now, done_bytes))
        while len(self.samples) > 2 and self.samples[1][0] < now - self.window_s:
            self.samples.popleft()

    def rate_bps(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.rate_bps()
        if rate <= 0 or not self.samples:
            return None
        return max(0.0, (self.size - self.samples[-1][1]) / rate)

    def due(self, now: float) -> bool:
        if now - self.last_sent_at >= self.interval_s:
            self.last_sent_at = now
            return True
        return False
