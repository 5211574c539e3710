"""The retry schedule for outgoing envelopes. Pure: callers pass the time and the randomness."""

from __future__ import annotations


def next_attempt(
    attempts: int,
    now: float,
    *,
    base_s: float,
    max_s: float,
    jitter: float,
    retry_after_s: float | None = None,
) -> float:
    """When to try again after `attempts` failed tries.

    Exponential backoff with full jitter in [delay/2, delay]: `jitter` is a number in [0, 1) from
    the caller. A peer's Retry-After is honoured as a floor.
    """
    delay: float = min(max_s, base_s * 2.0 ** min(attempts, 30))
    delay = delay / 2 + (delay / 2) * jitter
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return now + delay
