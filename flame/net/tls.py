"""TLS between machines (PROTOCOL.md §1.3): each daemon's peer listener and the directory present a
self-signed certificate, kept in their data folder, whose SHA-256 the other side pins (a daemon's
in its signed presence, the directory's in the invite); and the client's side, how an endpoint is
dialled (`Pins`). Nothing here decides whom to trust: the caller gives the pin.

The certificate names no one (its subject is "flame"): under TLS 1.3 it travels encrypted anyway,
and a prober who fetches it learns a random key, not a user.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yarl import URL

from flame.core.transport import Endpoint, check_address
from flame.errors import FlameError, PeerUnreachable
from flame.net.failures import unreachable
from flame.store.folder import make_private_folder, write_private

CERT_NAME = "tls-cert.pem"
KEY_NAME = "tls-key.pem"
VALID_DAYS = (
    20 * 365
)  # pinned by fingerprint, so expiry protects nothing; renewing would break pins
CONNECT_TIMEOUT_S = 10.0
PINS_MAX = 4096
# The SNI of every call (PROTOCOL.md §1.3): the ClientHello travels in the clear, and the name of
# the machine called (often its owner's) would otherwise be in it. The pin, not a name, is checked.
TLS_SERVER_NAME = "flame"


@dataclass(frozen=True, slots=True)
class Certificate:
    cert_path: Path
    key_path: Path
    fingerprint: bytes  # SHA-256 of the DER certificate

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.3 only: the certificate (and so which server this is) travels encrypted."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.set_alpn_protocols(["http/1.1"])
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def fingerprint_of(der: bytes) -> bytes:
    return hashlib.sha256(der).digest()


def _generate(folder: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flame")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(folder / KEY_NAME, key_pem)  # the key first: a cert alone is made again
    write_private(folder / CERT_NAME, cert.public_bytes(serialization.Encoding.PEM))


def ensure_certificate(folder: Path) -> Certificate:
    """This server's certificate: made on first use (ECDSA P-256), then kept.

    Raises:
        FlameError: the files are there but damaged, with what to do about it.
    """
    make_private_folder(folder)
    cert_path, key_path = folder / CERT_NAME, folder / KEY_NAME
    if not (cert_path.exists() and key_path.exists()):
        _generate(folder)
    key_path.chmod(0o600)
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        certificate = Certificate(
            cert_path, key_path, fingerprint_of(cert.public_bytes(serialization.Encoding.DER))
        )
        certificate.server_context()  # the key matches the certificate and ssl loads both
    except (ValueError, OSError, ssl.SSLError) as exc:
        raise FlameError(
            f"The TLS certificate in {folder} cannot be used ({exc}). Delete {CERT_NAME} and "
            f"{KEY_NAME} there to make a new one (peers learn it from the next presence report; "
            "a directory's new one must be given to every daemon again)."
        ) from exc
    return certificate


async def presented_fingerprint(url: str) -> bytes | None:
    """The SHA-256 of the certificate the directory at `url` presents, unverified: for `flame init`
    to compare with the one given, or show the user, who compares it with the one the directory's
    admin gave. None for a plain http:// address, once something accepts a connection there."""
    target = URL(url)
    context: ssl.SSLContext | None = None
    if target.scheme == "https":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            _, writer = await asyncio.open_connection(
                target.host,
                target.port,
                ssl=context,
                server_hostname=None if context is None else TLS_SERVER_NAME,
            )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise unreachable("the directory", url, exc) from exc
    if context is None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if not der:
        raise PeerUnreachable(f"{target.host}:{target.port} presented no certificate.")
    return fingerprint_of(der)


def whose(endpoint: Endpoint) -> str:
    return "the directory" if endpoint.is_directory else f"{endpoint.owner}'s daemon"


def mismatch_message(endpoint: Endpoint) -> str:
    if endpoint.is_directory:
        return (
            f"The directory at {endpoint.url} presented a TLS certificate other than the one "
            "pinned at enrollment (flame init): refused. Someone may be in the middle, or the "
            "directory's certificate was replaced."
        )
    return (
        f"{endpoint.owner}'s daemon at {endpoint.url} presented a TLS certificate other than the "
        f"one in {endpoint.owner}'s signed presence: refused (someone in the middle, or an old "
        "address)."
    )


class Pins:
    """The client's side: how to dial an endpoint. One aiohttp Fingerprint per certificate, since
    aiohttp pools connections by its identity: a new one per call would open a new TLS connection
    for every request."""

    def __init__(self, plain_http: bool) -> None:
        self.plain_http = plain_http  # http:// endpoints allowed (insecure_plain_http)
        self.known: dict[bytes, aiohttp.Fingerprint] = {}

    def ssl_for(self, endpoint: Endpoint) -> aiohttp.Fingerprint | bool:
        """TLS with its pinned certificate, or plain HTTP (False) where allowed.

        Raises:
            PeerUnreachable: an address that does not parse, or no pin, or plain HTTP while off.
        """
        try:
            check_address(endpoint.url, plain_http=self.plain_http)
        except ValueError as exc:
            raise PeerUnreachable(
                f"Flame does not dial {whose(endpoint)} at {endpoint.url!r}: {exc}."
            ) from None
        if endpoint.url.startswith("http://"):
            return False
        if endpoint.tls is None:
            raise PeerUnreachable(f"No TLS certificate is pinned for {whose(endpoint)}.")
        pin = self.known.get(endpoint.tls)
        if pin is None:
            if len(self.known) >= PINS_MAX:  # certificates come and go; keep it bounded
                self.known.clear()
            pin = self.known[endpoint.tls] = aiohttp.Fingerprint(endpoint.tls)
        return pin
