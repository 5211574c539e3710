from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flame.core.crypto import new_db_key
from flame.devtools.postgres import Postgres, start_postgres
from flame.store.db import Database
from tests.cluster import Cluster, cluster_context


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async for c in cluster_context():
        yield c


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One throwaway PostgreSQL server for the session (each test makes its own database).
    Missing PostgreSQL skips, except under CI=true, where it fails (`.ci/run` installs it)."""
    try:
        server = start_postgres()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        reason = f"no PostgreSQL server to start: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A daemon's database (encrypted, as every daemon's), migrated, on its own (for the store's
    tests)."""
    database = await Database.open(tmp_path / "flame.db", "flame.store.schema", key=new_db_key())
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def trio(cluster: Cluster) -> Cluster:
    """A directory and alice, bob and carol, all online and knowing each other."""
    await cluster.start_directory()
    for name in ("alice", "bob", "carol"):
        await cluster.add_user(name)
    return cluster


@pytest.fixture(autouse=True)
def no_unexpected_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail any test that logs an ERROR it did not ask for (an unhandled error is a bug)."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [
        r
        for r in caplog.get_records("call")
        if r.levelno >= logging.ERROR and not getattr(r, "expected", False)
    ]
    assert not errors, [r.getMessage() for r in errors]
