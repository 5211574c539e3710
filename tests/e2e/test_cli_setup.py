"""Setting Flame up with the real `flame` command, as a first-time user does: `flame init` at a
terminal asks again for each wrong answer instead of failing at the end, and every mistake, at a
terminal or in a script, is one line that says what to do: an address without https://, a
directory that is not running, a port already taken, a mistyped directory data folder, an invite
for someone enrolled already."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from flame.config import DirectorySettings
from flame.core.encoding import b64e
from flame.directory.admin import reachable_address
from flame.directory.app import DirectoryServer
from tests.cluster import PASSWORD, Cluster, services_of
from tests.commands import CHEAP, Console, flame


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port held but not listening: a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def port_of(directory: DirectoryServer) -> int:
    assert directory.listener is not None
    return directory.listener.port


def one_line(err: str) -> str:
    """A CLI error: exactly one line, `flame: ...`, no traceback and no exception class."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flame: "), err
    assert "Error" not in lines[0] and "Traceback" not in err, err
    return lines[0]


def private_file(path: Path, text: str) -> str:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


async def test_init_at_a_terminal_asks_again_for_each_wrong_answer(
    cluster: Cluster, tmp_path: Path
) -> None:
    directory = await cluster.start_directory()  # open registration: no invite needed
    assert directory.tls_fingerprint is not None and directory.store is not None
    port = port_of(directory)
    with refusing_port() as nothing:
        console = await Console.start("init", "--data-dir", str(tmp_path / "bob"))
        try:
            await console.answer("Username: ", "Bob")
            seen = await console.answer("Username: ", "bob")
            assert "A username is 2-32 characters: a lowercase letter" in seen
            await console.answer("Directory address: ", f"127.0.0.1:{nothing}")  # no scheme
            seen = await console.answer("Directory address: ", "https://dir.example/flame")
            refused = (
                f"connection refused: is the directory running at https://127.0.0.1:{nothing}?"
            )
            assert refused in seen
            seen = await console.answer("Directory address: ", f"127.0.0.1:{port}")
            assert "without a path or query" in seen
            question = "Invite (empty if the directory has open registration): "
            await console.answer(question, "X.y")
            seen = await console.answer(question, f"CODE.{b64e(bytes(32))}")
            assert "This invite is damaged" in seen
            seen = await console.answer(question, "")
            assert "presents a certificate other than the one pinned by the invite" in seen
            question = "Directory fingerprint (empty: show the one it presents): "
            await console.answer(question, b64e(bytes(32)))
            seen = await console.answer(question, "")
            assert "presents a certificate other than the one pinned" in seen
            seen = await console.answer("[y/N] ", "y")
            assert (
                f"presents the certificate fingerprint\n  {b64e(directory.tls_fingerprint)}" in seen
            )
            await console.answer("New password: ", "short")
            seen = await console.answer("New password: ", "Password123")
            assert "at least 8 characters" in seen
            seen = await console.answer("New password: ", PASSWORD)
            assert "most common ones" in seen
            await console.answer("Repeat it: ", PASSWORD + "!")
            seen = await console.answer("New password: ", PASSWORD)
            assert "The two differ" in seen
            await console.answer("Repeat it: ", PASSWORD)
            code, rest = await console.finish()
        finally:
            console.close()
    assert code == 0 and f"Enrolled bob with https://127.0.0.1:{port}." in rest, rest
    assert "Traceback" not in console.screen and "Error" not in console.screen
    assert await directory.store.identity_key_of("bob") is not None


