"""Resume after kill -9 of the receiver: bob runs as a real `flame serve` process, is killed in the
middle of a transfer (no cleanup at all, as a crash would leave it) and started again. alice's
second run must send only what bob did not keep: the bytes are counted."""

from __future__ import annotations

import hashlib

from flame.devtools.cluster import FAST, env_of
from tests.cluster import Cluster, UiClient
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


async def received_file(ui: UiClient, transfer_id: str) -> tuple[str, bytes]:
    """bob's record of the transfer and the bytes of his copy, as his UI API serves them."""
    path = f"/ui/api/conversations/alice/files/{transfer_id}"
    status, body = await ui.get(path)
    assert status == 200, body
    async with ui.session.get(f"{path}/content", params={"download": "1"}) as response:
        assert response.status == 200, await response.text()
        return str(body["file"]["state"]), await response.read()


async def test_a_killed_receiver_resumes_and_the_second_run_sends_only_the_remainder(
    cluster: Cluster,
) -> None:
    await cluster.start_directory()
    alice = await cluster.start_daemon("alice", settings=await slow_alice(cluster, rate=4 * MIB))
    bob = await cluster.add_process("bob", env_of(FAST))  # `flame init`, then `flame serve`
    try:
        ui = await cluster.ui("alice")
        feed = await ui.websocket()
        await ui.wait_status(feed, "bob", "online")
        data = random_bytes(8 * MIB, seed=11)
        offer = await send_file(ui, "bob", "board pack.pdf", data)
        transfer_id = offer["file"]["transfer_id"]
        await feed.wait_for(progress(transfer_id, "send", 4 * MIB))

        await bob.proc.kill()  # SIGKILL mid-transfer
        await feed.wait_for(
            lambda e: file_state(transfer_id, "waiting")(e) and bool(e["file"]["error"])
        )
        first_run = (await transfer_of(alice, "bob", "out", transfer_id)).sent_bytes
        assert 4 * MIB <= first_run < len(data)

        await bob.proc.start()  # on the ports it had
        resumed = await wait_state(feed, transfer_id, "sending", timeout=30)
        kept = resumed["bytes"]  # what bob says he holds: verified, fsynced, recorded
        assert 0 < kept <= first_run and kept % (64 * 1024) == 0
        await wait_state(feed, transfer_id, "complete", timeout=30)
        total = (await transfer_of(alice, "bob", "out", transfer_id)).sent_bytes
        assert total - first_run == len(data) - kept  # the second run: only the remainder
        state, copy = await received_file(await bob.login(), transfer_id)
        assert state == "complete"
        assert hashlib.sha256(copy).digest() == hashlib.sha256(data).digest()
    finally:
        await bob.proc.stop()
