"""Profiles: edited in the UI, signed by their owner, pushed to contacts as they change, fetched
and verified, cached; tampered or oversized ones are refused with a reason."""

from __future__ import annotations

import base64
import io
import urllib.parse
from typing import Any

import aiohttp
import pytest
from hypothesis import strategies as st
from PIL import Image

from flame.core.crypto import Identity, fingerprint
from flame.core.envelope import new_message_id, seal
from flame.core.image import AVATAR_MAX_BYTES, AVATAR_MAX_SIDE, check_image, image_header
from flame.core.models import Inner, Profile, ProfileFields, ProfileUpdateBody
from flame.core.profile import make_profile, verify_profile
from flame.errors import BadRequest
from flame.store import profiles as profile_store
from tests.cluster import Cluster, Feed, identity_of, services_of
from tests.e2e.test_hostile_input import BODIES, samples
from tests.social import (
    online_for,
    post_envelopes,
    sealed,
    signed_request,
)

HEADERS = st.dictionaries(
    st.sampled_from(
        ["Flame-User", "Flame-To", "Flame-Timestamp", "Flame-Nonce", "Flame-Signature"]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=90),
)
ALICE = {
    "display_name": "Alice Liddell",
    "position": "Chief Executive",
    "location": "Oxford",
    "bio": "Curious.\nVery curious.",
}


