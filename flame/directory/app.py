"""The directory's HTTP app (PROTOCOL.md §5). Handlers are thin: parse, check, store, answer."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
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
from flame.directory import admin, prekeys, store
from flame.errors import AuthError, BadRequest, Forbidden, NotFound
from flame.net.http import error_middleware, parse_model, read_body
from flame.net.ratelimit import address_limit
from flame.net.server import ConnectionLimits, Listener
from flame.net.tls import ensure_certificate
from flame.net.verify import RequestVerifier
from flame.store.db import Database, FolderLock

log = logging.getLogger("flame.directory")
PREFIX = "/dir/v1"


@dataclass
class DirectoryParts:
    settings: DirectorySettings
    db: Database
    clock: Clock
    verifier: RequestVerifier
    user_lookups: int = 0  # GET /users/{name} answered so far (tests count what floods cost)


PARTS = web.AppKey("parts", DirectoryParts)


async def authenticate(request: web.Request, body: bytes = b"") -> str:
    parts = request.app[PARTS]
    return await parts.verifier.verify(
        request, body, lambda name: store.identity_key_of(parts.db, name)
    )


async def hello(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    return web.json_response(
        {
            "service": "flame-directory",
            "versions": list(PROTOCOL_VERSIONS),
            "registration": parts.settings.registration,
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
    await store.enroll(
        parts.db,
        user,
        (identity_key, x25519_key, x25519_sig),
        req.invite,
        open_registration=parts.settings.registration == "open",
        now=now,
    )
    log.info("enrolled %s", req.username)
    return web.json_response(user.model_dump(), status=201)


async def list_users(request: web.Request) -> web.StreamResponse:
    await authenticate(request)
    parts = request.app[PARTS]
    listing = DirectoryListing(users=await store.entries(parts.db, parts.clock.now()))
    body = listing.model_dump_json().encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type="application/json", headers={"ETag": etag})


async def get_user(request: web.Request) -> web.Response:
    await authenticate(request)
    parts = request.app[PARTS]
    parts.user_lookups += 1
    found = await store.entries(parts.db, parts.clock.now(), request.match_info["name"])
    if not found:
        raise NotFound(f"No user named {request.match_info['name']!r}.", code="unknown_user")
    return web.json_response(found[0].model_dump())


async def put_presence(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    body = await read_body(request, parts.settings.max_body_bytes)
    user = await authenticate(request, body)
    record = parse_model(PresenceRecord, body, what="presence")
    if record.username != user:
        raise Forbidden("A presence record can only be reported by its owner.")
    identity_key = await store.identity_key_of(parts.db, user)
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
    await store.put_presence(parts.db, record, now + parts.settings.presence_ttl_s)
    return web.json_response({"ttl_s": parts.settings.presence_ttl_s})


async def delete_presence(request: web.Request) -> web.Response:
    user = await authenticate(request)
    await store.delete_presence(request.app[PARTS].db, user)
    return web.json_response({})


def build(parts: DirectoryParts) -> web.Application:
    settings = parts.settings
    app = web.Application(
        middlewares=[
            error_middleware,
            address_limit(settings.rate_per_address, settings.burst_per_address, parts.clock.now),
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[PARTS] = parts
    app.router.add_get(f"{PREFIX}/hello", hello)
    app.router.add_post(f"{PREFIX}/enroll", enroll)
    app.router.add_get(f"{PREFIX}/users", list_users)
    app.router.add_get(f"{PREFIX}/users/{{name}}", get_user)
    app.router.add_put(f"{PREFIX}/presence", put_presence)
    app.router.add_delete(f"{PREFIX}/presence", delete_presence)
    prekeys.PrekeyRoutes(PARTS, authenticate).add_routes(app)  # version 2 (PROTOCOL.md §14.3)
    app.router.add_get(f"{PREFIX}/openapi.json", prekeys.openapi)  # PROTOCOL.md §16
    return app


class DirectoryServer:
    """The directory process: data-folder lock, database, one listener."""

    def __init__(
        self, settings: DirectorySettings, data_dir: Path, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.clock = clock or SystemClock()
        self.lock = FolderLock(data_dir)
        self.listener: Listener | None = None
        self.parts: DirectoryParts | None = None
        self.db: Database | None = None
        self.admin: web.AppRunner | None = None
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
            self.db = await open_directory_db(self.data_dir)
            verifier = RequestVerifier(
                DIRECTORY_AUDIENCE,
                self.clock.now(),
                self.clock.now,
                per_caller=TokenBuckets(self.settings.rate_per_user, self.settings.burst_per_user),
            )
            self.parts = parts = DirectoryParts(self.settings, self.db, self.clock, verifier)
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
                admin.build(self.db, self.clock.now, address), self.data_dir
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.admin is not None:
            await self.admin.cleanup()
            self.admin = None
            (self.data_dir / admin.SOCKET_NAME).unlink(missing_ok=True)
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        if self.db is not None:
            await self.db.close()
            self.db = None
        self.lock.release()


async def open_directory_db(data_dir: Path) -> Database:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return await Database.open(data_dir / admin.DIRECTORY_DB, store.SCHEMA)
