"""Avatars (PROTOCOL.md §12.1): the daemon decodes the user's uploaded image with Pillow, crops it
square, resizes it to 256x256 and re-encodes it as WebP of at most 64 KiB, which also drops its
metadata (EXIF can carry where a photo was taken).

Only images from this user's own UI are ever decoded here; a peer's avatar is checked by its
header alone (core/image.py) and shown by the browser.
"""

from __future__ import annotations

import asyncio
import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from flame.core.image import AVATAR_MAX_BYTES, AVATAR_MAX_SIDE
from flame.errors import BadRequest, TooLarge

UPLOAD_MAX_BYTES = 3 * 1024 * 1024
MAX_SOURCE_PIXELS = 40_000_000  # refused before decoding: a small file can claim a huge canvas
SOURCE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
QUALITIES = (85, 70, 55, 40, 25)


async def prepare_avatar(data: bytes) -> bytes:
    """An uploaded image, made into this user's avatar (in a thread: decoding is CPU work)."""
    if len(data) > UPLOAD_MAX_BYTES:
        raise TooLarge(
            f"The image is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MiB; pick a smaller "
            "one.",
            code="avatar_too_large",
        )
    return await asyncio.to_thread(resize_avatar, data)


def resize_avatar(data: bytes) -> bytes:
    unreadable = BadRequest("The avatar must be a PNG, JPEG, WebP or GIF image.", code="bad_avatar")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=SOURCE_FORMATS) as source:
                width, height = source.size
                if width * height > MAX_SOURCE_PIXELS:
                    raise TooLarge(
                        f"The image is {width}x{height} pixels; pick one of at most "
                        f"{MAX_SOURCE_PIXELS // 1_000_000} megapixels.",
                        code="avatar_too_large",
                    )
                source.draft("RGB", (2 * AVATAR_MAX_SIDE, 2 * AVATAR_MAX_SIDE))  # JPEG: cheap
                upright = ImageOps.exif_transpose(source)
                has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
                image = upright.convert("RGBA" if has_alpha else "RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise unreadable from exc
    except Image.DecompressionBombWarning as exc:
        raise TooLarge("The image is too large to be an avatar.", code="avatar_too_large") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
        raise unreadable from exc
    side = AVATAR_MAX_SIDE
    square = ImageOps.fit(image, (side, side), Image.Resampling.LANCZOS)
    for quality in QUALITIES:
        out = io.BytesIO()
        square.save(out, "WEBP", quality=quality, method=4)
        if out.tell() <= AVATAR_MAX_BYTES:
            return out.getvalue()
    raise TooLarge("The image does not fit in an avatar.", code="avatar_too_large")