async def test_init_at_a_terminal_asks_again_for_what_the_directory_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    """An invite the directory refuses (none given, one used already, one for someone else) and
    a username it has already are asked for again; the other answers stand. The directory's
    address in the config file is offered as the default."""
    directory = await cluster.start_directory(registration="invite")
    assert directory.store is not None and directory.tls_fingerprint is not None
    port = port_of(directory)

    async def invite(name: str) -> str:
        assert directory.store is not None
        return await directory.store.create_invite(name, rekey=False, now=0, ttl_s=10**10)

    used = await invite("carol")
    await cluster.enroll("carol", invite=used)
    for_carol, fresh = await invite("carol"), await invite("dave")  # the first, unusable
    pin = b64e(directory.tls_fingerprint)
    config = tmp_path / "flame.toml"
    config.write_text(f"[daemon]\ndirectory_url = '127.0.0.1:{port}'\n")
    console = await Console.start(
        *("--config", str(config), "init", "--data-dir", str(tmp_path / "dave")),
        *("--password-file", private_file(tmp_path / "password", PASSWORD)),
        f"--directory-fingerprint={pin}",
    )
    try:
        await console.answer("Username: ", "carol")
        await console.answer(f"Directory address [https://127.0.0.1:{port}]: ", "")
        question = "Invite (empty if the directory has open registration): "
        await console.answer(question, "")
        seen = await console.answer(question, f"{used}.{pin}")
        assert "enrolls users by invite only" in seen
        seen = await console.answer(question, for_carol)
        assert "already used" in seen
        seen = await console.answer("Username: ", "dave")
        assert "The username 'carol' is taken" in seen
        seen = await console.answer(question, f"{fresh}.{pin}")
        assert "This invite code is for another username, not 'dave'" in seen
        code, rest = await console.finish()
    finally:
        console.close()
    assert code == 0 and f"Enrolled dave with https://127.0.0.1:{port}." in rest, console.screen
    assert await directory.store.identity_key_of("dave") is not None


async def test_init_in_a_script_fails_with_one_line_that_says_what_to_do(
    cluster: Cluster, tmp_path: Path
) -> None:
    directory = await cluster.start_directory()
    assert directory.tls_fingerprint is not None and directory.store is not None
    port = port_of(directory)
    password = private_file(tmp_path / "password", PASSWORD)

    async def init(name: str, *address: str) -> tuple[int, str, str]:
        return await flame(
            "init", "--username", name, *address, "--password-file", password,
            "--data-dir", str(tmp_path / name),
            f"--directory-fingerprint={b64e(directory.tls_fingerprint or b'')}", env=CHEAP,
        )  # fmt: skip

    with refusing_port() as nothing:
        code, _, err = await init("erin", "--directory", f"127.0.0.1:{nothing}")
        assert code == 1 and one_line(err) == (
            f"flame: connection refused: is the directory running at https://127.0.0.1:{nothing}?"
        )
        # What needs no network is judged first: no directory is called for a bad username.
        code, _, err = await init("Erin", "--directory", f"127.0.0.1:{nothing}")
        assert code == 1 and one_line(err).startswith("flame: --username: A username is")
    code, _, err = await init("erin", "--directory", f"https://127.0.0.1:{port}/flame")
    assert code == 1 and "--directory: The address must be" in one_line(err)
    code, _, err = await init("erin", "--directory", f"http://127.0.0.1:{port}")
    assert code == 1 and "must start with https:// (plain http:// is off)" in one_line(err)
    code, _, err = await init("erin")  # no directory given, none configured: none assumed
    assert code == 1 and "Give --directory" in one_line(err)
    assert not (tmp_path / "erin").exists()  # nothing written by any of them

    code, out, err = await init("erin", "--directory", f"127.0.0.1:{port}")  # https:// implied
    assert code == 0, err
    assert f"Enrolled erin with https://127.0.0.1:{port}." in out
    assert await directory.store.identity_key_of("erin") is not None


async def test_a_port_in_use_is_one_line_naming_the_flag_to_change(
    cluster: Cluster, tmp_path: Path
) -> None:
    await cluster.start_directory()
    data_dir = str((await cluster.enroll("frank")).daemon_data_dir())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await flame(
            "directory", "serve", "--data-dir", str(tmp_path / "directory"),
            "--host", "127.0.0.1", "--port", str(port),
        )  # fmt: skip
        assert code == 1 and one_line(err) == (
            f"flame: Cannot listen on 127.0.0.1:{port}: the port is already in use (another "
            "Flame, or another program); choose another with --port (directory.port)."
        )
        for flag, other in (("--peer-port", "--ui-port"), ("--ui-port", "--peer-port")):
            code, _, err = await flame(
                "serve", "--data-dir", data_dir, "--peer-host", "127.0.0.1",
                flag, str(port), other, "0",
            )  # fmt: skip
            assert code == 1 and f"choose another with {flag} (daemon." in one_line(err)
            assert f"Cannot listen on 127.0.0.1:{port}: the port is already in use" in err


