"""Token buckets (PROTOCOL.md §12.5): a burst, then the rate; bounded under a flood of keys."""

from __future__ import annotations

from flame.core.ratelimit import TokenBuckets


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    buckets = TokenBuckets(rate_per_s=2.0, burst=3)
    assert [buckets.take("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 100.0) == 0.5  # one token comes back every 0.5 s
    assert buckets.take("b", 100.0) == 0.0  # keys are separate
    assert buckets.take("a", 100.5) == 0.0
    assert buckets.take("a", 100.5) > 0
    assert buckets.take("a", 200.0) == 0.0  # refilled, never beyond the burst
    assert [buckets.take("a", 200.0) for _ in range(3)][-1] > 0
    assert buckets.retry_after_s(0.01) == 1 and buckets.retry_after_s(2.2) == 3


def test_buckets_stay_bounded_under_a_flood_of_keys() -> None:
    buckets = TokenBuckets(rate_per_s=1.0, burst=5, max_keys=1000)
    for n in range(10_000):
        buckets.take(f"10.0.{n // 256}.{n % 256}", 1000.0 + n * 0.001)
    assert len(buckets.buckets) <= 1000
    assert buckets.take("10.0.39.15", 1010.0) == 0.0  # the newest keys are the ones kept
