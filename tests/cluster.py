"""The tests' cluster: a real directory and real daemons on loopback, in the test's event loop or
as processes. One launcher serves the tests and the dev tools (flame/devtools/cluster.py); these
are its names as the tests import them, and the few looks inside a running daemon they need."""

from __future__ import annotations

import aiohttp

from flame.core.crypto import Identity
from flame.core.keys import Account
from flame.core.transport import Endpoint
from flame.daemon import Daemon
from flame.devtools.cluster import Cluster, cluster_context, fast_settings
from flame.devtools.ui import PASSWORD, Feed, UiClient, eventually
from flame.net.verify import RequestVerifier
from flame.services.registry import Services

__all__ = [
    "PASSWORD",
    "Cluster",
    "Feed",
    "UiClient",
    "account_of",
    "cluster_context",
    "directory_tls",
    "eventually",
    "fast_settings",
    "identity_of",
    "peer_endpoint",
    "peer_tls",
    "peer_url",
    "services_of",
    "verifier_of",
]


def services_of(node: Daemon) -> Services:
    """A running daemon's services, for tests that look inside."""
    assert node.services is not None
    return node.services


def account_of(node: Daemon) -> Account:
    """Who a daemon is (username, public keys), locked or not: its keystore record."""
    assert node.holder is not None
    return node.holder.account


def identity_of(node: Daemon) -> Identity:
    return services_of(node).ctx.keys.identity()


def verifier_of(node: Daemon) -> RequestVerifier:
    """The verifier of a daemon's signed peer requests (its per-caller limits)."""
    assert node.verifier is not None
    return node.verifier


def peer_url(node: Daemon) -> str:
    """The base URL of a daemon's peer listener (TLS) on loopback."""
    return f"https://127.0.0.1:{node.peer_port}"


def peer_tls(node: Daemon) -> aiohttp.Fingerprint:
    """The pin of a daemon's peer certificate, for a test's own aiohttp requests (`ssl=`)."""
    assert node.tls_fingerprint is not None
    return aiohttp.Fingerprint(node.tls_fingerprint)


def peer_endpoint(node: Daemon) -> Endpoint:
    """A daemon's peer listener as another daemon's client calls it."""
    return Endpoint(peer_url(node), node.tls_fingerprint, services_of(node).ctx.me)


def directory_tls(cluster: Cluster) -> aiohttp.Fingerprint:
    """The pin of the cluster's directory certificate, for a test's own requests (`ssl=`)."""
    assert cluster.directory_tls is not None
    return aiohttp.Fingerprint(cluster.directory_tls)
