"""core/files.py: chunk sealing, the chunk layout, offer rules, names, media sniffing, progress.
Plain functions, no event loop; hypothesis where a property covers more than examples."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from flame.core.encoding import b64e
from flame.core.files import (
    ChunkCipher,
    Layout,
    ProgressMeter,
    check_offer,
    content_disposition,
    is_normal_name,
    media_class,
    normalize_media_type,
    sanitize_name,
    sniff_media,
)
from flame.core.models import FileOfferBody
from flame.errors import BadEnvelope, DecryptionFailed

KEY = bytes(range(32))
TID = bytes(range(100, 116))
PROTOCOL = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()


def test_a_chunk_opens_only_at_its_own_index_transfer_and_key() -> None:
    cipher = ChunkCipher(KEY, TID)
    sealed = cipher.seal(3, b"quarterly figures")
    assert len(sealed) == len(b"quarterly figures") + 16
    assert cipher.open(3, sealed) == b"quarterly figures"
    attempts: list[Callable[[], bytes]] = [
        lambda: cipher.open(2, sealed),  # replayed at another index
        lambda: ChunkCipher(KEY, bytes(16)).open(3, sealed),  # another transfer
        lambda: ChunkCipher(bytes(32), TID).open(3, sealed),  # another key
        lambda: cipher.open(3, sealed[:-1] + bytes([sealed[-1] ^ 1])),  # a flipped tag bit
        lambda: cipher.open(3, bytes([sealed[0] ^ 0x80]) + sealed[1:]),  # a flipped data bit
    ]
    for wrong in attempts:
        with pytest.raises(DecryptionFailed) as refused:
            wrong()
        assert refused.value.code == "bad_chunk"


@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=2**40))
def test_seal_then_open_is_the_identity(chunk: bytes, index: int) -> None:
    cipher = ChunkCipher(KEY, TID)
    assert cipher.open(index, cipher.seal(index, chunk)) == chunk


def test_the_vector_of_protocol_11_matches_code_and_the_text() -> None:
    block = PROTOCOL[PROTOCOL.index("<!-- file-vector:begin") :]
    opening = block.index("```json") + len("```json")
    vector = json.loads(block[opening : block.index("```", opening)])
    key, tid = bytes.fromhex(vector["key_hex"]), bytes.fromhex(vector["transfer_id_hex"])
    index, chunk = vector["index"], vector["chunk"].encode()
    sealed = ChunkCipher(key, tid).seal(index, chunk)
    assert sealed.hex() == vector["sealed_hex"]
    # Independently, from §11.4's text: nonce and associated data spelled out.
    nonce = bytes(4) + index.to_bytes(8, "big")
    aad = b"flame/v1/file-chunk\x00" + tid + index.to_bytes(8, "big")
    assert nonce.hex() == vector["nonce_hex"] and aad.hex() == vector["aad_hex"]
    assert AESGCM(key).encrypt(nonce, chunk, aad) == sealed


def test_the_layout_counts_chunks_and_sealed_bytes() -> None:
    layout = Layout(size=10, chunk_bytes=4)  # 4 + 4 + 2
    assert layout.count == 3
    assert [layout.plain_len(i) for i in range(3)] == [4, 4, 2]
    assert layout.sealed_bytes(0) == 10 + 3 * 16
    assert layout.sealed_bytes(1) == 6 + 2 * 16 and layout.sealed_bytes(3) == 0
    assert layout.sealed_bytes(0, 2) == 8 + 2 * 16
    assert [layout.held_chunks(n) for n in (0, 3, 4, 9, 10)] == [0, 0, 1, 2, 3]
    with pytest.raises(IndexError):
        layout.plain_len(3)
    assert Layout(size=8, chunk_bytes=4).count == 2


def offer(**changes: object) -> FileOfferBody:
    fields: dict[str, object] = {
        "transfer_id": b64e(TID),
        "name": "report.pdf",
        "size": 1000,
        "media_type": "application/pdf",
        "sha256": b64e(bytes(32)),
        "key": b64e(KEY),
        "token": b64e(bytes(32)),
        "chunk_bytes": 1024 * 1024,
    }
    fields.update(changes)
    return FileOfferBody.model_validate(fields)


def test_offer_rules_refuse_with_a_reason() -> None:
    assert check_offer(offer(), 2000).size == 1000
    cases = {
        "bad_file_name": [
            offer(name="../../etc/passwd"),
            offer(name="con.txt\u202e"),
            offer(name="a\x00b"),
            offer(name=""),
        ],
        "file_too_large": [offer(size=2001)],
        "bad_chunk_size": [offer(chunk_bytes=1024), offer(chunk_bytes=5 * 1024 * 1024)],
        "bad_envelope": [offer(key="short"), offer(sha256="!!"), offer(media_type="no type")],
    }
    for code, bodies in cases.items():
        for body in bodies:
            with pytest.raises(BadEnvelope) as refused:
                check_offer(body, 2000)
            assert refused.value.code == code, body


def test_an_offer_may_leave_out_its_hash_only_when_it_is_streamed() -> None:
    """The hash then trails the chunks (PROTOCOL.md §11.4); an inline offer and a group's carry it."""
    streamed = offer(sha256=None)
    assert "sha256" not in streamed.model_dump()  # absent on the wire, never null
    assert check_offer(streamed, 2000).sha256 is None
    for body, hash_first in ((offer(sha256=None, data=b64e(bytes(1000))), False), (streamed, True)):
        with pytest.raises(BadEnvelope) as refused:
            check_offer(body, 2000, hash_first=hash_first)
        assert refused.value.code == "bad_envelope"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\system32\\cmd.exe", "cmd.exe"),
        ("con.txt\u202e", "_con.txt"),
        ("CON", "_CON"),
        ("lpt1.tar.gz", "_lpt1.tar.gz"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # the bidi override is gone
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("tab\tand\nnewline.txt", "tabandnewline.txt"),
        ('what?*<>|":.txt', "what_______.txt"),
        ("..", "file"),
        ("   ", "file"),
        (".bashrc", "bashrc"),
        ("trailing. . .", "trailing"),
        ("Cafe\u0301.txt", "Café.txt"),  # NFC
        ("Board pack \u2013 Q3 (final).pdf", "Board pack \u2013 Q3 (final).pdf"),
    ],
)
def test_names_are_sanitised(raw: str, clean: str) -> None:
    assert sanitize_name(raw) == clean
    assert is_normal_name(clean)


