"""The schema-driven fuzzer (PROTOCOL.md §16) in brief: a few hundred signed requests drawn from
the served OpenAPI documents, none answered 500. `make fuzz-schema` sends 20,000."""

from __future__ import annotations

from pathlib import Path

from flame.devtools.fuzz_schema import fuzz


async def test_signed_requests_drawn_from_the_served_schemas_never_get_a_500(
    tmp_path: Path,
) -> None:
    outcome = await fuzz(tmp_path, 400)
    assert outcome.sent == 400
    assert outcome.errors == []
    assert outcome.statuses[200] > 0  # some were valid enough to be served
    assert sum(n for status, n in outcome.statuses.items() if 400 <= status < 500) > 100
