"""How Flame reaches a server (PROTOCOL.md §1.3): the form of an address, the certificate pinned
for it, and the invite that carries the directory's (§5.1) and its key log's key (§18.1). No I/O
here.

An address is `https://host[:port]` and nothing more: no user, path, query or fragment. Plain
`http://` is allowed only where the settings say so (`insecure_plain_http`), and then carries no
pin. Every rule about addresses lives here: the directory refuses a presence record that breaks
one, readers skip it, and the client never dials one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from flame.core.encoding import b64d, b64e
from flame.errors import BadRequest

FINGERPRINT_BYTES = 32  # SHA-256 of the certificate's DER bytes
ADDRESS_RE = re.compile(
    r"^(?P<scheme>[a-z]+)://(?P<host>\[[^\]]*\]|[^:/?#\[\]@]*)(?::(?P<port>[^/?#@]*))?$"
)
LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PORT_RE = re.compile(r"^[1-9][0-9]{0,4}$")
INVITE_SEPARATOR = "."  # neither base32 nor base64url uses it


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A server to call: its base URL, the SHA-256 of the certificate it must present (None: plain
    HTTP), and whose it is, for messages ("directory" or a username). `alternates`: other
    addresses of the same server (directory processes sharing one database and certificate),
    tried in turn when one does not answer."""

    url: str
    tls: bytes | None
    owner: str
    alternates: tuple[str, ...] = ()

    @property
    def is_directory(self) -> bool:
        return self.owner == "directory"


def _check_host(host: str) -> None:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host} is not an IPv6 address") from None
        return
    if not host:
        raise ValueError("it names no host")
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{host} is not an IPv4 address") from None
        return
    labels = host.split(".")
    if len(host) > 253 or not all(LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is not a host name (lowercase letters, digits, '-' and '.')")


def check_address(address: str, *, plain_http: bool) -> str:
    """The address if it is `https://host[:port]` (or `http://` when `plain_http`).

    Raises:
        ValueError: with the reason, for the directory's 400 and the readers' log.
    """
    if not address.isascii():
        raise ValueError("the address must be ASCII")
    found = ADDRESS_RE.fullmatch(address)
    if found is None:
        raise ValueError("the address must be scheme://host[:port], without a path or query")
    schemes = ("https", "http") if plain_http else ("https",)
    if found["scheme"] not in schemes:
        raise ValueError(
            "the address must start with https:// (plain http:// is off)"
            if found["scheme"] == "http"
            else f"{found['scheme']}:// is not a scheme Flame speaks; use https://"
        )
    _check_host(found["host"])
    port = found["port"]
    if port is not None and not (PORT_RE.fullmatch(port) and int(port) <= 65535):
        raise ValueError(f"port {port!r} is not a port number from 1 to 65535")
    return address


def normal_address(text: str) -> str:
    """An address as a person types it, in the form `check_address` wants: without a scheme it is
    `https://` (`127.0.0.1:8480` is `https://127.0.0.1:8480`), a trailing `/` goes, and the host
    is lowercase (the address has no path, so nothing else can care about case)."""
    address = text.strip().rstrip("/")
    if address and "://" not in address:
        address = "https://" + address
    return address.lower() if address.isascii() else address


def endpoint(address: str, tls: str | None, owner: str, *, plain_http: bool) -> Endpoint:
    """An endpoint from a published address and certificate fingerprint (b64u): `https://` needs
    the fingerprint, `http://` (only with `plain_http`) has none.

    Raises:
        ValueError: with the reason.
    """
    check_address(address, plain_http=plain_http)
    if address.startswith("https://"):
        if tls is None:
            raise ValueError("an https:// address needs its certificate's fingerprint (tls)")
        return Endpoint(address, parse_fingerprint(tls), owner)
    if tls is not None:
        raise ValueError("an http:// address carries no certificate fingerprint (tls is null)")
    return Endpoint(address, None, owner)


def parse_fingerprint(text: str) -> bytes:
    """A certificate fingerprint as written: b64u of 32 bytes (43 characters).

    Raises:
        ValueError: with the reason.
    """
    try:
        return b64d(text.strip(), length=FINGERPRINT_BYTES, what="the certificate fingerprint")
    except BadRequest as exc:
        raise ValueError(f"{exc.message} (43 characters of base64url)") from None


def fingerprint_text(digest: bytes) -> str:
    return b64e(digest)


def invite_token(code: str, directory_tls: bytes, log_key: bytes | None = None) -> str:
    """What `flame directory invite` prints: the one-time code, the directory's certificate
    fingerprint and its key log's public key, one string to copy (PROTOCOL.md §5.1, §18.1)."""
    token = f"{code}{INVITE_SEPARATOR}{fingerprint_text(directory_tls)}"
    return token if log_key is None else f"{token}{INVITE_SEPARATOR}{b64e(log_key)}"


def _invite_parts(token: str) -> tuple[str, str | None, str | None]:
    code, separator, rest = token.strip().partition(INVITE_SEPARATOR)
    fingerprint, second, log_key = rest.partition(INVITE_SEPARATOR)
    return code, fingerprint if separator else None, log_key if second else None


def split_invite(token: str) -> tuple[str, bytes | None]:
    """The code and, when the token carries one, the directory's fingerprint.

    Raises:
        ValueError: a fingerprint part that does not parse.
    """
    code, fingerprint, _ = _invite_parts(token)
    return code, parse_fingerprint(fingerprint) if fingerprint is not None else None


def invite_log_key(token: str) -> bytes | None:
    """The directory's key log public key, when the token carries one (its third part).

    Raises:
        ValueError: one that does not parse.
    """
    _, _, text = _invite_parts(token)
    if text is None:
        return None
    try:
        return b64d(text, length=32, what="the key log's public key")
    except BadRequest as exc:
        raise ValueError(f"{exc.message} (43 characters of base64url)") from None