async def test_serve_warns_of_an_unreachable_or_malformed_directory_and_keeps_running(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Degraded mode (PROTOCOL.md §13.5): the daemon runs without its directory, and says why
    at start-up in one line each: the directory pinned at enrollment is down, and the address
    given with --directory (which serve does not need) is malformed."""
    directory = await cluster.start_directory()
    settings = await cluster.enroll("gina")
    url = cluster.directory_url
    await directory.stop()  # nothing listens at its address any more
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flame", "serve", "--data-dir", str(settings.daemon_data_dir()),
        "--password-file", private_file(tmp_path / "password", PASSWORD),
        "--peer-host", "127.0.0.1", "--peer-port", "0", "--ui-port", "0",
        "--directory", "https://dir.example/flame",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stderr is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        ui_url = banner.split("UI at ", 1)[1].split(" ", 1)[0]
        lines: list[str] = []
        async with asyncio.timeout(30):
            while not any("directory unreachable" in line for line in lines):
                lines.append((await process.stderr.readline()).decode())
                assert lines[-1], "".join(lines)
        warnings = [line for line in lines if " WARNING " in line]
        assert any(
            "daemon.directory_url (--directory) 'https://dir.example/flame': the address must be"
            in line
            and "ignored: the directory pinned at flame init is used" in line
            for line in warnings
        ), lines
        assert any(
            f"working from cache: connection refused: is the directory running at {url}?" in line
            for line in warnings
        ), lines
        assert not any("Traceback" in line or "Error" in line for line in lines), lines
        async with aiohttp.ClientSession() as session, session.get(ui_url) as page:
            assert page.status == 200  # still serving: the UI, and peers directly
        assert process.returncode is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_invite_needs_the_directory_folder_prints_its_address_and_says_rekey(
    cluster: Cluster, tmp_path: Path
) -> None:
    missing = tmp_path / "typo"
    for command in (["invite", "hana"], ["users"], ["fingerprint"]):
        code, out, err = await flame("directory", *command, "--data-dir", str(missing))
        assert code == 1 and out == "" and f"No directory in {missing}" in one_line(err)
    assert not missing.exists()  # no new, empty directory whose codes nobody would honour

    directory = await cluster.start_directory(registration="invite")
    folder, port = str(cluster.root / "directory"), port_of(directory)
    code, out, err = await flame("directory", "invite", "hana", "--data-dir", folder)
    assert code == 0, err
    assert f" --directory {cluster.directory_url}\n" in err and "not running" not in err
    await cluster.enroll("hana", invite=out.strip().split(".")[0])
    code, out, err = await flame("directory", "invite", "hana", "--data-dir", folder)
    assert (
        code == 1
        and out == ""
        and one_line(err)
        == (
            "flame: hana is enrolled already; to let them enroll new keys (a lost or new machine): "
            "flame directory invite hana --rekey"
        )
    )
    code, out, err = await flame("directory", "invite", "hana", "--rekey", "--data-dir", folder)
    assert code == 0 and len(out.split()) == 1, err

    await directory.stop()  # from its database now, by the same rules
    code, _, err = await flame("directory", "invite", "hana", "--data-dir", folder)
    assert code == 1 and "--rekey" in one_line(err)
    its_settings = {"FLAME_DIRECTORY_HOST": "127.0.0.1", "FLAME_DIRECTORY_PORT": str(port)}
    code, out, err = await flame(
        "directory", "invite", "ivan", "--data-dir", folder, env=its_settings
    )
    assert code == 0 and f" --directory https://127.0.0.1:{port}\n" in err
    assert "The directory is not running: start it with 'flame directory serve'." in err


async def test_serve_uses_the_directory_it_enrolled_with_and_names_another_in_a_warning(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    await cluster.start_directory()
    settings = await cluster.enroll("jo")
    url = cluster.directory_url
    jo = await cluster.start_daemon("jo", directory_url="https://127.0.0.1:9")
    assert services_of(jo).contacts.directory.url == url
    assert any(
        record.getMessage()
        == f"daemon.directory_url (--directory) https://127.0.0.1:9 is not used: jo uses the "
        f"directory it enrolled with, at {url}, whose certificate flame init pinned"
        for record in caplog.records
    )
    await cluster.stop_daemon("jo")
    caplog.clear()
    await cluster.start_daemon("jo", settings=settings)  # the same address: nothing to say
    assert not [r for r in caplog.records if "directory_url" in r.getMessage()]


def test_the_address_an_invite_gives_is_the_machine_name_when_it_listens_everywhere() -> None:
    everywhere = DirectorySettings(host="0.0.0.0", port=8480)
    assert reachable_address(everywhere, 8480) == f"https://{socket.getfqdn().lower()}:8480"
    assert reachable_address(DirectorySettings(host="10.1.2.3"), 9000) == "https://10.1.2.3:9000"
