"""The `flame` command as a person uses it: help, non-interactive init, the directory admin
commands, serve as a real process, and one clear line for every error."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from flame.cli import main
from flame.core.encoding import b64e
from tests.cluster import PASSWORD, Cluster
from tests.commands import CHEAP, Console, flame


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["init"],
        ["serve"],
        ["directory"],
        ["directory", "serve"],
        ["directory", "invite"],
        ["directory", "users"],
        ["directory", "fingerprint"],
    ],
)
def test_every_command_has_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: flame") and len(out.splitlines()) > 3


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["frobnicate"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


async def test_invite_init_and_users_without_a_terminal(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.start_directory(registration="invite")
    directory_dir = str(cluster.root / "directory")
    code, out, err = await flame("directory", "invite", "alice", "--data-dir", directory_dir)
    assert code == 0, err
    invite = out.strip()
    one_time, fingerprint, log_key = invite.split(".")  # the code, and the certificate and the
    assert len(one_time.replace("-", "")) == 24 and "flame init" in err  # key log key to pin
    assert cluster.directory_tls is not None and fingerprint == b64e(cluster.directory_tls)
    assert cluster.directory is not None and cluster.directory.parts is not None
    assert log_key == b64e(cluster.directory.parts.log.public_key)  # PROTOCOL.md §18.1
    code, out, _ = await flame("directory", "fingerprint", "--data-dir", directory_dir)
    assert (code, out.strip()) == (0, fingerprint)

    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    init = [
        "init",
        "--username",
        "alice",
        "--directory",
        cluster.directory_url,
        "--password-file",
        str(password_file),
        "--data-dir",
        str(tmp_path / "alice"),
    ]
    other_key = f"{one_time}.{fingerprint}.{b64e(bytes(32))}"  # another directory's log
    code, out, err = await flame(*init, "--invite", other_key, env=CHEAP)
    assert code == 1 and "key log key of the invite" in err, err
    code, out, err = await flame(*init, "--invite", invite, env=CHEAP)
    assert code == 0, err  # the refusal above spent nothing
    assert "Enrolled alice" in out and "Fingerprint:" in out

    code, out, err = await flame(*init[:-1], str(tmp_path / "again"), "--invite", invite, env=CHEAP)
    assert code == 1
    assert err.strip().splitlines() == [err.strip()] and err.startswith("flame: ")
    assert "already used" in err

    code, out, _ = await flame("directory", "users", "--data-dir", directory_dir)
    assert code == 0 and out.split()[0] == "alice"


async def test_init_pins_the_directory_certificate_it_was_given(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A directory that presents another certificate than the one given is refused with the
    reason; with none given and no terminal to confirm on, init says what to give."""
    await cluster.start_directory()  # open registration: no invite to carry the fingerprint
    assert cluster.directory_tls is not None
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)

    def init(name: str, *extra: str) -> list[str]:
        return [
            "init", "--username", name, "--directory", cluster.directory_url,
            "--password-file", str(password_file), "--data-dir", str(tmp_path / name), *extra,
        ]  # fmt: skip

    code, _, err = await flame(*init("bob"), env=CHEAP)
    assert code == 1 and "--directory-fingerprint" in err and "Traceback" not in err
    code, _, err = await flame(
        *init("bob", f"--directory-fingerprint={b64e(bytes(32))}"), env=CHEAP
    )
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "The directory at" in err and "certificate other than the one pinned" in err
    assert cluster.directory is not None and cluster.directory.store is not None
    assert await cluster.directory.store.identity_key_of("bob") is None  # never enrolled
    code, _, err = await flame(*init("bob", "--directory-fingerprint=abc"), env=CHEAP)
    assert code == 1 and "fingerprint" in err and "Traceback" not in err
    code, _, err = await flame(
        *init("bob", "--invite", f"CODE.{b64e(bytes(32))}"),
        f"--directory-fingerprint={b64e(cluster.directory_tls)}",
        env=CHEAP,
    )
    assert code == 1 and "different certificates" in err

    right = b64e(cluster.directory_tls)
    code, out, err = await flame(*init("bob", f"--directory-fingerprint={right}"), env=CHEAP)
    assert code == 0, err
    assert f"Enrolled bob with {cluster.directory_url}" in out
    assert (tmp_path / "bob" / "tls-key.pem").stat().st_mode & 0o777 == 0o600


async def test_at_a_terminal_init_shows_the_directory_certificate_to_confirm(
    cluster: Cluster, tmp_path: Path
) -> None:
    await cluster.start_directory()
    assert cluster.directory_tls is not None
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)

    def init(name: str) -> list[str]:
        return [
            "init", "--username", name, "--directory", cluster.directory_url,
            "--password-file", str(password_file), "--data-dir", str(tmp_path / name),
        ]  # fmt: skip

    # No invite, no fingerprint: shown the one presented, and refused when not confirmed.
    for name, confirmed in (("dave", "n"), ("erin", "y")):
        console = await Console.start(*init(name))
        try:
            await console.answer("Invite (empty if the directory has open registration): ", "")
            await console.answer("Directory fingerprint (empty: show the one it presents): ", "")
            shown = await console.answer("[y/N] ", confirmed)
            assert f"presents the certificate fingerprint\n  {b64e(cluster.directory_tls)}" in shown
            code, rest = await console.finish()
        finally:
            console.close()
        if confirmed == "n":
            assert code == 1 and "not confirmed" in rest
        else:
            assert code == 0 and "Enrolled erin" in rest, rest