def image_bytes(size: tuple[int, int], fmt: str, mode: str = "RGB", **save: Any) -> bytes:
    image = Image.new(mode, size)
    for x in range(0, size[0], max(1, size[0] // 16)):  # some content, so encoders work
        for y in range(0, size[1], max(1, size[1] // 16)):
            image.putpixel((x, y), (x % 256, y % 256, 90) if mode == "RGB" else 255)
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def profile_event(feed_event: dict[str, Any], name: str, **fields: Any) -> bool:
    if feed_event["type"] != "profile" or feed_event["profile"]["username"] != name:
        return False
    return all(feed_event["profile"][key] == value for key, value in fields.items())


# --- pure ---------------------------------------------------------------------------------------


def test_a_profile_verifies_only_unchanged_and_for_its_owner() -> None:
    identity, other = Identity.generate(), Identity.generate()
    profile = make_profile(identity, "alice", ProfileFields(**ALICE), None, 1_700_000_000_000)
    assert verify_profile(profile, "alice", identity.identity_key)
    assert not verify_profile(profile, "alice", other.identity_key)
    assert not verify_profile(profile, "bob", identity.identity_key)
    for field, value in (("display_name", "Mallory"), ("bio", ""), ("ts", profile.ts + 1)):
        assert not verify_profile(
            profile.model_copy(update={field: value}), "alice", identity.identity_key
        )
    assert Profile.model_validate_json(profile.model_dump_json()) == profile


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("display_name", "x" * 65),
        ("position", "x" * 101),
        ("location", "x" * 101),
        ("bio", "x" * 1001),
        ("display_name", "two\nlines"),
        ("display_name", "bell\a"),
        ("bio", "nul\x00"),
    ],
)
def test_profile_fields_have_limits(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        ProfileFields(**{**ALICE, field: value})


def test_image_headers_are_read_without_decoding() -> None:
    cases = [
        (image_bytes((40, 30), "PNG"), "image/png"),
        (image_bytes((40, 30), "JPEG", quality=80), "image/jpeg"),
        (image_bytes((40, 30), "JPEG", progressive=True), "image/jpeg"),
        (image_bytes((40, 30), "WEBP", quality=80), "image/webp"),
        (image_bytes((40, 30), "WEBP", lossless=True), "image/webp"),
        (image_bytes((40, 30), "WEBP", mode="RGBA", quality=80), "image/webp"),
    ]
    for data, kind in cases:
        assert image_header(data) == (kind, 40, 30)
        assert check_image(data) == (kind, 40, 30)
    for bad in (b"", b"GIF89a....", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"\xff\xd8\xff"):
        with pytest.raises(BadRequest):
            check_image(bad)
    big = image_bytes((AVATAR_MAX_SIDE + 1, 10), "PNG")
    with pytest.raises(BadRequest, match="pixels"):
        check_image(big)
    with pytest.raises(BadRequest, match="bytes"):
        check_image(big + b"\0" * AVATAR_MAX_BYTES)
    with pytest.raises(BadRequest):
        check_image(cases[0][0][:20])  # truncated inside the header


# --- the daemons ----------------------------------------------------------------------------------


async def test_edit_push_fetch_and_verify(trio: Cluster) -> None:
    await online_for(trio, "alice", "bob", "carol")
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    bob_feed = await bob_ui.websocket()

    status, view = await alice_ui.put("/ui/api/profile", ALICE)
    assert status == 200, view
    assert {k: view[k] for k in ALICE} == ALICE and view["is_me"]
    status, own = await alice_ui.get("/ui/api/profile")
    assert status == 200 and own["display_name"] == "Alice Liddell"

    # Pushed: bob's page learns of it without asking.
    event = await bob_feed.wait_for(lambda e: profile_event(e, "alice", **ALICE))
    alice_fp = fingerprint(services_of(trio.daemons["alice"]).ctx.keys.account.identity_key)
    assert event["profile"]["fingerprint"] == alice_fp
    status, seen = await bob_ui.get("/ui/api/profiles/alice")
    assert status == 200 and seen["display_name"] == "Alice Liddell"
    assert seen["fingerprint"] == alice_fp and seen["safety_number"]
    _, contacts = await bob_ui.get("/ui/api/contacts")
    alice_row = next(c for c in contacts["contacts"] if c["username"] == "alice")
    assert (alice_row["display_name"], alice_row["position"]) == (
        "Alice Liddell",
        "Chief Executive",
    )
    # The push is not a message: nothing shows in the conversation.
    assert await bob_ui.messages("alice") == []
    assert await alice_ui.messages("bob") == []

    # Fetched: dave joins later, and his daemon asks alice's when he opens her page.
    dave = await trio.add_user("dave")
    dave_ui = await trio.ui("dave")
    dave_feed = await dave_ui.websocket()
    await dave_ui.wait_status(dave_feed, "alice", "online")
    status, first = await dave_ui.get("/ui/api/profiles/alice")
    assert status == 200 and first["fingerprint"] == alice_fp
    if first["display_name"] != "Alice Liddell":
        await dave_feed.wait_for(lambda e: profile_event(e, "alice", **ALICE))
    cached = await profile_store.get_profile(services_of(dave).ctx.db, "alice")
    assert cached is not None and verify_profile(
        cached.record(), "alice", services_of(trio.daemons["alice"]).ctx.keys.account.identity_key
    )

    # The remote route itself answers with the signed record.
    status, record, _ = await signed_request(
        trio.daemons["bob"], trio.daemons["alice"], "GET", "/api/v1/profile"
    )
    assert status == 200 and record["display_name"] == "Alice Liddell" and record["sig"]

    # A newer edit replaces it everywhere; an older record never rolls it back.
    old = await profile_store.get_profile(services_of(trio.daemons["bob"]).ctx.db, "alice")
    assert old is not None
    await alice_ui.put("/ui/api/profile", {**ALICE, "position": "Queen"})
    await bob_feed.wait_for(lambda e: profile_event(e, "alice", position="Queen"))
    bob_services = services_of(trio.daemons["bob"])
    assert not await bob_services.profiles.accept("alice", old.record(), "replayed")
    again = await profile_store.get_profile(bob_services.ctx.db, "alice")
    assert again is not None and again.position == "Queen"


async def wait_rejected(feed: Feed, name: str) -> dict[str, Any]:
    return await feed.wait_for(lambda e: e["type"] == "profile_rejected" and e["username"] == name)


async def test_a_tampered_profile_is_ignored_and_reported(trio: Cluster) -> None:
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    await online_for(trio, "alice", "bob")
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    bob_feed = await bob_ui.websocket()
    await alice_ui.put("/ui/api/profile", ALICE)
    await bob_feed.wait_for(lambda e: profile_event(e, "alice", **ALICE))

    # Fetched: alice's stored record is changed without her key (a newer ts, a new name).
    await services_of(alice).ctx.db.execute(
        "UPDATE profiles SET display_name='Mallory', ts=ts+1000 WHERE username='alice'"
    )
    await bob_ui.get("/ui/api/profiles/alice")
    event = await wait_rejected(bob_feed, "alice")
    assert "signature" in event["reason"]
    cached = await profile_store.get_profile(services_of(bob).ctx.db, "alice")
    assert cached is not None and cached.display_name == "Alice Liddell"

    # Pushed: a real envelope from alice, carrying a profile whose signature does not match.
    stored = await profile_store.get_profile(services_of(alice).ctx.db, "alice")
    assert stored is not None
    forged = stored.record()  # 'Mallory' under alice's signature over 'Alice Liddell'
    envelope = sealed(alice, bob, ProfileUpdateBody(profile=forged), kind="profile_update")
    status, reply, _ = await post_envelopes(alice, bob, [envelope])
    assert status == 200 and reply["results"][0]["status"] == "duplicate"  # taken, not kept
    await wait_rejected(bob_feed, "alice")
    # Signed by someone else entirely (carol's key, alice's name).
    by_carol = make_profile(
        identity_of(trio.daemons["carol"]), "alice", ProfileFields(display_name="Eve"), None, 1
    )
    envelope = sealed(alice, bob, ProfileUpdateBody(profile=by_carol), kind="profile_update")
    status, _, _ = await post_envelopes(alice, bob, [envelope])
    await wait_rejected(bob_feed, "alice")
    # A profile of someone else inside alice's envelope is not alice's to send.
    carol_profile = make_profile(
        identity_of(trio.daemons["carol"]), "carol", ProfileFields(display_name="C"), None, 1
    )
    envelope = sealed(alice, bob, ProfileUpdateBody(profile=carol_profile), kind="profile_update")
    await post_envelopes(alice, bob, [envelope])
    await wait_rejected(bob_feed, "alice")
    cached = await profile_store.get_profile(services_of(bob).ctx.db, "alice")
    assert cached is not None and cached.display_name == "Alice Liddell"
    assert await profile_store.get_profile(services_of(bob).ctx.db, "carol") is None


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({**ALICE, "display_name": "x" * 65}, 400, "display_name"),
        ({**ALICE, "bio": "x" * 1001}, 400, "bio"),
        ({**ALICE, "position": "a\nb"}, 400, "position"),
        ({**ALICE, "extra": 1}, 400, "extra"),
        ({**ALICE, "location": 5}, 400, "location"),
        ([1, 2], 400, "object"),
    ],
)
async def test_bad_profile_fields_are_refused_with_a_reason(
    trio: Cluster, body: Any, status: int, says: str
) -> None:
    alice_ui = await trio.ui("alice")
    answer_status, answer = await alice_ui.put("/ui/api/profile", body)
    assert answer_status == status and says in answer["message"], answer
    assert answer["error"] == "bad_request"
    assert (
        await profile_store.get_profile(services_of(trio.daemons["alice"]).ctx.db, "alice") is None
    )


async def test_avatars_are_resized_checked_and_served_safely(trio: Cluster) -> None:
    await online_for(trio, "alice", "bob")
    alice_ui, bob_ui = await trio.ui("alice"), await trio.ui("bob")
    bob_feed = await bob_ui.websocket()
    photo = image_bytes((900, 600), "JPEG", quality=95)
    status, view = await alice_ui.put(
        "/ui/api/profile/avatar", {"image": base64.b64encode(photo).decode()}
    )
    assert status == 200, view
    assert view["avatar_url"].startswith("/ui/api/profiles/alice/avatar?v=")
    stored = await profile_store.get_profile(services_of(trio.daemons["alice"]).ctx.db, "alice")
    assert stored is not None and stored.avatar is not None
    assert check_image(stored.avatar) == ("image/webp", AVATAR_MAX_SIDE, AVATAR_MAX_SIDE)
    assert len(stored.avatar) <= AVATAR_MAX_BYTES

    async with alice_ui.session.get(view["avatar_url"]) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/webp"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert await response.read() == stored.avatar

    # bob got it with the push, and serves the same bytes to his browser.
    event = await bob_feed.wait_for(
        lambda e: profile_event(e, "alice") and e["profile"]["avatar_url"] is not None
    )
    async with bob_ui.session.get(event["profile"]["avatar_url"]) as response:
        assert response.status == 200 and await response.read() == stored.avatar

    # Bad uploads: refused with a reason, the avatar unchanged.
    huge_canvas = image_bytes((7000, 7000), "PNG", mode="1")
    for image, code in (
        (base64.b64encode(b"not an image at all").decode(), "bad_avatar"),
        ("!!! not base64 !!!", "bad_avatar"),
        (base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode(), "bad_avatar"),
        (base64.b64encode(huge_canvas).decode(), "avatar_too_large"),
        (base64.b64encode(b"\x89PNG" + b"\0" * (3 * 1024 * 1024)).decode(), "avatar_too_large"),
    ):
        status, answer = await alice_ui.put("/ui/api/profile/avatar", {"image": image})
        assert 400 <= status < 500 and answer["error"] == code, answer
        assert answer["message"]
    same = await profile_store.get_profile(services_of(trio.daemons["alice"]).ctx.db, "alice")
    assert same is not None and same.avatar == stored.avatar

    # Removed: gone for everyone.
    status, view = await alice_ui.put("/ui/api/profile/avatar", {"image": None})
    assert status == 200 and view["avatar_url"] is None
    await bob_feed.wait_for(lambda e: profile_event(e, "alice", avatar_url=None))
    status, answer = await bob_ui.get("/ui/api/profiles/alice/avatar")
    assert (status, answer["error"]) == (404, "no_avatar")


async def test_a_peers_oversized_avatar_is_refused(trio: Cluster) -> None:
    """A peer cannot plant an image beyond the limits: the inner message does not parse."""
    alice, bob = trio.daemons["alice"], trio.daemons["bob"]
    big = image_bytes((AVATAR_MAX_SIDE * 2, AVATAR_MAX_SIDE * 2), "PNG")
    profile = Profile.model_construct(
        None,
        username="alice",
        **ALICE,
        avatar=base64.urlsafe_b64encode(big).rstrip(b"=").decode(),
        ts=1,
        sig="A" * 86,
    )
    inner = Inner.model_construct(
        from_="alice",
        to="bob",
        id=new_message_id(),
        seq=0,
        ts=1,
        kind="profile_update",
        body=ProfileUpdateBody.model_construct(profile=profile),
    )
    bob_key = services_of(bob).ctx.keys.account.x25519_key
    envelope = seal(identity_of(alice).exchange, "bob", bob_key, inner)
    status, reply, _ = await post_envelopes(alice, bob, [envelope])
    assert (status, reply["error"]) == (400, "bad_envelope")
    assert await profile_store.get_profile(services_of(bob).ctx.db, "alice") is None


async def test_the_social_routes_never_answer_500(trio: Cluster) -> None:
    """Whatever the page (or a script in it) sends: a 4xx with a reason, never a 500."""
    alice_ui = await trio.ui("alice")
    inputs = st.tuples(BODIES, st.text(max_size=20))
    for body, name in samples(inputs, 40):
        quoted = urllib.parse.quote(name, safe="") or "x"
        for method, path in (
            ("PUT", "/ui/api/profile"),
            ("PUT", "/ui/api/profile/avatar"),
            ("PUT", "/ui/api/status"),
            ("POST", "/ui/api/blocks"),
            ("DELETE", f"/ui/api/blocks/{quoted}"),
            ("GET", f"/ui/api/profiles/{quoted}"),
            ("GET", f"/ui/api/profiles/{quoted}/avatar"),
            ("GET", f"/ui/api/conversations/{quoted}/messages/{quoted}/context"),
        ):
            async with alice_ui.session.request(
                method, path, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                assert response.status < 500, (method, path, await response.text())
                if response.status >= 400:
                    answer = await response.json()
                    assert answer["error"] and answer["message"]
    for headers in samples(HEADERS, 30):
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{trio.daemons['bob'].peer_port}/api/v1/profile"
            async with session.get(url, headers=headers) as response:
                assert 400 <= response.status < 500, await response.text()
    status, _ = await alice_ui.get("/ui/api/profile")
    assert status == 200
