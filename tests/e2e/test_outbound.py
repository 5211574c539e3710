"""Every outbound call goes through one place (PROTOCOL.md §1.3): TLS with the server's certificate
pinned, never a redirect followed, never an address that does not parse, plain HTTP only by its
setting. The real client against small TLS servers made here with the daemons' own certificates.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from flame.core.crypto import Identity, KdfParams, new_db_key, seal_keystore
from flame.core.keys import Account, Keys
from flame.core.transport import Endpoint
from flame.errors import FlameError, PeerRefused, PeerUnreachable
from flame.net.peer_client import PeerClient
from flame.net.server import Listener
from flame.net.tls import CERT_NAME, KEY_NAME, Certificate, ensure_certificate
from tests.cluster import Cluster, services_of

HELLO = {
    "username": "bob",
    "identity_key": "x",
    "versions": [1],
    "features": [],
    "locked": False,
}


@dataclass
class Server:
    """bob's peer port as a test controls it: what each path answers, and who asked."""

    certificate: Certificate
    listener: Listener | None = None
    hits: list[str] = field(default_factory=list)
    clients: set[int] = field(default_factory=set)  # the client ports of the connections used

    @property
    def url(self) -> str:
        assert self.listener is not None
        return f"https://127.0.0.1:{self.listener.port}"

    def endpoint(self, tls: bytes | None = None, owner: str = "bob") -> Endpoint:
        return Endpoint(self.url, tls or self.certificate.fingerprint, owner)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    found = Server(ensure_certificate(tmp_path / "bob"))

    async def answer(request: web.Request) -> web.StreamResponse:
        found.hits.append(request.path)
        found.clients.add(
            request.transport.get_extra_info("peername")[1] if request.transport else 0
        )
        if request.path == "/api/v1/hello":
            return web.json_response(HELLO)
        if request.path == "/api/v1/profile":  # a redirect, to a path of its own
            raise web.HTTPTemporaryRedirect("/elsewhere")
        if request.path == "/dir/v1/users":  # a redirect, to plain HTTP elsewhere
            raise web.HTTPMovedPermanently("http://127.0.0.1:9/steal")
        return web.json_response({"taken": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    found.listener = Listener(app, "127.0.0.1", 0, ssl_context=found.certificate.server_context())
    await found.listener.start()
    try:
        yield found
    finally:
        await found.listener.stop()


@pytest.fixture
async def client() -> AsyncIterator[PeerClient]:
    identity = Identity.generate()
    sealed = seal_keystore(identity, new_db_key(), "alice", "a password", KdfParams(64, 1, 1))
    account = Account(
        "alice",
        identity.identity_key,
        identity.x25519_key,
        identity.binding_signature("alice"),
        sealed,
    )
    keys = Keys(account)
    keys.unlock(identity)
    peer_client = PeerClient(keys, 5.0, lambda: 1_700_000_000.0)
    try:
        yield peer_client
    finally:
        await peer_client.close()


async def test_the_pinned_certificate_is_accepted(server: Server, client: PeerClient) -> None:
    hello = await client.hello(server.endpoint())
    assert hello.username == "bob" and server.hits == ["/api/v1/hello"]


async def test_calls_to_one_server_share_one_tls_connection(
    server: Server, client: PeerClient
) -> None:
    for _ in range(5):
        await client.hello(server.endpoint())
    assert len(server.hits) == 5 and len(server.clients) == 1


async def test_another_certificate_is_refused_before_any_request_is_sent(
    server: Server, client: PeerClient
) -> None:
    with pytest.raises(PeerUnreachable) as refused:
        await client.hello(server.endpoint(tls=bytes(32)))
    assert refused.value.message == (
        f"bob's daemon at {server.url} presented a TLS certificate other than the one in bob's "
        "signed presence: refused (someone in the middle, or an old address)."
    )
    with pytest.raises(PeerUnreachable) as refused:
        await client.directory_changes(server.endpoint(tls=bytes(32), owner="directory"), 0)
    assert refused.value.message.startswith(f"The directory at {server.url} presented a TLS")
    assert "pinned at enrollment (flame init)" in refused.value.message
    assert server.hits == []  # neither request reached the server


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/v1/profile", 307), ("/dir/v1/users", 301)],
)
async def test_a_redirect_is_refused_and_never_followed(
    server: Server, client: PeerClient, path: str, status: int
) -> None:
    peer = server.endpoint(owner="directory" if path.startswith("/dir") else "bob")
    with pytest.raises(PeerRefused) as refused:
        if path.startswith("/dir"):
            await client.directory_changes(peer, 0)
        else:
            await client.profile(peer)
    assert (refused.value.http_status, refused.value.code) == (status, "redirect")
    assert "which Flame never follows" in refused.value.message
    assert server.hits == [path]  # the first answer only: nothing went where it pointed


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1:99999", "port '99999'"),
        ("https://:8470", "no host"),
        ("https://127.0.0.1:8470/api", "without a path"),
        ("https://127.0.0.1:8470?x=1", "without a path or query"),
        ("http://127.0.0.1:8470", "plain http:// is off"),
    ],
)
async def test_an_address_that_does_not_parse_is_never_dialled(
    client: PeerClient, url: str, reason: str
) -> None:
    with pytest.raises(PeerUnreachable) as refused:
        await client.hello(Endpoint(url, bytes(32), "mallory"))
    assert refused.value.message.startswith(f"Flame does not dial mallory's daemon at {url!r}")
    assert reason in refused.value.message


