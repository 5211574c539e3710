"""The bench's group file figure (PROTOCOL.md §19.7): a directory and a group's daemons as real
processes on loopback; the author's browser uploads a file to the group (streamed from disk),
then the time until EVERY member's daemon has verified it (its `file_state` `complete`), and how
many bytes each daemon served: the author's is what the sender uploaded. Driven through the UI
APIs as browsers would."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flame.devtools.bench.group_flow import _group_of
from flame.devtools.cluster import start_processes
from flame.devtools.ui import Feed, ToolFailed

MIB = 1024 * 1024
VERIFY_TIMEOUT_S = 1800.0


def write_random(path: Path, size: int) -> str:
    """A file of `size` incompressible bytes (os.urandom, a MiB at a time); its SHA-256."""
    hasher = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = os.urandom(min(MIB, left))
            hasher.update(piece)
            out.write(piece)
            left -= len(piece)
    return hasher.hexdigest()


def complete(transfer_id: str) -> Any:
    return lambda e: (
        e["type"] == "file_state"
        and e["file"]["transfer_id"] == transfer_id
        and e["file"]["state"] in ("complete", "failed", "cancelled", "declined")
    )


async def measure_group_file(
    root: Path, members: int, mib: int, env: Mapping[str, str], init_env: Mapping[str, str]
) -> dict[str, Any]:
    """One file of `mib` MiB to a group of `members` (the author included)."""
    names = tuple(f"f{i:02d}" for i in range(members))
    cluster = await start_processes(root / "group-file", names, env, init_env, timeout_s=600)
    try:
        group_id = await _group_of(cluster, names)
        author = cluster.nodes[names[0]].ui
        assert author is not None
        feeds: dict[str, Feed] = {}
        for name in names[1:]:
            ui = cluster.nodes[name].ui
            assert ui is not None
            feeds[name] = await ui.websocket()
        size = mib * MIB
        source = root / "group-file.bin"
        digest = await asyncio.to_thread(write_random, source, size)
        files = f"/ui/api/groups/{group_id}/files"
        status, reply = await author.post(files, {"name": "bench.bin", "size": size, "type": ""})
        if status != 201:
            raise ToolFailed(f"the group file was refused: {status} {reply}")
        transfer_id = str(reply["file"]["transfer_id"])
        begun = time.perf_counter()
        with source.open("rb") as body:
            async with author.session.put(
                f"{files}/{transfer_id}/content",
                data=body,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            ) as response:
                status, reply = response.status, await response.json()
        if status != 201:
            raise ToolFailed(f"the group file's upload was refused: {status} {reply}")
        offered = time.perf_counter()
        arrived: dict[str, float] = {}

        async def verified(name: str, feed: Feed) -> None:
            event = await feed.wait_for(complete(transfer_id), VERIFY_TIMEOUT_S)
            arrived[name] = time.perf_counter()
            if event["file"]["state"] != "complete":
                raise ToolFailed(f"{name}: the group file ended {event['file']['state']}")

        await asyncio.gather(*(verified(n, f) for n, f in feeds.items()))
        served: dict[str, int] = {}
        for index, name in enumerate(names):
            ui = cluster.nodes[name].ui
            assert ui is not None
            view = await ui.get_json(f"{files}/{names[0]}/{transfer_id}")
            served[name if index else "author"] = int(view["file"]["sent_bytes"])
        matches = True
        for name in names[1:]:
            ui = cluster.nodes[name].ui
            assert ui is not None
            hasher = hashlib.sha256()
            async with ui.session.get(f"{files}/{names[0]}/{transfer_id}/content") as r:
                async for piece in r.content.iter_chunked(MIB):
                    hasher.update(piece)
            matches = matches and hasher.hexdigest() == digest
        for feed in feeds.values():
            await feed.close()
        last = max(arrived.values())
        return {
            "members": members,
            "mib": mib,
            "upload_s": round(offered - begun, 3),
            "to_every_member_verified_s": round(last - offered, 3),
            "total_s": round(last - begun, 3),
            "per_member_s": {n: round(t - offered, 3) for n, t in sorted(arrived.items())},
            "sender_uploaded_bytes": served["author"],
            "sender_uploaded_copies": round(served["author"] / size, 3),
            "served_bytes": served,
            "sha256_match": matches,
        }
    except Exception:
        print(cluster.log_tails())
        raise
    finally:
        await cluster.close()


def group_file_rows(figure: dict[str, Any] | None) -> list[tuple[str, str]]:
    if figure is None:
        return []
    served = ", ".join(f"{n} {b / MIB:,.0f}" for n, b in figure["served_bytes"].items())
    return [
        (
            f"group file, {figure['mib']} MiB to {figure['members']} members",
            "author's browser upload, then every member's daemon verifies it (PROTOCOL.md §19.7)",
        ),
        ("  upload to the author's daemon", f"{figure['upload_s']:.2f} s"),
        ("  until every member verified it", f"{figure['to_every_member_verified_s']:.2f} s"),
        (
            "  the sender uploaded",
            f"{figure['sender_uploaded_bytes'] / MIB:,.1f} MiB "
            f"({figure['sender_uploaded_copies']:.2f} copies of the file)",
        ),
        ("  MiB served by each", served),
        ("  SHA-256 at every member", "match" if figure["sha256_match"] else "MISMATCH"),
    ]
