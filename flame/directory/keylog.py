"""The directory's key log (PROTOCOL.md §18): its signing key, kept in the data folder; the tree
over the log's entries, kept in memory and brought up to date from the database before every
answer (another process on the same database may have appended); its routes, and the signed
head on every answer to a signed request (`Flame-Key-Log`, §18.5)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flame.core import keylog
from flame.core.encoding import b64e
from flame.core.keylog import KeyLogEntries, KeyLogHead, KeyLogProof, MerkleTree
from flame.core.signing import HEADER_SIG, HEADER_USER
from flame.directory.store import DirectoryStore
from flame.errors import AuthError, BadRequest, FlameError
from flame.net.verify import RequestVerifier
from flame.store.folder import make_private_folder, write_private

PREFIX = "/dir/v1/keylog"
KEY_NAME = "keylog-key.pem"
NUMBER_RE = re.compile(r"^(0|[1-9][0-9]{0,17})$")
HEADER_MAX_AGE_S = 1.0  # how stale the head on an answer may be (a new one is fetched anyway)
Authenticate = Callable[[web.Request, bytes], Awaitable[str]]


def ensure_log_key(folder: Path) -> Ed25519PrivateKey:
    """The directory's log signing key: made on first use (Ed25519), then kept, 0600. Daemons pin
    its public half (PROTOCOL.md §18.1): a new one makes every daemon refuse the log.

    Raises:
        FlameError: the file is there but damaged.
    """
    make_private_folder(folder)
    path = folder / KEY_NAME
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
    path.chmod(0o600)
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, OSError) as exc:
        raise FlameError(f"The key log signing key {path} cannot be read ({exc}).") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise FlameError(f"The key log signing key {path} is not an Ed25519 key.")
    return loaded


@dataclass(eq=False)
class DirectoryLog:
    """The tree of the log's entries and its signed head. Every process on one database signs the
    same head for the same entries (its `ts` is the last entry's, Ed25519 is deterministic)."""

    store: DirectoryStore
    key: Ed25519PrivateKey
    tree: MerkleTree = field(default_factory=MerkleTree)
    head: KeyLogHead | None = None
    checked_at: float = float("-inf")
    header: tuple[KeyLogHead | None, str] = (None, "")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def public_key(self) -> bytes:
        return keylog.public_key_of(self.key)

    async def refresh(self) -> KeyLogHead:
        """The head of every entry in the database now."""
        async with self.lock:
            last_ts = 0 if self.head is None else self.head.ts
            while batch := await self.store.keylog_entries(self.tree.size, 10_000):
                for entry in batch:
                    self.tree.append(keylog.entry_hash(entry))
                last_ts = batch[-1].ts
            if self.head is None or self.head.size != self.tree.size:
                self.head = keylog.sign_head(self.key, self.tree.size, last_ts, self.tree.root())
            return self.head

    async def recent_head(self, now: float) -> KeyLogHead:
        """The head, refreshed at most every HEADER_MAX_AGE_S: for the header of every answer."""
        if self.head is None or now - self.checked_at >= HEADER_MAX_AGE_S:
            self.checked_at = now
            return await self.refresh()
        return self.head

    async def recent_header(self, now: float) -> str:
        """`recent_head` as the header carries it, formatted once per head."""
        head = await self.recent_head(now)
        if self.header[0] is not head:
            self.header = (head, keylog.head_header(head))
        return self.header[1]


def _number(request: web.Request, name: str) -> int:
    text = request.match_info[name]
    if not NUMBER_RE.fullmatch(text):
        raise BadRequest(f"{name} must be a whole number, not {text[:20]!r}.")
    return int(text)


def _beyond(what: str, size: int) -> BadRequest:
    return BadRequest(f"{what}: the key log holds {size} entries.", code="bad_range")


@dataclass(frozen=True, slots=True)
class KeyLogRoutes:
    """The routes (PROTOCOL.md §18.3), given the log, the app's request authentication and its
    verifier."""

    log: DirectoryLog
    authenticate: Authenticate
    verifier: RequestVerifier

    async def caller(self, request: web.Request) -> str:
        """Signed by the caller's key, or by any key the log ever held for the caller: a user
        whose keys the directory replaced can still read the log that says so (§18.3). The
        nonce is spent only by the signature that verifies."""
        try:
            return await self.authenticate(request, b"")
        except AuthError as exc:
            if exc.code not in ("bad_signature", "unknown_user"):
                raise
            name = request.headers.get(HEADER_USER, "")
            for key in await self.log.store.keylog_identity_keys(name):
                try:
                    return await self.verifier.verify(request, b"", _the(key))
                except AuthError:
                    continue
            raise

    async def head(self, request: web.Request) -> web.Response:
        await self.caller(request)
        return web.json_response((await self.log.refresh()).model_dump())

    async def entries(self, request: web.Request) -> web.Response:
        await self.caller(request)
        start = _number(request, "start")
        size = (await self.log.refresh()).size
        if start > size:
            raise _beyond(f"No entries from {start}", size)
        found = await self.log.store.keylog_entries(start, min(keylog.PAGE_MAX, size - start))
        return web.json_response(KeyLogEntries(start=start, entries=found).model_dump())

    async def consistency(self, request: web.Request) -> web.Response:
        await self.caller(request)
        first, second = _number(request, "first"), _number(request, "second")
        size = (await self.log.refresh()).size
        if not first <= second <= size:
            raise _beyond(f"No consistency proof from {first} to {second} entries", size)
        return _proof(self.log.tree.consistency_proof(first, second))

    async def inclusion(self, request: web.Request) -> web.Response:
        await self.caller(request)
        index, tree_size = _number(request, "index"), _number(request, "size")
        size = (await self.log.refresh()).size
        if not index < tree_size <= size:
            raise _beyond(f"No entry {index} in a log of {tree_size} entries", size)
        return _proof(self.log.tree.inclusion_proof(index, tree_size))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"{PREFIX}/head", self.head)
        app.router.add_get(f"{PREFIX}/entries/{{start}}", self.entries)
        app.router.add_get(f"{PREFIX}/consistency/{{first}}/{{second}}", self.consistency)
        app.router.add_get(f"{PREFIX}/inclusion/{{index}}/{{size}}", self.inclusion)


def _the(key: bytes) -> Callable[[str], Awaitable[bytes | None]]:
    async def lookup(_: str) -> bytes | None:
        return key

    return lookup


def _proof(hashes: list[bytes]) -> web.Response:
    return web.json_response(KeyLogProof(proof=[b64e(h) for h in hashes]).model_dump())


def head_middleware(log: DirectoryLog, now: Callable[[], float]) -> Middleware:
    """Every answer to a signed request carries the log's head (PROTOCOL.md §18.5): daemons learn
    of a new entry from the answers they get anyway, and ask for it only then."""

    @web.middleware
    async def add_head(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if HEADER_SIG in request.headers and (response.status < 300 or response.status == 304):
            response.headers[keylog.HEADER] = await log.recent_header(now())
        return response

    return add_head


def hello_fields(log: DirectoryLog) -> dict[str, Any]:
    """What the directory's hello says of its log: the key daemons pin (§18.1)."""
    return {"key_log": b64e(log.public_key)}
