"""Token buckets by key (a remote address, a username): the rate limits of PROTOCOL.md §12.5.

Pure: the caller passes `now`. Memory is bounded: a flood of distinct keys evicts buckets that are
full again first (they hold no information), then the least recently used.
"""

from __future__ import annotations

import math


class TokenBuckets:
    """Each key gets `burst` tokens, refilled at `rate_per_s`; a request takes one."""

    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 50_000) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self.max_keys = max_keys
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at), LRU order

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        """Take `cost` tokens. Returns 0.0 if they were there, else the seconds until they will
        be (nothing is taken then)."""
        tokens, at = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate_per_s)
        if tokens >= cost:
            tokens -= cost
            wait = 0.0
        else:
            wait = (cost - tokens) / self.rate_per_s
        self.buckets[key] = (tokens, now)
        if len(self.buckets) > self.max_keys:
            self._evict(now)
        return wait

    def retry_after_s(self, wait_s: float) -> int:
        """Whole seconds for a Retry-After header: never 0, so a client always waits."""
        return max(1, math.ceil(wait_s))

    def _evict(self, now: float) -> None:
        refill_s = self.burst / self.rate_per_s
        self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < refill_s}
        overflow = len(self.buckets) - self.max_keys * 3 // 4
        if overflow > 0:  # all recently active: drop the least recently used
            for key in list(self.buckets)[:overflow]:
                del self.buckets[key]
