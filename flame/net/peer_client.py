"""Outbound calls to peers and the directory, signed (PROTOCOL.md §4): envelopes, relays,
profiles, file transfers (§11.3, §11.4) and the directory's routes (§5).

Every call goes through one place (`PeerClient._exchange`), which dials only a well-formed address
over TLS with the server's certificate pinned (§1.3; plain HTTP only with `insecure_plain_http`),
never follows a redirect, and maps errors: aiohttp errors and a certificate that is not the pinned
one become PeerUnreachable; a 3xx, 4xx or 5xx answer becomes PeerRefused with the peer's code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel
from yarl import URL

from flame.core import keylog
from flame.core.changes import DirectoryChanges
from flame.core.hello import Hello
from flame.core.keys import Keys
from flame.core.models import (
    BatchResult,
    Collected,
    CollectRequest,
    Deposit,
    DepositBatch,
    DirectoryEntry,
    EnrollRequest,
    Envelope,
    EnvelopeBatch,
    PresenceRecord,
    Profile,
    RelayAck,
    TransferStatus,
    UserRecord,
)
from flame.core.prekeys import PrekeyClaim, PrekeyCount, PrekeyUpload
from flame.core.signing import DIRECTORY_AUDIENCE, mac_request, sign_request
from flame.core.transport import Endpoint
from flame.errors import PeerRefused, PeerUnreachable
from flame.net.failures import unreachable
from flame.net.replies import (
    host_header,
    is_public_hello,
    parse_reply,
    payload_of,
    refusal,
    results_of,
    target_url,
)
from flame.net.tls import TLS_SERVER_NAME, Pins, mismatch_message, whose

DIRECTORY_PREFIX = "/dir/v1"
PEER_PREFIX = "/api/v1"
TOKEN_HEADER = "Flame-Upload-Token"
CONNECT_TIMEOUT_S = 5.0
T = TypeVar("T")


class PeerClient:
    """One aiohttp session for all outbound traffic. Signed calls need the unlocked keys; while
    the daemon is locked only unsigned ones work (enrollment, hello)."""

    def __init__(
        self,
        keys: Keys,
        timeout_s: float,
        now: Callable[[], float],
        *,
        plain_http: bool = False,
    ) -> None:
        self.keys = keys
        self.now = now
        self.pins = Pins(plain_http)  # how each endpoint is dialled (PROTOCOL.md §1.3)
        self.answered: dict[str, str] = {}  # an endpoint's first address -> the one that answered
        # A version 2 peer's pair key (its requests carry a MAC, PROTOCOL.md §14.8), or None.
        self.pair_key: Callable[[str], Awaitable[bytes | None]] | None = None
        # Whether a peer may be called now: appearing offline, only those the user wrote to
        # (PROTOCOL.md §12.2). The loops hold back by themselves; this is the last word.
        self.may_call: Callable[[str], bool] = lambda peer: True
        # The key log's head this daemon holds, sent to peers; and where the heads that answers
        # carry go, with whose answer it was (PROTOCOL.md §18.5).
        self.key_log_head: Callable[[], str | None] | None = None
        self.on_key_log_head: Callable[[str, str], None] | None = None
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 5.0)),
            # Idle connections kept less long than peers keep theirs (PROTOCOL.md §12.5).
            connector=aiohttp.TCPConnector(
                limit=256, limit_per_host=8, ttl_dns_cache=60, keepalive_timeout=10.0
            ),
            json_serialize=json.dumps,
        )

    async def close(self) -> None:
        # TLS connections are aborted: a TLS close waits for the peer's close_notify (up to
        # 30 s), and a stopping daemon has no peer left to wait for.
        if self.session.connector is not None:
            await self.session.connector.close(abort_ssl=True)
        await self.session.close()

    async def signed_headers(
        self, audience: str, method: str, target: URL, host: str, body: bytes, *, streamed: bool
    ) -> dict[str, str]:
        if not self.keys.is_unlocked:
            raise PeerUnreachable("The daemon is locked: it cannot sign requests.")
        pair_key = None
        if audience != DIRECTORY_AUDIENCE and self.pair_key is not None:
            pair_key = await self.pair_key(audience)
        request = (
            self.keys.username,
            audience,
            method,
            target.raw_path_qs,
            host,
            body,
            int(self.now()),
        )
        if pair_key is not None:
            return mac_request(pair_key, *request, unsigned_body=streamed)
        return sign_request(self.keys.identity(), *request, unsigned_body=streamed)

    async def _exchange(
        self,
        method: str,
        endpoint: Endpoint,
        path_qs: str,
        headers: dict[str, str],
        data: Any,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        """Send one request and read the answer; the one place addresses, certificates and
        redirects are checked and errors mapped. `client_timeout` replaces the session's
        (aiohttp reads an explicit None as "no timeout at all")."""
        if not endpoint.is_directory and not self.may_call(endpoint.owner):
            raise PeerUnreachable(f"Not calling {endpoint.owner}: this user appears offline.")
        transport = self.pins.ssl_for(endpoint)
        target = target_url(endpoint.url + path_qs)
        options: dict[str, Any] = {} if client_timeout is None else {"timeout": client_timeout}
        if transport:  # every ClientHello names the same server, not the host it goes to
            options["server_hostname"] = TLS_SERVER_NAME
        try:
            async with self.session.request(
                method,
                target,
                data=data,
                headers=headers,
                ssl=transport,
                allow_redirects=False,
                **options,
            ) as response:
                payload = await response.read()
                status, response_headers = response.status, dict(response.headers)
                head = response.headers.get(keylog.HEADER)
        except aiohttp.ServerFingerprintMismatch as exc:
            raise PeerUnreachable(mismatch_message(endpoint)) from exc
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            # ValueError: aiohttp and yarl refusing what a peer's address or answer holds.
            raise unreachable(whose(endpoint), endpoint.url, exc) from exc
        if 300 <= status < 400 and status != 304:  # 304 answers a conditional GET, no redirect
            raise PeerRefused(
                f"Refused: {whose(endpoint)} answered with a redirect (HTTP {status}), "
                "which Flame never follows.",
                status=status,
                code="redirect",
            )
        if status >= 400:
            raise refusal(status, payload, response_headers)
        if head is not None and self.on_key_log_head is not None:
            self.on_key_log_head(endpoint.owner, head)
        return status, payload, response_headers

    def _with_head(self, endpoint: Endpoint, headers: dict[str, str]) -> dict[str, str]:
        """A request to a peer carries this daemon's key log head (PROTOCOL.md §18.5)."""
        head = None if self.key_log_head is None or endpoint.is_directory else self.key_log_head()
        return headers if head is None else {**headers, keylog.HEADER: head}

    async def request(
        self,
        method: str,
        endpoint: Endpoint,
        path_qs: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        signed: bool = True,
    ) -> tuple[int, bytes, dict[str, str]]:
        """Send one request to `endpoint` (signed for its owner unless `signed` is False).
        Returns status, body, headers. An endpoint with alternates is tried at each address in
        turn, the last one that answered first."""
        if endpoint.alternates:
            return await self.failover(
                endpoint,
                lambda one: self.request(
                    method, one, path_qs, body=body, headers=headers, signed=signed
                ),
            )
        self.pins.ssl_for(endpoint)  # a bad address is refused before anything parses it
        target = target_url(endpoint.url + path_qs)
        all_headers = {
            "Host": host_header(target),
            "Content-Type": "application/json",
            **(headers or {}),
        }
        if signed:
            audience = DIRECTORY_AUDIENCE if endpoint.is_directory else endpoint.owner
            all_headers.update(
                await self.signed_headers(
                    audience, method, target, all_headers["Host"], body, streamed=False
                )
            )
            all_headers = self._with_head(endpoint, all_headers)
        return await self._exchange(method, endpoint, path_qs, all_headers, payload_of(body))

    async def failover(self, endpoint: Endpoint, call: Callable[[Endpoint], Awaitable[T]]) -> T:
        """`call` at each address of `endpoint` until one answers (PeerUnreachable: none did)."""
        urls = [endpoint.url, *endpoint.alternates]
        good = self.answered.get(endpoint.url)
        if good in urls:
            urls.remove(good)
            urls.insert(0, good)
        failure: PeerUnreachable | None = None
        for url in urls:
            try:
                result = await call(Endpoint(url, endpoint.tls, endpoint.owner))
            except PeerUnreachable as exc:
                failure = exc
                continue
            self.answered[endpoint.url] = url
            return result
        assert failure is not None
        raise failure

    # --- the directory -----------------------------------------------------------------------

    async def enroll(self, directory: Endpoint, req: EnrollRequest) -> UserRecord:
        _, payload, _ = await self.request(
            "POST",
            directory,
            DIRECTORY_PREFIX + "/enroll",
            body=req.model_dump_json().encode(),
            signed=False,  # enrollment needs no unlocked keys
        )
        return parse_reply(UserRecord, payload)

    async def directory_changes(self, directory: Endpoint, since: int) -> DirectoryChanges:
        """The changes after cursor `since` (0: every user), PROTOCOL.md §5.4."""
        _, payload, _ = await self.request(
            "GET", directory, f"{DIRECTORY_PREFIX}/users?since={since}"
        )
        return parse_reply(DirectoryChanges, payload)

    async def directory_user(self, directory: Endpoint, username: str) -> DirectoryEntry:
        _, payload, _ = await self.request("GET", directory, f"{DIRECTORY_PREFIX}/users/{username}")
        return parse_reply(DirectoryEntry, payload)

    async def report_presence(self, directory: Endpoint, record: PresenceRecord) -> None:
        await self.request(
            "PUT",
            directory,
            DIRECTORY_PREFIX + "/presence",
            body=record.model_dump_json().encode(),
        )

    async def log_off(self, directory: Endpoint) -> None:
        await self.request("DELETE", directory, DIRECTORY_PREFIX + "/presence")

    async def _to_directory(
        self, method: str, directory: Endpoint, path: str, body: bytes = b""
    ) -> bytes:
        _, payload, _ = await self.request(method, directory, DIRECTORY_PREFIX + path, body=body)
        return payload

    async def put_prekeys(self, directory: Endpoint, upload: PrekeyUpload) -> PrekeyCount:
        body = upload.model_dump_json().encode()
        payload = await self._to_directory("PUT", directory, "/prekeys", body)
        return parse_reply(PrekeyCount, payload)

    async def prekey_count(self, directory: Endpoint) -> PrekeyCount:
        return parse_reply(PrekeyCount, await self._to_directory("GET", directory, "/prekeys"))

    async def claim_prekey(self, directory: Endpoint, username: str) -> PrekeyClaim:
        payload = await self._to_directory("POST", directory, f"/prekeys/{username}/claim")
        return parse_reply(PrekeyClaim, payload)

    # --- peers -------------------------------------------------------------------------------

    async def hello(self, peer: Endpoint) -> Hello:
        """The peer's own word on who it is (a signed hello, PROTOCOL.md §7.1). A daemon that
        does not say (locked, appearing offline, or it does not know us) is not up for us:
        PeerUnreachable."""
        _, payload, _ = await self.request("GET", peer, PEER_PREFIX + "/hello")
        if is_public_hello(payload):
            raise PeerUnreachable(f"{whose(peer)} did not say who it is: it is not up for us.")
        return parse_reply(Hello, payload)

    async def deliver(
        self, peer: Endpoint, envelopes: list[Envelope], *, ack: bool = False
    ) -> BatchResult:
        """POST a batch (a relay asks for the recipient's signed ack). A 4xx that carries
        per-envelope results is returned, not raised."""
        body = EnvelopeBatch(envelopes=envelopes).model_dump_json().encode()
        path = PEER_PREFIX + "/envelopes" + ("?ack=1" if ack else "")
        try:
            _, payload, _ = await self.request("POST", peer, path, body=body)
        except PeerRefused as exc:
            if exc.http_status in (400, 403, 409):
                partial = results_of(exc.payload)
                if partial is not None:
                    return partial
            raise
        return parse_reply(BatchResult, payload)

    # --- relays (PROTOCOL.md §13.3) ----------------------------------------------------------

    async def _post_model(self, peer: Endpoint, path: str, model: BaseModel) -> bytes:
        _, payload, _ = await self.request(
            "POST", peer, PEER_PREFIX + path, body=model.model_dump_json().encode()
        )
        return payload

    async def deposit(self, relay: Endpoint, deposits: list[Deposit]) -> BatchResult:
        """Leave envelopes with a relay. Raises PeerRefused when it took none of them."""
        try:
            payload = await self._post_model(
                relay, "/relay/deposits", DepositBatch(deposits=deposits)
            )
        except PeerRefused as exc:
            if exc.http_status in (400, 429):
                partial = results_of(exc.payload)
                if partial is None:
                    raise exc from None
                if any(r.status != "rejected" for r in partial.results):
                    return partial
            raise
        return parse_reply(BatchResult, payload)

    async def collect(self, relay: Endpoint, limit: int = 256) -> Collected:
        payload = await self._post_model(relay, "/relay/collect", CollectRequest(limit=limit))
        return parse_reply(Collected, payload)

    async def relay_ack(self, relay: Endpoint, ack: RelayAck) -> None:
        await self._post_model(relay, "/relay/ack", ack)

    # --- profiles (PROTOCOL.md §12.1) ----------------------------------------------------------

    async def profile(self, peer: Endpoint) -> Profile:
        """The peer's signed profile, not yet verified (502 `bad_reply` when malformed)."""
        _, payload, _ = await self.request("GET", peer, f"{PEER_PREFIX}/profile")
        return parse_reply(Profile, payload)

    # --- files (PROTOCOL.md §11.3, §11.4) ------------------------------------------------------

    async def transfer_status(self, peer: Endpoint, transfer_id: str, token: str) -> TransferStatus:
        _, payload, _ = await self.request(
            "GET", peer, files_path(transfer_id), headers={TOKEN_HEADER: token}
        )
        return parse_reply(TransferStatus, payload)

    async def send_chunks(
        self,
        peer: Endpoint,
        transfer_id: str,
        token: str,
        start: int,
        length: int,
        body: AsyncIterable[bytes],
    ) -> TransferStatus:
        """PUT sealed chunks start.. as one streamed body of exactly `length` bytes, signed as
        UNSIGNED-PAYLOAD (each chunk is authenticated by its own AEAD tag).

        No total timeout: a large file takes as long as it takes. The receiver cuts off a sender
        that stalls, and the wait for the answer after the last byte is bounded by the client's
        timeout.
        """
        path_qs = f"{files_path(transfer_id)}/chunks?start={start}"
        self.pins.ssl_for(peer)
        target = target_url(peer.url + path_qs)
        host = host_header(target)
        headers = {
            "Host": host,
            "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
            TOKEN_HEADER: token,
            **(await self.signed_headers(peer.owner, "PUT", target, host, b"", streamed=True)),
        }
        headers = self._with_head(peer, headers)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=self.session.timeout.total
        )
        _, payload, _ = await self._exchange("PUT", peer, path_qs, headers, body, timeout)
        return parse_reply(TransferStatus, payload)


def files_path(transfer_id: str) -> str:
    return f"{PEER_PREFIX}/files/{transfer_id}"
