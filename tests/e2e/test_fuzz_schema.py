"""The schema-driven fuzzer (PROTOCOL.md §16) in full, as `make fuzz-schema` runs it: 20,000 signed
requests drawn from the served OpenAPI documents of the remote and directory APIs, none answered
500."""

from __future__ import annotations

from pathlib import Path

from flame.devtools.fuzz_schema import fuzz

REQUESTS = 20_000


async def test_signed_requests_drawn_from_the_served_schemas_never_get_a_500(
    tmp_path: Path,
) -> None:
    outcome = await fuzz(tmp_path, REQUESTS)
    assert outcome.sent == REQUESTS
    assert outcome.errors == []
    assert outcome.statuses[200] > 0  # some were valid enough to be served
    refused = sum(n for status, n in outcome.statuses.items() if 400 <= status < 500)
    assert refused > REQUESTS // 2  # most are hostile, and each got its 4xx
