"""Summaries of timings for the bench's and the chaos harness's figures, and their tables."""

from __future__ import annotations


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return 0.0
    position = fraction * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summary_ms(seconds: list[float], digits: int = 3) -> dict[str, float]:
    """Count, min, mean, p50, p90, p99 and max, in milliseconds rounded to `digits`."""
    values = sorted(s * 1000 for s in seconds)
    return {
        "count": len(values),
        "min": round(values[0], digits) if values else 0.0,
        "mean": round(sum(values) / len(values), digits) if values else 0.0,
        "p50": round(percentile(values, 0.50), digits),
        "p90": round(percentile(values, 0.90), digits),
        "p99": round(percentile(values, 0.99), digits),
        "max": round(values[-1], digits) if values else 0.0,
    }


def print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    """A title, then a column of labels and one of values; a row of two empty strings is a blank
    line."""
    width = max(len(label) for label, _ in rows)
    print()
    print(title)
    print("=" * len(title))
    for label, value in rows:
        print(f"{label:<{width}}  {value}" if label or value else "")
    print(flush=True)
