"""A message deleted for everyone (PROTOCOL.md §17.3) is gone from the database's files, not only
from its answers: the table's pages, the search index's own pages and the write-ahead log. Read on
a database opened without a key, whose files show their bytes as they are (a daemon's are the
same, encrypted page by page: docs/ARCHITECTURE.md, "At rest")."""

from __future__ import annotations

import time
from pathlib import Path

from flame.core.actions import EditBody, Ref
from flame.core.envelope import new_message_id
from flame.core.models import Inner, TextBody, Wire
from flame.store import actions as action_store
from flame.store import messages as message_store
from flame.store.db import Database
from flame.store.messages import Incoming

SECRET = b"Marzipan77"
EDITED = b"Nougat42"


def on_disk(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.glob("flame.db*")))


def incoming(kind: str, body: Wire, seq: int) -> Incoming:
    inner = Inner(
        from_="zoe",
        to="alice",
        id=new_message_id(),
        seq=seq,
        ts=int(time.time() * 1000),
        kind=kind,
        body=body,
    )
    return Incoming(inner, time.time())


async def test_a_deleted_text_leaves_every_file_of_the_database(
    plain: Database, tmp_path: Path
) -> None:
    texts = [incoming("text", TextBody(text=f"filler {n} " * 40), n + 2) for n in range(50)]
    secret = incoming("text", TextBody(text=f"the code is {SECRET.decode()}"), 1)
    await message_store.store_incoming(plain, [secret, *texts])
    ref = Ref(id=secret.inner.id, author="zoe")
    edit = incoming("edit", EditBody(target=ref, text=f"no: {EDITED.decode()}"), 0)

    async def apply(conn: object, item: Incoming) -> None:
        body = item.inner.body
        assert isinstance(body, EditBody)
        await action_store.apply_edit(conn, body.target.key, item.key, body.text, item.inner.ts)  # type: ignore[arg-type]

    await message_store.store_incoming(plain, [edit], effect=apply)
    await plain.truncate_wal()
    assert SECRET in on_disk(tmp_path) and EDITED in on_disk(tmp_path)  # the check sees them
    hits = await plain.fetchall(
        "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?", (EDITED.decode(),)
    )
    assert len(hits) == 1

    async with plain.transaction() as conn:
        assert await action_store.apply_delete(conn, ref.key, "zoe", "everyone", time.time())
    await plain.truncate_wal()
    data = on_disk(tmp_path)
    assert SECRET not in data and EDITED not in data
    assert SECRET.lower() not in data and EDITED.lower() not in data  # the index's own tokens
    assert b"filler" in data  # the rest is all there
