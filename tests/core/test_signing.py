"""Signed requests and signed records (PROTOCOL.md §4)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flame.core.crypto import Identity
from flame.core.encoding import b64e
from flame.core.models import PresenceRecord
from flame.core.presence import make_presence, verify_presence
from flame.core.signing import (
    MAX_SKEW_S,
    NonceCache,
    SignedRequest,
    record_message,
    request_string,
    sign_record,
    sign_request,
    verify_record,
)
from flame.errors import AuthError

ALICE = Identity.generate()
MALLORY = Identity.generate()
NOW = 1_700_000_000
FAST = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
REQUEST: dict[str, Any] = {
    "method": "POST",
    "path_qs": "/api/v1/envelopes",
    "host": "bob.example:8470",
    "body": b'{"envelopes":[]}',
}


def signed_headers(
    identity: Identity = ALICE, timestamp: int = NOW, **changes: Any
) -> dict[str, str]:
    request = {**REQUEST, **changes}
    return sign_request(
        identity,
        "alice",
        "bob",
        request["method"],
        request["path_qs"],
        request["host"],
        request["body"],
        timestamp,
    )


def check(
    headers: dict[str, str],
    *,
    now: float = NOW,
    not_before: float = NOW - 60,
    audience: str = "bob",
    **changes: Any,
) -> None:
    request = {**REQUEST, **changes}
    SignedRequest.from_headers(headers).check(
        ALICE.identity_key,
        method=request["method"],
        path_qs=request["path_qs"],
        host=request["host"],
        expected_audience=audience,
        body=request["body"],
        now=now,
        not_before=not_before,
    )


def refused(code: str, headers: dict[str, str], **kwargs: Any) -> None:
    with pytest.raises(AuthError) as caught:
        check(headers, **kwargs)
    assert caught.value.code == code
    assert caught.value.status == 401


# --- requests ------------------------------------------------------------------------------


def test_signed_request_verifies() -> None:
    check(signed_headers())


def test_request_string_is_the_documented_nine_lines() -> None:
    empty_sha = hashlib.sha256(b"").hexdigest()
    assert request_string("get", "/dir/v1/users?x=1", "h:1", "alice", "directory", 5, "n", b"") == (
        f"FLAME-REQUEST-V1\nGET\n/dir/v1/users?x=1\nh:1\nalice\ndirectory\n5\nn\n{empty_sha}".encode()
    )


def test_headers_carry_user_audience_time_nonce_and_signature() -> None:
    headers = signed_headers()
    assert set(headers) == {
        "Flame-User",
        "Flame-To",
        "Flame-Timestamp",
        "Flame-Nonce",
        "Flame-Signature",
    }
    assert headers["Flame-User"] == "alice"
    assert headers["Flame-To"] == "bob"
    assert headers["Flame-Timestamp"] == str(NOW)
    assert signed_headers()["Flame-Nonce"] != headers["Flame-Nonce"]


@pytest.mark.parametrize(
    "change",
    [
        {"method": "PUT"},
        {"method": "GET"},
        {"path_qs": "/api/v1/envelopes?x=1"},
        {"path_qs": "/api/v1/hello"},
        {"path_qs": "/api/v1/envelopes/"},
        {"host": "bob.example:8471"},
        {"host": "carol.example:8470"},
        {"body": b'{"envelopes":[] }'},
        {"body": b""},
    ],
    ids=lambda change: f"{next(iter(change))}={next(iter(change.values()))!r}",
)
def test_any_change_to_the_request_fails(change: dict[str, Any]) -> None:
    refused("bad_signature", signed_headers(), **change)


def test_lower_case_method_is_the_same_request() -> None:
    check(signed_headers(method="post"))


@pytest.mark.parametrize(
    "header,value",
    [
        ("Flame-User", "mallory"),
        ("Flame-Timestamp", str(NOW + 1)),
        ("Flame-Timestamp", str(NOW - 1)),
        ("Flame-Nonce", b64e(bytes(16))),
        ("Flame-Signature", b64e(bytes(64))),
    ],
)
def test_any_change_to_a_signed_header_fails(header: str, value: str) -> None:
    headers = {**signed_headers(), header: value}
    refused("bad_signature", headers)


def test_changed_audience_fails_even_where_it_is_expected() -> None:
    headers = {**signed_headers(), "Flame-To": "carol"}
    refused("bad_signature", headers, audience="carol")


def test_request_for_someone_else_is_wrong_audience() -> None:
    refused("wrong_audience", signed_headers(), audience="carol")
    refused("wrong_audience", signed_headers(), audience="directory")


def test_signature_by_another_key_fails() -> None:
    refused("bad_signature", signed_headers(MALLORY))


@pytest.mark.parametrize("offset", [MAX_SKEW_S + 1, -(MAX_SKEW_S + 1), 10_000, -10_000])
def test_stale_timestamp_is_refused(offset: int) -> None:
    refused("stale_request", signed_headers(), now=NOW + offset, not_before=0)


@pytest.mark.parametrize("offset", [MAX_SKEW_S, -MAX_SKEW_S, 0])
def test_timestamp_at_the_edge_of_the_window_is_accepted(offset: int) -> None:
    check(signed_headers(), now=NOW + offset, not_before=0)


def test_request_signed_before_the_process_started_is_refused() -> None:
    refused("stale_request", signed_headers(), now=NOW + 10, not_before=NOW + 1)
    check(signed_headers(), now=NOW + 10, not_before=NOW)


@pytest.mark.parametrize(
    "missing", ["Flame-User", "Flame-To", "Flame-Timestamp", "Flame-Nonce", "Flame-Signature"]
)
def test_missing_header_is_unsigned(missing: str) -> None:
    headers = signed_headers()
    del headers[missing]
    with pytest.raises(AuthError) as caught:
        SignedRequest.from_headers(headers)
    assert caught.value.code == "unsigned"


@pytest.mark.parametrize(
    "header,value",
    [
        ("Flame-Timestamp", ""),
        ("Flame-Timestamp", "-1"),
        ("Flame-Timestamp", "1.5"),
        ("Flame-Timestamp", "17e8"),
        ("Flame-Timestamp", "1" * 13),
        ("Flame-Nonce", b64e(bytes(15))),
        ("Flame-Nonce", b64e(bytes(16)) + "="),
        ("Flame-Signature", b64e(bytes(63))),
        ("Flame-Signature", "not base64!"),
    ],
)
def test_malformed_header_is_a_bad_signature(header: str, value: str) -> None:
    headers = {**signed_headers(), header: value}
    with pytest.raises(AuthError) as caught:
        SignedRequest.from_headers(headers)
    assert caught.value.code == "bad_signature"


@FAST
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path_qs=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60),
    host=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
    body=st.binary(max_size=300),
    skew=st.integers(-MAX_SKEW_S, MAX_SKEW_S),
)
def test_any_request_verifies_and_any_other_body_does_not(
    method: str, path_qs: str, host: str, body: bytes, skew: int
) -> None:
    headers = signed_headers(method=method, path_qs=path_qs, host=host, body=body)
    check(headers, now=NOW + skew, method=method, path_qs=path_qs, host=host, body=body)
    with pytest.raises(AuthError):
        check(headers, method=method, path_qs=path_qs, host=host, body=body + b"x")


# --- the nonce cache -----------------------------------------------------------------------


def test_nonce_cache_refuses_a_replay() -> None:
    cache = NonceCache()
    cache.check_and_add("alice", "n1", NOW)
    with pytest.raises(AuthError) as caught:
        cache.check_and_add("alice", "n1", NOW + 1)
    assert caught.value.code == "replayed"


def test_nonce_cache_keys_by_user_and_nonce() -> None:
    cache = NonceCache()
    cache.check_and_add("alice", "n1", NOW)
    cache.check_and_add("bob", "n1", NOW)
    cache.check_and_add("alice", "n2", NOW)


def test_nonce_is_remembered_as_long_as_its_timestamp_could_be_accepted() -> None:
    """A request stamped t is accepted until t + 300; first seen as early as t - 300, its nonce
    must be remembered 600 s."""
    cache = NonceCache()
    first_seen = NOW - MAX_SKEW_S
    cache.check_and_add("alice", "n1", first_seen)
    with pytest.raises(AuthError):
        cache.check_and_add("alice", "n1", NOW + MAX_SKEW_S - 0.001)
    cache.check_and_add("alice", "n1", first_seen + 2 * MAX_SKEW_S)


def test_full_nonce_cache_refuses_then_forgets_expired_nonces() -> None:
    cache = NonceCache(window_s=10, max_entries=4)
    for index in range(4):
        cache.check_and_add("alice", f"n{index}", NOW)
    with pytest.raises(AuthError) as caught:
        cache.check_and_add("alice", "n4", NOW + 1)
    assert caught.value.code == "replayed"
    cache.check_and_add("alice", "n4", NOW + 11)
    assert len(cache.seen) == 1


def test_signed_request_and_nonce_cache_together_stop_a_replay() -> None:
    headers = signed_headers()
    cache = NonceCache()
    for attempt in range(2):
        check(headers)
        signed = SignedRequest.from_headers(headers)
        if attempt == 0:
            cache.check_and_add(signed.user, signed.nonce, NOW)
        else:
            with pytest.raises(AuthError):
                cache.check_and_add(signed.user, signed.nonce, NOW + 5)


# --- signed records ------------------------------------------------------------------------

TLS = hashlib.sha256(b"alice's certificate").digest()
FIELDS: dict[str, Any] = {
    "username": "alice",
    "address": "https://alice.example:8470",
    "tls": b64e(TLS),
    "status": "online",
    "versions": [1],
    "ts": NOW,
}


def test_record_message_is_context_line_then_canonical_json() -> None:
    assert record_message("presence", {"b": 1, "a": "x"}) == b'flame/v1/presence\n{"a":"x","b":1}'


def test_signed_record_verifies_whatever_the_key_order() -> None:
    sig = sign_record(ALICE, "presence", FIELDS)
    reordered = dict(reversed(list(FIELDS.items())))
    assert verify_record(ALICE.identity_key, "presence", reordered, sig)


@pytest.mark.parametrize(
    "field,value",
    [
        ("username", "mallory"),
        ("address", "https://mallory.example:8470"),
        ("tls", b64e(bytes(32))),
        ("tls", None),
        ("status", "away"),
        ("versions", [1, 2]),
        ("versions", []),
        ("ts", NOW + 1),
    ],
)
def test_tampered_record_field_fails(field: str, value: Any) -> None:
    sig = sign_record(ALICE, "presence", FIELDS)
    assert not verify_record(ALICE.identity_key, "presence", {**FIELDS, field: value}, sig)


def test_record_with_an_added_or_removed_field_fails() -> None:
    sig = sign_record(ALICE, "presence", FIELDS)
    assert not verify_record(ALICE.identity_key, "presence", {**FIELDS, "extra": 1}, sig)
    assert not verify_record(
        ALICE.identity_key, "presence", {k: v for k, v in FIELDS.items() if k != "ts"}, sig
    )


def test_record_signature_is_bound_to_its_context_and_key() -> None:
    sig = sign_record(ALICE, "presence", FIELDS)
    assert not verify_record(ALICE.identity_key, "enroll", FIELDS, sig)
    assert not verify_record(MALLORY.identity_key, "presence", FIELDS, sig)


@pytest.mark.parametrize("sig", ["", "!!", b64e(bytes(63)), b64e(bytes(64)), b64e(bytes(64)) + "="])
def test_malformed_record_signature_is_false_not_an_error(sig: str) -> None:
    assert not verify_record(ALICE.identity_key, "presence", FIELDS, sig)


def test_presence_record_verifies_and_tampering_fails() -> None:
    record = make_presence(ALICE, "alice", FIELDS["address"], "online", [1], NOW, tls=TLS)
    assert verify_presence(record, ALICE.identity_key)
    assert not verify_presence(record, MALLORY.identity_key)
    changes: list[dict[str, Any]] = [
        {"username": "mallory"},
        {"address": "https://evil.example:1"},
        {"tls": b64e(hashlib.sha256(b"mallory's certificate").digest())},
        {"status": "busy"},
        {"versions": [2]},
        {"ts": NOW - 1},
    ]
    for change in changes:
        tampered = PresenceRecord.model_validate({**record.model_dump(), **change})
        assert not verify_presence(tampered, ALICE.identity_key), change
