"""Avatar images (PROTOCOL.md §12.1): their type and size, read from the header bytes only, so a
peer's image is checked without ever being decoded here. No I/O here."""

from __future__ import annotations

import struct

from flame.errors import BadRequest

AVATAR_MAX_BYTES = 64 * 1024
AVATAR_MAX_SIDE = 256
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")


def check_image(data: bytes) -> tuple[str, int, int]:
    """The type and size of a PNG, JPEG or WebP image, read from its header (the daemon never
    decodes a peer's image); raises BadRequest for anything else or anything too large."""
    if len(data) > AVATAR_MAX_BYTES:
        raise BadRequest(
            f"The avatar is {len(data)} bytes; the limit is {AVATAR_MAX_BYTES}.",
            code="avatar_too_large",
        )
    kind, width, height = image_header(data)
    if not (1 <= width <= AVATAR_MAX_SIDE and 1 <= height <= AVATAR_MAX_SIDE):
        raise BadRequest(
            f"The avatar is {width}x{height} pixels; the limit is {AVATAR_MAX_SIDE} a side.",
            code="avatar_too_large",
        )
    return kind, width, height


def image_header(data: bytes) -> tuple[str, int, int]:
    """(MIME type, width, height) from the first bytes of a PNG, JPEG or WebP file."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return "image/png", width, height
        if data.startswith(b"\xff\xd8\xff"):
            return ("image/jpeg", *_jpeg_size(data))
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return ("image/webp", *_webp_size(data))
    except (struct.error, IndexError) as exc:
        raise BadRequest("The avatar image is truncated.", code="bad_avatar") from exc
    raise BadRequest("The avatar must be a PNG, JPEG or WebP image.", code="bad_avatar")


# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            break
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        if marker == 0xDA or length < 2:  # image data before any frame header: malformed
            break
        index += 2 + length
    raise BadRequest("The avatar's JPEG header has no frame size.", code="bad_avatar")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    raise BadRequest("The avatar's WebP header is not understood.", code="bad_avatar")
