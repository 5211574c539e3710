"""The tests' cluster: a real directory and real daemons on loopback, in the test's event loop or
as processes. One launcher serves the tests and the dev tools (flame/devtools/cluster.py); these
are its names as the tests import them, and the few looks inside a running daemon they need."""

from __future__ import annotations

from flame.core.crypto import Identity
from flame.core.keys import Account
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
    "eventually",
    "fast_settings",
    "identity_of",
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
