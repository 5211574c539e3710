"""A daemon's schema on a database opened without a key (its files show their bytes as they are)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flame.store.db import DAEMON_SCHEMA, Database


@pytest.fixture
async def plain(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "flame.db", DAEMON_SCHEMA)
    try:
        yield database
    finally:
        await database.close()
