"""At rest (docs/ARCHITECTURE.md, "At rest"): a data folder taken without the password reveals no
message, no file and no contact; a locked daemon cannot read its own database; the folder is
private; files are stored sealed yet served whole, and by range, to the logged-in browser."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import aiohttp
import pytest
import sqlcipher3

from flame.config import Settings
from tests.cluster import Cluster, peer_tls, peer_url
from tests.files_helpers import MIB, fetch, random_bytes, send_file, wait_state
from tests.social import hello_from

MARK = "Quarterly numbers: 7C3A-5EED-BEEF"  # what a thief would grep for


def folder_bytes(folder: Path) -> dict[Path, bytes]:
    """Every file under a data folder, raw, as a thief with the disk would read it."""
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def holding(folder: Path, needle: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(folder)) for p, raw in folder_bytes(folder).items() if needle in raw
    )


def marked_file(size: int) -> bytes:
    """Content that a search of the raw disk would find wherever a piece of it lies in plaintext."""
    line = (MARK + "\n").encode()
    return (line * (size // len(line) + 1))[:size]


async def test_a_data_folder_without_the_password_reveals_no_message_file_or_contact(
    trio: Cluster,
) -> None:
    alice, bob = await trio.ui("alice"), await trio.ui("bob")
    bob_feed = await bob.websocket()
    await alice.send("bob", MARK)
    await bob_feed.wait_for(lambda e: e["type"] == "message" and e["message"]["text"] == MARK)
    streamed, inline = marked_file(3 * MIB + 7), marked_file(4000)
    for name, data in (("numbers.txt", streamed), ("note.txt", inline)):
        offer = await send_file(alice, "bob", name, data)
        transfer_id = offer["file"]["transfer_id"]
        await wait_state(bob_feed, transfer_id, "complete")
        for ui, peer in ((bob, "alice"), (alice, "bob")):  # both copies are served in plaintext
            status, (body, _) = await fetch(ui, peer, transfer_id)
            assert status == 200 and body == data
    for name in ("alice", "bob"):
        folder = trio.daemons[name].data_dir
        assert holding(folder, MARK.encode()) == [], name
        assert holding(folder, b"carol") == [], name  # contacts and profiles too
        assert holding(folder, b"numbers.txt") == [], name  # file names are in the database
        assert (folder / "flame.db").read_bytes()[:16] != b"SQLite format 3\x00"
        assert sorted(p.name for p in (folder / "files").iterdir())  # the files are there


async def test_a_locked_daemon_cannot_read_its_database_and_answers_only_hello_and_login(
    trio: Cluster,
) -> None:
    alice, carol_ui = await trio.ui("alice"), await trio.ui("carol")
    carol_feed = await carol_ui.websocket()
    await alice.send("carol", "before the restart")
    await carol_feed.wait_for(lambda e: e["type"] == "message")
    await carol_feed.close()
    await trio.stop_daemon("carol")
    carol = await trio.start_daemon("carol", unlocked=False)
    assert carol.services is None
    with pytest.raises(sqlcipher3.DatabaseError):  # without the key, not even the schema reads
        sqlcipher3.connect(str(carol.data_dir / "flame.db")).execute(
            "SELECT name FROM sqlite_master"
        ).fetchall()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=peer_tls(carol))
    ) as session:
        peer = f"{peer_url(carol)}/api/v1"
        locked = {"locked": True}  # to anyone, alice too: it cannot check who asks (§7.1)
        assert await hello_from(None, carol) == await hello_from(trio.daemons["alice"], carol)
        assert await hello_from(None, carol) == locked
        async with session.get(f"{peer}/profile", headers={"Flame-User": "alice"}) as response:
            assert response.status == 503 and response.headers["Retry-After"] == "30"
            assert (await response.json())["error"] == "locked"
        async with session.get(carol.ui_url + "/") as response:
            assert response.status == 200  # the page, to log in from
        async with session.get(carol.ui_url + "/ui/api/contacts") as response:
            assert response.status == 401
    ui = await trio.ui("carol")  # the login opens the database and builds the services
    assert carol.services is not None
    assert [m["text"] for m in await ui.messages("alice")] == ["before the restart"]


def modes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): stat.S_IMODE(p.lstat().st_mode)
        for p in [folder, *folder.rglob("*")]
    }


async def test_the_data_folder_is_private_even_when_it_was_not(trio: Cluster) -> None:
    alice = await trio.ui("alice")
    bob_feed = await (await trio.ui("bob")).websocket()
    offer = await send_file(alice, "bob", "a.bin", b"x" * 5000)
    await wait_state(bob_feed, offer["file"]["transfer_id"], "complete")
    for name in ("alice", "bob"):  # what the daemons made themselves
        assert private(trio.daemons[name].data_dir), name
    await trio.stop_daemon("bob")
    folder = trio.settings_for("bob").daemon_data_dir()
    os.chmod(folder, 0o755)  # opened up by hand, a backup tool or an older version
    os.chmod(folder / "files", 0o777)
    for path in folder.rglob("*"):
        if path.is_file():
            os.chmod(path, 0o644)
    assert not private(folder)
    await trio.start_daemon("bob")
    assert private(folder)


def private(folder: Path) -> bool:
    """0700 for every folder, 0600 for every file."""
    return all(
        stat.S_IMODE(path.lstat().st_mode) == (0o700 if path.is_dir() else 0o600)
        for path in [folder, *folder.rglob("*")]
    )


async def test_stored_files_are_served_by_range_across_their_sealed_chunks(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    alice = await cluster.start_daemon("alice", settings=await small_chunks(cluster))
    await cluster.add_user("bob")
    alice_ui, bob_ui = await cluster.ui("alice"), await cluster.ui("bob")
    feed = await bob_ui.websocket()
    data = random_bytes(204_804)  # four chunks of 64 KiB, then a short one
    offer = await send_file(alice_ui, "bob", "cut.bin", data)
    transfer_id = offer["file"]["transfer_id"]
    await wait_state(feed, transfer_id, "complete")
    assert alice.services is not None
    cases: dict[str, tuple[int, bytes | None]] = {
        "bytes=0-0": (206, data[:1]),
        "bytes=65530-65545": (206, data[65530:65546]),  # across a chunk boundary
        "bytes=60000-140000": (206, data[60000:140001]),  # three chunks
        "bytes=200000-": (206, data[200000:]),
        "bytes=-10": (206, data[-10:]),
        "bytes=204800-999999": (206, data[204800:]),
        "bytes=0-1,5-6": (200, data),  # several ranges: the whole file, as RFC 9110 allows
        "items=0-5": (200, data),
        "bytes=204804-": (416, None),
    }
    url = f"/ui/api/conversations/bob/files/{transfer_id}/content"
    for ui, path in ((bob_ui, url.replace("/bob/", "/alice/")), (alice_ui, url)):
        for header, (status, expected) in cases.items():
            async with ui.session.get(path, headers={"Range": header}) as response:
                body = await response.read()
                assert response.status == status, header
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                if expected is not None:
                    assert body == expected, header
                    assert int(response.headers["Content-Length"]) == len(expected)
                if status == 206 and expected is not None:
                    first = data.index(expected) if header != "bytes=-10" else len(data) - 10
                    span = f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
                    assert response.headers["Content-Range"] == span, header
        async with ui.session.head(path) as response:
            assert response.status == 200 and response.headers["Accept-Ranges"] == "bytes"
            assert int(response.headers["Content-Length"]) == len(data)
            assert await response.read() == b""


async def small_chunks(cluster: Cluster) -> Settings:
    settings = await cluster.enroll("alice")
    settings.files.chunk_bytes = 64 * 1024
    settings.files.relay_max_bytes = 0  # streamed, not inline
    return settings
