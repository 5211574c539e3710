"""This user's own profile (PROTOCOL.md §12.1): edited in the UI, signed here, stored, and pushed
to every contact in a `profile_update` envelope through the outbox (so a contact who is offline
gets it when they are back; a newer update replaces a queued older one).

Avatars: the daemon decodes the uploaded image with Pillow, crops it square, resizes it to
256x256 and re-encodes it as WebP of at most 64 KiB, which also drops its metadata (EXIF can
carry where a photo was taken). Only images from this user's own UI are ever decoded here; a
peer's avatar is checked by its header alone (core/image.py) and shown by the browser.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from typing import Any, Final

from PIL import Image, ImageOps, UnidentifiedImageError

from flame.blocks import blocked_names
from flame.core.image import AVATAR_MAX_BYTES, AVATAR_MAX_SIDE
from flame.core.models import Profile, ProfileFields, ProfileUpdateBody
from flame.core.profile import make_profile
from flame.errors import BadRequest, TooLarge
from flame.messaging import send_hidden
from flame.parts import Parts
from flame.people import profile_view
from flame.store import contacts as contact_store
from flame.store import profiles as profile_store

UPLOAD_MAX_BYTES = 3 * 1024 * 1024
MAX_SOURCE_PIXELS = 40_000_000  # refused before decoding: a small file can claim a huge canvas
SOURCE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
QUALITIES = (85, 70, 55, 40, 25)


class Keep:
    """Leave the avatar as it is."""


KEEP: Final = Keep()


async def update_own(
    parts: Parts, fields: ProfileFields | None = None, avatar: bytes | Keep | None = KEEP
) -> dict[str, Any]:
    """Sign and store a new version of this user's profile, then push it to every contact.
    `fields` None keeps the text; `avatar` KEEP keeps the picture, None removes it."""
    identity = parts.require_identity()
    current = await profile_store.get_profile(parts.db, parts.me)
    if fields is None:
        fields = ProfileFields(
            display_name=current.display_name if current else "",
            position=current.position if current else "",
            location=current.location if current else "",
            bio=current.bio if current else "",
        )
    if isinstance(avatar, Keep):
        avatar = current.avatar if current else None
    now = parts.clock.now()
    ts = max(int(now * 1000), current.ts + 1 if current else 0)  # always newer than the last
    profile = make_profile(identity, parts.me, fields, avatar, ts)
    await profile_store.put_profile(parts.db, profile, now)
    view = await profile_view(parts, parts.me)
    parts.hub.publish({"type": "profile", "profile": view})
    await push_profile(parts, profile)
    return view


async def push_profile(parts: Parts, profile: Profile) -> None:
    blocked = await blocked_names(parts)
    targets = [
        contact
        for contact in await contact_store.list_contacts(parts.db)
        if not contact.key_changed and contact.username not in blocked
    ]
    await profile_store.drop_pending_updates(parts.db, [c.username for c in targets])
    if targets:
        await send_hidden(parts, targets, "profile_update", ProfileUpdateBody(profile=profile))


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
