"""Why an outbound connection failed, in words a person can act on: "connection refused: is the
directory running at https://...?", never an exception's class name. The peer client and the
certificate probe of `flame init` map every failure through here."""

from __future__ import annotations

import socket
import ssl

import aiohttp

from flame.errors import PeerUnreachable

REFUSED = "connection refused"
TIMED_OUT = "no answer in time"
# Failures that most often mean nothing listens there: the message asks whether it runs.
NOTHING_THERE = (REFUSED, TIMED_OUT)


def failure_reason(exc: BaseException) -> str:
    """A few words for what went wrong, from the exception aiohttp, ssl or the socket raised."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return "no such host"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "the TLS handshake failed (is it a Flame server, speaking TLS?)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts included
        return TIMED_OUT
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection closed before an answer"
    if isinstance(exc, ConnectionResetError | aiohttp.ClientConnectionResetError):
        return "the connection was reset"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer was cut off"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "the answer was not HTTP"
    if isinstance(exc, ValueError):  # aiohttp and yarl refusing an address or an answer
        return "the address or the answer does not parse"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]  # "network is unreachable", ...
    return "the connection failed"


def unreachable(who: str, url: str, exc: BaseException) -> PeerUnreachable:
    """The error for a call to `who` ("the directory", "bob's daemon") at `url` that failed."""
    reason = failure_reason(exc)
    if reason in NOTHING_THERE:
        return PeerUnreachable(f"{reason}: is {who} running at {url}?")
    return PeerUnreachable(f"Cannot reach {who} at {url}: {reason}.")
