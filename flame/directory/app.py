"""The directory's HTTP app (PROTOCOL.md §5). Handlers are thin: parse, check, store, answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from flame.clock import Clock, SystemClock
from flame.config import DirectorySettings
from flame.core.crypto import binding_message, verify_signature
from flame.core.encoding import b64d
from flame.core.models import (
    PROTOCOL_VERSIONS,
    DirectoryListing,
    EnrollRequest,
    PresenceRecord,
    UserRecord,
)
from flame.core.presence import verify_presence
from flame.core.ratelimit import TokenBuckets
from flame.core.signing import DIRECTORY_AUDIENCE, enrollment_proof, verify_record
from flame.core.transport import endpoint
from flame.directory import admin, keylog, prekeys
from flame.directory.pg_store import PostgresStore
from flame.directory.push import Hub, Subscriber, frame_of
from flame.directory.sqlite_store import SqliteStore
from flame.directory.store import DirectoryStore
from flame.errors import AuthError, BadRequest, FlameError, Forbidden, NotFound
from flame.net.http import error_middleware, parse_model, read_body
from flame.net.ratelimit import address_limit
from flame.net.server import ConnectionLimits, Listener
from flame.net.tls import ensure_certificate
from flame.net.verify import RequestVerifier
from flame.store.db import FolderLock

log = logging.getLogger("flame.directory")
PREFIX = "/dir/v1"
CURSOR_RE = re.compile(r"^[0-9]{1,18}$")
FRAMES_MAX = 64  # cursors whose changes are kept encoded (see DirectoryParts.frames)
HEARTBEAT_S = 15.0  # a subscription's ping: a dead daemon (or directory) is noticed within two


@dataclass
class DirectoryParts:
    settings: DirectorySettings
    store: DirectoryStore
    clock: Clock
    verifier: RequestVerifier
    hub: Hub
    log: keylog.DirectoryLog  # the key log (PROTOCOL.md §18)
    user_lookups: int = 0  # GET /users/{name} answered so far (tests count what floods cost)
    # The full listing's body as of one head: polls with the same head reuse it.
    listing: tuple[int, bytes] = (-1, b"")
    # The bodies of the changes since each cursor asked for, all as of one head (`frames_head`):
    # daemons poll from the few cursors that the pushes and the last polls gave them.
    frames: dict[int, bytes] = field(default_factory=dict)
    frames_head: int = -1
    reported: bytes = b""  # the answer to a presence report (the TTL), encoded once
    sockets: set[web.WebSocketResponse] = field(default_factory=set)


PARTS = web.AppKey("parts", DirectoryParts)


async def authenticate(request: web.Request, body: bytes = b"") -> str:
    parts = request.app[PARTS]
    return await parts.verifier.verify(request, body, parts.store.identity_key_of)


async def hello(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    return web.json_response(
        {
            "service": "flame-directory",
            "versions": list(PROTOCOL_VERSIONS),
            "registration": parts.settings.registration,
            **keylog.hello_fields(parts.log),
        }
    )


async def enroll(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    req = parse_model(EnrollRequest, await read_body(request, parts.settings.max_body_bytes))
    identity_key = b64d(req.identity_key, length=32, what="identity_key")
    x25519_key = b64d(req.x25519_key, length=32, what="x25519_key")
    x25519_sig = b64d(req.x25519_sig, length=64, what="x25519_sig")
    if not verify_signature(identity_key, x25519_sig, binding_message(req.username, x25519_key)):
        raise BadRequest("x25519_sig does not verify with identity_key.", code="bad_binding")
    proof = enrollment_proof(req.username, req.identity_key, req.x25519_key)
    if not verify_record(identity_key, "enroll", proof, req.proof):
        raise BadRequest(
            "The enrollment proof does not verify with identity_key.", code="bad_proof"
        )
    now = int(parts.clock.now())
    user = UserRecord(
        username=req.username,
        identity_key=req.identity_key,
        x25519_key=req.x25519_key,
        x25519_sig=req.x25519_sig,
        enrolled_at=now,
    )
    await parts.store.enroll(
        user,
        (identity_key, x25519_key, x25519_sig),
        req.invite,
        open_registration=parts.settings.registration == "open",
        now=now,
    )
    log.info("enrolled %s", req.username)
    return web.json_response(user.model_dump(), status=201)


def parse_cursor(text: str) -> int:
    if not CURSOR_RE.fullmatch(text):
        raise BadRequest(
            "since must be a cursor this directory gave (a decimal number).", code="bad_cursor"
        )
    return int(text)


async def list_users(request: web.Request) -> web.StreamResponse:
    """With `since`: the changes after that cursor (PROTOCOL.md §5.4). Without: the whole
    listing, whose ETag names the head, so an unchanged poll is answered without building it."""
    await authenticate(request)
    parts = request.app[PARTS]
    since = request.query.get("since")
    if since is not None:
        return web.Response(
            body=await changes_body(parts, parse_cursor(since)), content_type="application/json"
        )
    head = await parts.store.head()
    etag = f'"c{head}"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    if parts.listing[0] != head:
        listing = await parts.store.listing()
        body = DirectoryListing(users=listing.entries).model_dump_json().encode()
        parts.listing = (listing.cursor, body)
        etag = f'"c{listing.cursor}"'
    return web.Response(
        body=parts.listing[1], content_type="application/json", headers={"ETag": etag}
    )


async def changes_body(parts: DirectoryParts, since: int) -> bytes:
    """The frame of the changes after `since`, encoded once per head for each cursor."""
    head = await parts.store.head()
    if parts.frames_head != head:
        parts.frames, parts.frames_head = {}, head
    body = parts.frames.get(since)
    if body is None:
        changes = await parts.store.changes(since)
        body = frame_of(changes).encode()
        # Only the rows of that very head (another process may have moved it since).
        if changes.cursor == head and len(parts.frames) < FRAMES_MAX:
            parts.frames[since] = body
    return body


async def get_user(request: web.Request) -> web.Response:
    await authenticate(request)
    parts = request.app[PARTS]
    parts.user_lookups += 1
    found = await parts.store.entry(request.match_info["name"])
    if found is None:
        raise NotFound(f"No user named {request.match_info['name']!r}.", code="unknown_user")
    return web.json_response(found.model_dump())


async def subscribe(request: web.Request) -> web.StreamResponse:
    """The signed subscription (PROTOCOL.md §5.5): a WebSocket of change frames, the first one
    the cursor it starts from."""
    user = await authenticate(request)
    parts = request.app[PARTS]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4096)
    try:
        await ws.prepare(request)
    except ValueError:  # aiohttp's check of a Sec-WebSocket-Key that is not ASCII
        raise BadRequest("The WebSocket handshake is malformed.") from None
    except ConnectionResetError:  # the subscriber left during the handshake (a daemon stopping)
        raise BadRequest("The connection closed during the WebSocket handshake.") from None
    subscriber, first = parts.hub.join(user)
    parts.sockets.add(ws)
    sender = asyncio.create_task(send_frames(ws, subscriber, first))
    try:
        async for _ in ws:  # a subscriber has nothing to say; this notices it going
            pass
    finally:
        parts.hub.leave(subscriber)
        parts.sockets.discard(ws)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    return ws


async def send_frames(ws: web.WebSocketResponse, subscriber: Subscriber, first: str) -> None:
    frame: str | None = first
    while frame is not None:
        try:
            await ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            return  # gone; the reading side ends the subscription
        frame = await subscriber.frames.get()
    await ws.close()  # too far behind, or the directory stops: it comes back by cursor


async def put_presence(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    body = await read_body(request, parts.settings.max_body_bytes)
    user = await authenticate(request, body)
    record = parse_model(PresenceRecord, body, what="presence")
    if record.username != user:
        raise Forbidden("A presence record can only be reported by its owner.")
    identity_key = await parts.store.identity_key_of(user)
    assert identity_key is not None  # authenticate() found it
    if not verify_presence(record, identity_key):
        raise AuthError("The presence record's signature does not verify.", code="bad_signature")
    now = parts.clock.now()
    if abs(record.ts - now) > 300:
        raise BadRequest(
            "The presence record's time is too far from now; check the clock.",
            code="stale_presence",
        )
    try:
        endpoint(
            record.address,
            record.tls,
            record.username,
            plain_http=parts.settings.insecure_plain_http,
        )
    except ValueError as exc:
        raise BadRequest(f"The presence address is refused: {exc}.", code="bad_address") from None
    await parts.store.put_presence(record, now + parts.settings.presence_ttl_s)
    if not parts.reported:
        parts.reported = json.dumps({"ttl_s": parts.settings.presence_ttl_s}).encode()
    return web.Response(body=parts.reported, content_type="application/json")


async def delete_presence(request: web.Request) -> web.Response:
    user = await authenticate(request)
    await request.app[PARTS].store.delete_presence(user)
    return web.json_response({})


def build(parts: DirectoryParts) -> web.Application:
    settings = parts.settings
    app = web.Application(
        middlewares=[
            error_middleware,
            address_limit(settings.rate_per_address, settings.burst_per_address, parts.clock.now),
            keylog.head_middleware(parts.log, parts.clock.now),
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[PARTS] = parts
    app.router.add_get(f"{PREFIX}/hello", hello)
    app.router.add_post(f"{PREFIX}/enroll", enroll)
    app.router.add_get(f"{PREFIX}/users", list_users)
    app.router.add_get(f"{PREFIX}/users/{{name}}", get_user)
    app.router.add_get(f"{PREFIX}/subscribe", subscribe)
    app.router.add_put(f"{PREFIX}/presence", put_presence)
    app.router.add_delete(f"{PREFIX}/presence", delete_presence)
    prekeys.PrekeyRoutes(PARTS, authenticate).add_routes(app)  # version 2 (PROTOCOL.md §14.3)
    log_routes = keylog.KeyLogRoutes(parts.log, authenticate, parts.verifier)
    log_routes.add_routes(app)  # the key log (PROTOCOL.md §18.3)
    app.router.add_get(f"{PREFIX}/openapi.json", prekeys.openapi)  # PROTOCOL.md §16
    return app


class DirectoryServer:
    """The directory process: data-folder lock, store, push hub, expiry sweep, one listener."""

    def __init__(
        self, settings: DirectorySettings, data_dir: Path, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.clock = clock or SystemClock()
        self.lock = FolderLock(data_dir)
        self.listener: Listener | None = None
        self.parts: DirectoryParts | None = None
        self.store: DirectoryStore | None = None
        self.admin: web.AppRunner | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.tls_fingerprint: bytes | None = None  # of its certificate; None: plain HTTP

    @property
    def url(self) -> str:
        assert self.listener is not None
        host = self.settings.host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.tls_fingerprint is not None else "http"
        return f"{scheme}://{host}:{self.listener.port}"

    async def start(self) -> None:
        self.lock.acquire()
        try:
            self.store = store = await open_store(self.settings, self.data_dir)
            verifier = RequestVerifier(
                DIRECTORY_AUDIENCE,
                self.clock.now(),
                self.clock.now,
                per_caller=TokenBuckets(self.settings.rate_per_user, self.settings.burst_per_user),
            )
            hub = Hub(store)
            await hub.start()
            log = keylog.DirectoryLog(store, keylog.ensure_log_key(self.data_dir))
            self.parts = parts = DirectoryParts(
                self.settings, store, self.clock, verifier, hub, log
            )
            self.tasks = [
                asyncio.create_task(hub.run(), name="directory-push"),
                asyncio.create_task(self.sweep(), name="directory-expiry"),
            ]
            limits = ConnectionLimits(
                per_address=self.settings.connections_per_address,
                total=self.settings.connections_max,
                idle_timeout_s=self.settings.idle_timeout_s,
            )
            context = None
            if not self.settings.insecure_plain_http:  # TLS, pinned by daemons (PROTOCOL.md §1.3)
                certificate = ensure_certificate(self.data_dir)
                self.tls_fingerprint = certificate.fingerprint
                context = certificate.server_context()
            self.listener = Listener(
                build(parts),
                self.settings.host,
                self.settings.port,
                limits,
                context,
                "--port (directory.port)",
            )
            await self.listener.start()
            address = admin.reachable_address(self.settings, self.listener.port)
            self.admin = await admin.start_admin(
                admin.build(store, self.clock.now, address), self.data_dir
            )
        except BaseException:
            await self.stop()
            raise

    async def sweep(self) -> None:
        """Presence that was not reported again within its TTL goes, as one change (§5.4)."""
        assert self.store is not None
        while True:
            await self.clock.sleep(self.settings.expiry_sweep_s)
            try:
                await self.store.expire_presence(self.clock.now())
            except FlameError as exc:
                log.warning("presence expiry waits: %s", exc.message)

    async def stop(self) -> None:
        if self.admin is not None:
            await self.admin.cleanup()
            self.admin = None
            (self.data_dir / admin.SOCKET_NAME).unlink(missing_ok=True)
        if self.parts is not None:
            self.parts.hub.close_all()  # subscribers are told to go before the listener stops
            for ws in list(self.parts.sockets):
                await ws.close()
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []
        if self.store is not None:
            await self.store.close()
            self.store = None
        self.lock.release()


async def open_store(settings: DirectorySettings, data_dir: Path) -> DirectoryStore:
    """The back end the settings name: PostgreSQL for a postgresql:// `database`, else the
    SQLite file in the data folder."""
    if settings.database:
        return await PostgresStore.open(settings.database)
    return await SqliteStore.open(data_dir)