async def test_init_without_password_or_terminal_says_what_to_give(
    cluster: Cluster, tmp_path: Path
) -> None:
    await cluster.start_directory()
    code, _, err = await flame(
        "init",
        "--username",
        "bob",
        "--directory",
        cluster.directory_url,
        "--data-dir",
        str(tmp_path / "bob"),
        "--invite",
        "x",
    )
    assert code == 1 and "--password-file" in err and "Traceback" not in err
    code, _, err = await flame(
        "init", "--directory", cluster.directory_url, "--data-dir", str(tmp_path / "bob")
    )
    assert code == 1 and "--username" in err


async def test_invalid_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    code, _, err = await flame(
        "serve", "--data-dir", str(tmp_path), env={"FLAME_DAEMON_UI_PORT": "abc"}
    )
    assert code == 1
    assert err.strip().startswith("flame: config: daemon.ui_port:")
    assert len(err.strip().splitlines()) == 1
    code, _, err = await flame("serve", "--data-dir", str(tmp_path))
    assert code == 1 and "run 'flame init' first" in err


async def test_serve_runs_as_a_process_owns_its_folder_and_stops_cleanly(
    cluster: Cluster, tmp_path: Path
) -> None:
    await cluster.start_directory()
    settings = await cluster.enroll("carol")
    data_dir = str(settings.daemon_data_dir())
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    password_file.chmod(0o600)
    args = [
        sys.executable,
        "-m",
        "flame",
        "serve",
        "--data-dir",
        data_dir,
        "--password-file",
        str(password_file),
        "--peer-host",
        "127.0.0.1",
        "--peer-port",
        "0",
        "--ui-port",
        "0",
    ]
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "UI at http://127.0.0.1:" in line and "unlocked" in line
        code, _, err = await flame(
            "serve", "--data-dir", data_dir, "--peer-port", "0", "--ui-port", "0"
        )
        assert code == 1 and "Another Flame process is using the data folder" in err
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_init_refuses_a_weak_kdf_a_common_password_and_a_password_file_open_to_others(
    cluster: Cluster, tmp_path: Path
) -> None:
    await cluster.start_directory()
    password_file = tmp_path / "password"

    async def init(password: str, mode: int, env: dict[str, str]) -> tuple[int, str]:
        password_file.write_text(password + "\n")
        password_file.chmod(mode)
        code, _, err = await flame(
            "init",
            *("--username", "dora", "--directory", cluster.directory_url),
            *("--password-file", str(password_file), "--data-dir", str(tmp_path / "dora")),
            env=env,
        )
        assert err.strip().startswith("flame: ") and len(err.strip().splitlines()) == 1, err
        return code, err

    weak = {k: v for k, v in CHEAP.items() if "ALLOW_WEAK" not in k}  # cheap, without the escape
    code, err = await init(PASSWORD, 0o600, weak)
    assert code == 1 and "security.argon2_memory_kib=64" in err and "19456 KiB" in err
    # Each half of OWASP's minimum on its own: enough memory but one pass, or two passes over
    # too little memory.
    for memory_kib, iterations, named in (
        ("19456", "1", "argon2_iterations=1"),
        ("19455", "2", "argon2_memory_kib=19455"),
    ):
        one_short = {**weak, "FLAME_SECURITY_ARGON2_MEMORY_KIB": memory_kib}
        one_short["FLAME_SECURITY_ARGON2_ITERATIONS"] = iterations
        code, err = await init(PASSWORD, 0o600, one_short)
        assert code == 1 and f"security.{named}" in err and "below the minimum" in err, err
    code, err = await init("Password123", 0o600, CHEAP)
    assert code == 1 and "most common" in err
    code, err = await init(PASSWORD, 0o644, CHEAP)
    assert code == 1 and "open to other users" in err and "chmod 600" in err
    assert not (tmp_path / "dora").exists()  # nothing was written, nothing enrolled
    code, _, err = await flame(
        "serve", "--data-dir", str(tmp_path / "dora"), "--password-file", str(password_file)
    )
    assert code == 1 and "open to other users" in err  # serve reads it the same way
    password_file.chmod(0o600)
    minimum = {  # OWASP's minimum itself is accepted
        "FLAME_SECURITY_ARGON2_MEMORY_KIB": "19456",
        "FLAME_SECURITY_ARGON2_ITERATIONS": "2",
    }
    assert cluster.directory_tls is not None
    code, out, err = await flame(
        "init",
        *("--username", "dora", "--directory", cluster.directory_url),
        *("--password-file", str(password_file), "--data-dir", str(tmp_path / "dora")),
        f"--directory-fingerprint={b64e(cluster.directory_tls)}",
        env=minimum,
    )
    assert code == 0 and "Enrolled dora" in out, err
