"""docs/PROTOCOL.md stays in step with the code: the sections the code cites exist, and every
error code the wire-facing modules can send is in the §8 table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLAME = ROOT / "flame"
PROTOCOL = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")

# Modules whose errors reach peers or the directory's clients.
WIRE_MODULES = [
    FLAME / "errors.py",
    *sorted((FLAME / "core").glob("*.py")),
    *sorted((FLAME / "directory").glob("*.py")),
    *sorted((FLAME / "net").glob("*.py")),
    *sorted((FLAME / "api" / "peer").glob("*.py")),
    # The services behind the peer routes: what they refuse reaches the caller as is.
    FLAME / "services" / "inbox.py",
    FLAME / "services" / "relay.py",
    FLAME / "services" / "files" / "offers.py",
    FLAME / "services" / "files" / "chunks.py",
]
NOT_ON_THE_WIRE = {"error", "config_error"}  # the base class and local configuration errors
# Named in §8's prose rather than its table: outbound-only failures and the browser's login.
OUTSIDE_THE_TABLE = {
    *("unreachable", "peer_refused", "redirect", "wrong_password", "bad_reply", "key_log_refused"),
}
CODE_PATTERNS = [
    re.compile(r"\bcode\s*=\s*\"([a-z_]+)\""),  # code="..." and class attributes code = "..."
    re.compile(r"\b\d{3}:\s*\"([a-z_]+)\""),  # the middleware's {404: "not_found", ...}
    re.compile(r"json_error\(\s*\d{3},\s*\"([a-z_]+)\""),
    re.compile(r"_rejected\(\s*\w+,\s*\"([a-z_]+)\""),  # per-envelope refusals of a relay
]


def section(number: str) -> str:
    start = PROTOCOL.index(f"\n## {number}. ")
    end = PROTOCOL.find("\n## ", start + 1)
    return PROTOCOL[start : end if end != -1 else None]


def test_numbered_sections_are_in_place() -> None:
    headings = re.findall(r"^## (\d+)\. ", PROTOCOL, re.M)
    assert headings[:10] == [str(n) for n in range(1, 11)]
    numbers = [int(h) for h in headings]
    assert numbers == sorted(set(numbers))  # later sections only add, in order
    assert 11 in numbers  # files


def test_sections_cited_in_the_code_exist() -> None:
    """Code comments cite "PROTOCOL.md §N"; each cited section must still be there."""
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", PROTOCOL, re.M))
    cited: set[str] = set()
    for path in FLAME.rglob("*.py"):
        cited.update(re.findall(r"PROTOCOL\.md §(\d+(?:\.\d+)?)", path.read_text()))
    assert cited, "expected the code to cite PROTOCOL.md"
    assert cited <= headings, sorted(cited - headings)


def test_every_wire_error_code_is_in_the_table() -> None:
    table = set(re.findall(r"^\| `([a-z_]+)` \| (?:\d{3}|other) \|", section("8"), re.M))
    codes: set[str] = set()
    for path in WIRE_MODULES:
        text = path.read_text(encoding="utf-8")
        for pattern in CODE_PATTERNS:
            codes.update(pattern.findall(text))
    codes -= NOT_ON_THE_WIRE
    assert {"bad_signature", "stale_request", "invite_used", "rejected"} <= codes
    assert codes - OUTSIDE_THE_TABLE <= table, sorted(codes - OUTSIDE_THE_TABLE - table)
    for code in OUTSIDE_THE_TABLE:
        assert f"`{code}`" in section("8"), code


def test_envelope_codes_of_the_receiver_are_in_the_table() -> None:
    table = section("8")
    for code in ("wrong_recipient", "unknown_sender", "sender_key_mismatch", "locked"):
        assert f"| `{code}` |" in table


def learns_table(text: str) -> str:
    start = text.index("<!-- learns:begin -->")
    return text[start : text.index("<!-- learns:end -->", start)]


def test_readme_and_protocol_state_the_same_table_of_what_each_party_learns() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = learns_table(PROTOCOL)
    assert table in section("15")
    assert learns_table(readme) == table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].split(" | ")[1:] == [
        "the directory",
        "a relay",
        "the network, passive",
        "the network, active on the path |",
    ]
    assert len(rows) > 8
