"""The shipped deployment example (deploy/systemd, README "Deploying the directory") runs: two
instances of the unit, with its environment and its command, on one PostgreSQL database and one
certificate, serve one directory."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from flame.devtools.postgres import Postgres
from flame.devtools.procs import Proc, base_env
from flame.directory import admin
from flame.directory.keylog import KEY_NAME as LOG_KEY_NAME
from flame.net.tls import CERT_NAME, KEY_NAME
from tests.cluster import Cluster, services_of
from tests.directory.conftest import new_database

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def service_section(unit: str) -> list[tuple[str, str]]:
    """The [Service] lines of a unit file, as (key, value), in order."""
    section, lines = "", []
    for raw in unit.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            lines.append((key, value))
    return lines


def env_file(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, _, value in pairs}


def instance(service: list[tuple[str, str]], number: int, root: Path, dsn: str) -> Proc:
    """Instance `number` of the unit: its Environment= lines with %i filled in, its
    EnvironmentFile (the shipped one, with the test's database), its ExecStart."""
    env: dict[str, str] = {}
    command: list[str] = []
    for key, value in service:
        value = value.replace("%i", str(number))
        if key == "EnvironmentFile":
            assert value == "/etc/flame/directory.env"
            env |= env_file((DEPLOY / "directory.env").read_text())
            env["FLAME_DIRECTORY_DATABASE"] = dsn  # in place of db.internal
            env["FLAME_DIRECTORY_HOST"] = "127.0.0.1"
        elif key == "Environment":
            name, _, setting = value.partition("=")
            env[name] = setting
        elif key == "ExecStart":
            binary, *command = value.split()
            assert binary == "/usr/local/bin/flame"
    data = Path(env["FLAME_DIRECTORY_DATA_DIR"])
    assert data == Path(f"/var/lib/flame/directory-{number}")
    assert env["FLAME_DIRECTORY_PORT"] == f"848{number}"
    folder = root / data.name  # in place of /var/lib/flame
    env["FLAME_DIRECTORY_DATA_DIR"] = str(folder)
    env["FLAME_DIRECTORY_REGISTRATION"] = "open"  # the test enrolls without invites
    # --port=0 (the test's free port) overrides the unit's fixed one.
    return Proc(f"directory-{number}", command, {"port": 0}, base_env(env), folder, "log")


async def test_two_instances_of_the_shipped_unit_serve_one_directory(
    cluster: Cluster, postgres_server: Postgres
) -> None:
    unit = (DEPLOY / "flame-directory@.service").read_text()
    service = service_section(unit)
    assert ("Restart", "always") in service and ("User", "flame") in service
    dsn = await new_database(postgres_server)
    first = instance(service, 0, cluster.root, dsn)
    await first.start()
    second = instance(service, 1, cluster.root, dsn)
    second.folder.mkdir(mode=0o700)
    for name in (CERT_NAME, KEY_NAME, LOG_KEY_NAME):  # README: the first one's keys, copied
        shutil.copy2(first.folder / name, second.folder / name)
    await second.start()
    try:
        assert first.tls == second.tls
        cluster.directory_proc = first
        alice = await cluster.add_user("alice", directory_url=first.url)
        bob = await cluster.add_user("bob", directory_url=second.url)
        assert await services_of(bob).contacts.find("alice") is not None
        assert await services_of(alice).contacts.find("bob") is not None
        users = await admin.admin_call(second.folder, "GET", "/users")
        assert users is not None
        assert {u["username"] for u in users["users"]} == {"alice", "bob"}
    finally:
        await second.stop()


def test_the_readme_shows_the_shipped_unit_and_environment() -> None:
    section = README[README.index("## Deploying the directory") :]
    section = section[: section.index("\n## ", 5)]
    assert "deploy/systemd/flame-directory@.service" in section
    for key in env_file((DEPLOY / "directory.env").read_text()):
        assert key in section or key.startswith("FLAME_DIRECTORY_HOST"), key
    assert re.search(r"systemctl enable --now flame-directory@0 flame-directory@1", section)
