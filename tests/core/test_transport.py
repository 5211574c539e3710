"""Addresses, pinned certificates and the invite's fingerprint (PROTOCOL.md §1.3, §5.1, §5.3): the
one rule the directory, the readers of presence and the client all apply."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flame.core.encoding import b64e
from flame.core.transport import (
    check_address,
    endpoint,
    invite_token,
    normal_address,
    parse_fingerprint,
    split_invite,
)

PIN = hashlib.sha256(b"a certificate").digest()


@pytest.mark.parametrize(
    ("typed", "address"),
    [
        ("127.0.0.1:8480", "https://127.0.0.1:8480"),
        (" Dir.Example.COM:8480/ ", "https://dir.example.com:8480"),
        ("[::1]:8480", "https://[::1]:8480"),
        ("https://dir.example:8480", "https://dir.example:8480"),
        ("http://dir.example:8480", "http://dir.example:8480"),  # kept, for check_address to judge
        ("", ""),
    ],
)
def test_an_address_without_a_scheme_is_https(typed: str, address: str) -> None:
    assert normal_address(typed) == address
    if address.startswith("https://"):
        assert check_address(normal_address(typed), plain_http=False) == address


@pytest.mark.parametrize(
    "address",
    [
        "https://127.0.0.1:8470",
        "https://alice-laptop.corp.example:8470",
        "https://[::1]:8470",
        "https://[fe80::1]:1",
        "https://dir.example",
        "https://localhost:65535",
    ],
)
def test_a_well_formed_https_address_is_accepted(address: str) -> None:
    assert check_address(address, plain_http=False) == address


@pytest.mark.parametrize(
    "address,reason",
    [
        ("https://127.0.0.1:99999", "port '99999'"),
        ("https://127.0.0.1:0", "port '0'"),
        ("https://127.0.0.1:08470", "port '08470'"),
        ("https://127.0.0.1:", "port ''"),
        ("https://127.0.0.1:80:90", "port '80:90'"),
        ("https://127.0.0.1:http", "port 'http'"),
        ("https://:8470", "no host"),
        ("https://", "no host"),
        ("https://host.example:8470/", "without a path"),
        ("https://host.example:8470/api", "without a path"),
        ("https://host.example/api/v1", "without a path"),
        ("https://host.example:8470?x=1", "without a path or query"),
        ("https://host.example?x=1", "without a path or query"),
        ("https://host.example#top", "without a path or query"),
        ("https://user@host.example:8470", "without a path or query"),
        ("https://user:pw@host.example", "without a path or query"),
        ("http://127.0.0.1:8470", "plain http:// is off"),
        ("ftp://host.example", "not a scheme"),
        ("HTTPS://host.example", "scheme://host"),
        ("https://Host.Example", "not a host name"),
        ("https://host_name.example", "not a host name"),
        ("https://-host.example", "not a host name"),
        ("https://host..example", "not a host name"),
        ("https://256.1.1.1:8470", "not an IPv4 address"),
        ("https://1.2.3:8470", "not an IPv4 address"),
        ("https://[zz::1]:8470", "not an IPv6 address"),
        ("https://[::1:8470", "scheme://host"),
        ("https://hôte.example", "ASCII"),
        ("https://host.example :8470", "not a host name"),
        ("127.0.0.1:8470", "scheme://host"),
        ("", "scheme://host"),
    ],
)
def test_an_address_that_does_not_parse_is_refused_with_the_reason(
    address: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_address(address, plain_http=False)


def test_plain_http_is_accepted_only_when_allowed() -> None:
    assert check_address("http://127.0.0.1:8470", plain_http=True)
    with pytest.raises(ValueError, match="plain http"):
        check_address("http://127.0.0.1:8470", plain_http=False)
    with pytest.raises(ValueError, match="port"):
        check_address("http://127.0.0.1:99999", plain_http=True)


def test_an_https_endpoint_needs_its_fingerprint_and_an_http_one_has_none() -> None:
    pinned = endpoint("https://127.0.0.1:8470", b64e(PIN), "bob", plain_http=False)
    assert (pinned.url, pinned.tls, pinned.owner) == ("https://127.0.0.1:8470", PIN, "bob")
    with pytest.raises(ValueError, match="needs its certificate"):
        endpoint("https://127.0.0.1:8470", None, "bob", plain_http=False)
    with pytest.raises(ValueError, match="carries no certificate"):
        endpoint("http://127.0.0.1:8470", b64e(PIN), "bob", plain_http=True)
    assert endpoint("http://127.0.0.1:8470", None, "bob", plain_http=True).tls is None
    for bad in ("", "abc", b64e(PIN[:31]), b64e(PIN) + "=", b64e(PIN + b"x")):
        with pytest.raises(ValueError, match="fingerprint"):
            endpoint("https://127.0.0.1:8470", bad, "bob", plain_http=False)


def test_the_invite_carries_the_directory_fingerprint() -> None:
    token = invite_token("ABCD-EFGH-IJKL-MNOP-QRST-UVWX", PIN)
    assert token == "ABCD-EFGH-IJKL-MNOP-QRST-UVWX." + b64e(PIN)
    assert split_invite(token) == ("ABCD-EFGH-IJKL-MNOP-QRST-UVWX", PIN)
    assert split_invite(f"  {token}\n") == ("ABCD-EFGH-IJKL-MNOP-QRST-UVWX", PIN)
    assert split_invite("ABCD-EFGH-IJKL-MNOP-QRST-UVWX") == ("ABCD-EFGH-IJKL-MNOP-QRST-UVWX", None)
    with pytest.raises(ValueError, match="fingerprint"):
        split_invite("ABCD-EFGH-IJKL-MNOP-QRST-UVWX.not-a-fingerprint")


@given(st.binary(min_size=32, max_size=32))
def test_a_fingerprint_reads_back_as_written(digest: bytes) -> None:
    assert parse_fingerprint(b64e(digest)) == digest
    assert split_invite(invite_token("CODE", digest)) == ("CODE", digest)
