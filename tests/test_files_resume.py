"""Resume after kill -9 of the receiver: bob runs as a real `flame serve` process, is killed in the
middle of a transfer (no cleanup at all, as a crash would leave it) and started again. alice's
second run must send only what bob did not keep: the bytes are counted."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

from flame.bench import free_ports
from flame.cluster import daemon_proc, init_user
from tests.cluster import Cluster
from tests.files_helpers import (
    MIB,
    file_state,
    progress,
    random_bytes,
    send_file,
    slow_alice,
    transfer_of,
    wait_state,
)

FAST_ENV = {
    "FLAME_DAEMON_PRESENCE_INTERVAL_S": "0.2",
    "FLAME_DAEMON_DIRECTORY_SYNC_S": "0.2",
    "FLAME_DAEMON_RETRY_BASE_S": "0.05",
    "FLAME_DAEMON_RETRY_MAX_S": "0.5",
}
CHEAP_KEYS = {"FLAME_SECURITY_ARGON2_MEMORY_KIB": "64", "FLAME_SECURITY_ARGON2_ITERATIONS": "1"}


def received_file(data_dir: Path, transfer_id: str) -> tuple[str, bytes]:
    """bob's record of the transfer and the bytes of his copy, read after he stopped."""
    uri = f"{(data_dir / 'flame.db').resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        state, stored_name = db.execute(
            "SELECT state, stored_name FROM transfers WHERE transfer_id=? AND direction='in'",
            (transfer_id,),
        ).fetchone()
    return state, (data_dir / "files" / stored_name).read_bytes()


async def test_a_killed_receiver_resumes_and_the_second_run_sends_only_the_remainder(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    alice = await cluster.start_daemon("alice", settings=await slow_alice(cluster, rate=4 * MIB))
    root = cluster.root
    env = {**FAST_ENV, "XDG_CONFIG_HOME": str(root / "xdg"), "XDG_DATA_HOME": str(root / "xdg")}
    await init_user(root, "bob", cluster.directory_url, {**env, **CHEAP_KEYS})
    peer_port, ui_port = free_ports(2)
    bob = daemon_proc(root, "bob", peer_port, ui_port, cluster.directory_url, env)
    await bob.start()
    try:
        ui = await cluster.ui("alice")
        feed = await ui.websocket()
        await ui.wait_status(feed, "bob", "online")
        data = random_bytes(8 * MIB, seed=11)
        offer = await send_file(ui, "bob", "board pack.pdf", data)
        transfer_id = offer["file"]["transfer_id"]
        await feed.wait_for(progress(transfer_id, "send", 4 * MIB))

        await bob.kill()  # SIGKILL mid-transfer
        await feed.wait_for(
            lambda e: file_state(transfer_id, "waiting")(e) and bool(e["file"]["error"])
        )
        first_run = (await transfer_of(alice, "bob", "out", transfer_id)).sent_bytes
        assert 4 * MIB <= first_run < len(data)

        await bob.start()
        resumed = await wait_state(feed, transfer_id, "sending", timeout=30)
        kept = resumed["bytes"]  # what bob says he holds: verified, fsynced, recorded
        assert 0 < kept <= first_run and kept % (64 * 1024) == 0
        await wait_state(feed, transfer_id, "complete", timeout=30)
        total = (await transfer_of(alice, "bob", "out", transfer_id)).sent_bytes
        assert total - first_run == len(data) - kept  # the second run: only the remainder
    finally:
        await bob.stop()
    state, copy = received_file(root / "bob", transfer_id)
    assert state == "complete"
    assert hashlib.sha256(copy).digest() == hashlib.sha256(data).digest()