def test_long_names_keep_their_extension_within_255_bytes() -> None:
    name = sanitize_name("é" * 300 + ".docx")
    assert name.endswith(".docx") and len(name.encode()) <= 255


@pytest.mark.parametrize(
    ("extension", "kept"),
    [
        ("longextension16b", True),  # 16 bytes, the dot not counted (PROTOCOL.md §11.2's example)
        ("a" * 16, True),
        ("é" * 8, True),  # 16 UTF-8 bytes in 8 characters
        ("longextension17by", False),
        ("é" * 8 + "a", False),
    ],
)
def test_an_extension_of_at_most_16_bytes_not_counting_the_dot_is_kept_when_a_name_is_cut(
    extension: str, kept: bool
) -> None:
    name = sanitize_name("x" * 300 + "." + extension)
    assert len(name.encode()) == 255
    assert name.endswith("." + extension) is kept
    if not kept:
        assert name == "x" * 255  # cut like any name: the long "extension" is not kept


@given(st.text(max_size=400))
def test_any_name_sanitises_to_a_safe_stable_name(raw: str) -> None:
    name = sanitize_name(raw)
    assert name and sanitize_name(name) == name
    assert "/" not in name and "\\" not in name and name not in (".", "..")
    assert len(name.encode()) <= 255
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in name)
    assert not re.match(r"(?i)^(con|prn|aux|nul|com\d|lpt\d)(\.|$)", name)


@pytest.mark.parametrize(
    ("head", "media_type"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(8), "image/png"),
        (b"\xff\xd8\xff\xe0" + bytes(8), "image/jpeg"),
        (b"GIF89a" + bytes(8), "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"fLaC\x00", "audio/flac"),
        (b"ID3\x04\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64", "audio/mpeg"),
        (b"\x00\x00\x00\x20ftypisom", "video/mp4"),
        (b"\x00\x00\x00\x20ftypM4A ", "audio/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', None),
        (b"<!doctype html><script>alert(1)</script>", None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_media_is_recognised_by_magic_bytes_only(head: bytes, media_type: str | None) -> None:
    assert sniff_media(head) == media_type


def test_media_classes_and_declared_types() -> None:
    assert [media_class(t) for t in ("image/webp", "audio/ogg", "video/mp4")] == [
        "image",
        "audio",
        "video",
    ]
    assert media_class("image/svg+xml") is None and media_class(None) is None
    assert normalize_media_type("Image/PNG; charset=x") == "image/png"
    assert normalize_media_type("") == "application/octet-stream"
    assert normalize_media_type("<script>") == "application/octet-stream"


def test_content_disposition_carries_an_ascii_fallback_and_the_exact_name() -> None:
    value = content_disposition('Q3 "final" \u2013 \u20ac.pdf', inline=False)
    assert value.startswith('attachment; filename="Q3 _final_ _ _.pdf"; ')
    assert value.endswith("filename*=UTF-8''Q3%20%22final%22%20%E2%80%93%20%E2%82%AC.pdf")
    assert content_disposition("a.png", inline=True).startswith("inline;")


def test_progress_meter_gives_rate_and_time_left_and_spaces_out_events() -> None:
    meter = ProgressMeter(size=1000, started_at=0.0)
    meter.update(0.0, 0)
    assert meter.rate_bps() == 0.0 and meter.eta_s() is None
    meter.update(1.0, 100)
    meter.update(2.0, 200)
    assert meter.rate_bps() == pytest.approx(100.0)
    assert meter.eta_s() == pytest.approx(8.0)
    assert meter.due(2.0) and not meter.due(2.1) and meter.due(2.3)
    for second in range(3, 20):
        meter.update(float(second), second * 100)
    assert len(meter.samples) <= 6  # a sliding window, not the whole history


def test_a_caption_is_absent_unless_written_and_never_empty() -> None:
    """PROTOCOL.md §11.2: an offer without a caption is byte for byte what it was before
    captions (older receivers take it); an empty one, or one past 16,000 characters, is refused."""
    assert "caption" not in offer().model_dump()
    assert "caption" not in json.loads(offer().stored_json())
    captioned = offer(caption="Signed copy, see https://example.com/q3")
    assert json.loads(captioned.stored_json())["caption"] == captioned.caption
    assert offer(caption="x" * 16_000).caption == "x" * 16_000
    for bad in ("", "x" * 16_001, 7):
        with pytest.raises(ValidationError):
            offer(caption=bad)