async def test_https_without_a_pin_is_not_dialled(server: Server, client: PeerClient) -> None:
    with pytest.raises(PeerUnreachable, match="No TLS certificate is pinned for bob's daemon"):
        await client.hello(Endpoint(server.url, None, "bob"))
    assert server.hits == []


def test_the_certificate_is_made_once_kept_private_and_loads_in_ssl(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path)
    assert (tmp_path / KEY_NAME).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / CERT_NAME).stat().st_mode & 0o777 == 0o600
    again = ensure_certificate(tmp_path)
    assert again.fingerprint == first.fingerprint  # kept: peers and invites pinned it
    context = first.server_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    (tmp_path / KEY_NAME).chmod(0o644)
    ensure_certificate(tmp_path)
    assert (tmp_path / KEY_NAME).stat().st_mode & 0o777 == 0o600  # tightened again
    (tmp_path / CERT_NAME).write_text("not a certificate")
    with pytest.raises(FlameError, match="cannot be used") as damaged:
        ensure_certificate(tmp_path)
    assert "Delete tls-cert.pem and tls-key.pem" in str(damaged.value)


async def test_only_tls_1_3_is_spoken(server: Server) -> None:
    """TLS 1.2 would send the certificate in the clear, so the network would see it."""
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(server.url + "/api/v1/hello", ssl=old)
    assert server.hits == []


async def test_plain_http_only_by_its_setting_and_never_silently(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A bench may run on plain HTTP by saying so on every side; an account enrolled that way,
    started with the setting off, serves TLS and never dials its directory in the clear: it says
    why and works from its cache."""
    plain: dict[str, Any] = {"insecure_plain_http": True}
    directory = await cluster.start_directory(**plain)
    assert directory.url.startswith("http://") and directory.tls_fingerprint is None
    settings = await cluster.enroll("alice", **plain)
    alice = await cluster.start_daemon("alice", settings=settings)
    presence = services_of(alice).presence
    assert presence.address.startswith("http://") and presence.tls is None
    await cluster.stop_daemon("alice")

    # The same folder, with settings that leave plain HTTP off (the default).
    alice = await cluster.start_daemon("alice", directory_url="https://127.0.0.1:9")
    services = services_of(alice)
    assert services.presence.address.startswith("https://")
    assert services.presence.tls is not None and services.presence.tls == alice.tls_fingerprint
    assert any("no certificate pinned for the directory" in r.getMessage() for r in caplog.records)
    with pytest.raises(PeerUnreachable, match=r"plain http:// is off"):
        await services.client.directory_changes(services.contacts.directory, 0)
