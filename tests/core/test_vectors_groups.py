"""The group vectors of docs/PROTOCOL.md §19.6, checked three ways: recomputed with the real code,
the signed bytes and hashes rebuilt from the section's text with bare primitives, and the
membership of each set of operations computed by the rule of §19.3.

A deliberate change means regenerating them: .venv/bin/python tools/gen_vectors_groups.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flame.core import groups
from flame.core.envelope import encode_inner
from flame.core.group_models import GroupOp
from flame.core.models import Inner
from tests.core.test_vectors import vectors_block

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import gen_vectors_groups  # type: ignore[import-not-found]  # noqa: E402


def load() -> dict[str, Any]:
    return vectors_block("group-vectors", "§19.6")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_code_reproduces_the_vectors() -> None:
    assert load() == gen_vectors_groups.build()


def test_the_signed_bytes_and_hashes_follow_the_text_of_the_section() -> None:
    vectors = load()
    users = vectors["inputs"]["users"]
    for item in vectors["outputs"]["ops"]:
        fields = {k: v for k, v in item["op"].items() if k != "sig"}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        message = b"flame/v1/group-op\n" + canonical.encode()
        assert message.decode() == item["op_message"]
        assert b64u(hashlib.sha256(message).digest()) == item["hash"]
        key = Ed25519PrivateKey.from_private_bytes(
            bytes.fromhex(users[fields["author"]]["ed25519_private_hex"])
        )
        assert b64u(key.sign(message)) == item["op"]["sig"]
        key.public_key().verify(base64.urlsafe_b64decode(item["op"]["sig"] + "=="), message)


def test_the_memberships_follow_the_rule() -> None:
    outputs = load()["outputs"]
    ops = [GroupOp.model_validate(item["op"]) for item in outputs["ops"]]
    hashes = [item["hash"] for item in outputs["ops"]]
    after_promote = groups.resolve(dict(zip(hashes[:2], ops[:2], strict=True)))
    after_all = groups.resolve(dict(zip(hashes, ops, strict=True)))
    assert after_promote is not None and after_all is not None
    assert sorted(after_promote.admins) == outputs["membership_after_promote"]["admins"]
    assert (
        sorted(after_all.members)
        == outputs["membership_after_all"]["members"]
        == [
            "alice",
            "carol",
        ]
    )
    assert sorted(after_all.void) == outputs["membership_after_all"]["void"] == [hashes[3]]


def test_the_group_text_inner_message_parses_back() -> None:
    raw = load()["outputs"]["group_text_inner"]
    inner = Inner.model_validate_json(raw)
    assert encode_inner(inner).decode() == raw
    assert inner.kind == "group_text"


def test_the_group_file_vector_follows_section_19_7() -> None:
    """The `group_file` inner message parses back; its recipients are the membership at its
    heads but the author, in byte order; each one's sources are the recipients before it,
    nearest first, then the author; its last chunk is sealed as §11.4 says, with bare AES-GCM."""
    vector = load()
    spec, out = vector["inputs"]["file"], vector["outputs"]["group_file"]
    inner = Inner.model_validate_json(out["group_file_inner"])
    assert encode_inner(inner).decode() == out["group_file_inner"]
    assert inner.kind == "group_file" and inner.seq == 0
    body = inner.model_dump(by_alias=True)["body"]
    content = (spec["content"] * spec["repeat"]).encode()
    offer = body["offer"]
    assert offer["size"] == len(content) and "data" not in offer
    assert offer["sha256"] == b64u(hashlib.sha256(content).digest())
    assert offer["key"] == b64u(bytes.fromhex(spec["key_hex"]))
    # heads: the promote, after which alice, bob and carol are members.
    assert body["heads"] == vector["outputs"]["membership_after_promote"]["heads"]
    members = vector["outputs"]["membership_after_promote"]["members"]
    recipients = sorted((m for m in members if m != "alice"), key=str.encode)
    assert out["recipients"] == recipients
    for index, member in enumerate(recipients):
        assert out["sources"][member] == [*reversed(recipients[:index]), "alice"]
    size = spec["chunk_bytes"]
    last = (len(content) - 1) // size
    assert out["chunks"] == last + 1
    transfer_id = bytes.fromhex(spec["transfer_id_hex"])
    nonce = bytes(4) + last.to_bytes(8, "big")
    aad = b"flame/v1/file-chunk\x00" + transfer_id + last.to_bytes(8, "big")
    sealed = AESGCM(bytes.fromhex(spec["key_hex"])).encrypt(nonce, content[last * size :], aad)
    assert out["sealed_last_chunk_hex"] == sealed.hex()
