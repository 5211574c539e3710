"""The tests' cluster: a real directory and real daemons on loopback, in the test's event loop or
as processes. One launcher serves the tests and the dev tools (flame/devtools/cluster.py); these
are its names as the tests import them."""

from __future__ import annotations

from flame.devtools.cluster import Cluster, cluster_context, fast_settings
from flame.devtools.ui import PASSWORD, Feed, UiClient, eventually

__all__ = [
    "PASSWORD",
    "Cluster",
    "Feed",
    "UiClient",
    "cluster_context",
    "eventually",
    "fast_settings",
]
