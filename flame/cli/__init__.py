"""The `flame` command: parse arguments, load settings, hand over. Errors become one line.

flame init | serve | directory {serve, invite, users}

The dev tools (demo, bench, chaos) have their own entry point: python -m flame.devtools.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import stat
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from flame import __version__
from flame.cli.init import cmd_init
from flame.config import LOG_LEVELS, Settings, load_settings
from flame.core.transport import fingerprint_text, invite_token
from flame.errors import FlameError

Command = Callable[[argparse.Namespace, Settings], int]


def read_password_file(path: str) -> str:
    """The password in a file that only its owner may read or write (as ssh asks of a key)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FlameError(f"Cannot read the password file {path}: {exc.strerror}.") from exc
    if mode & 0o077:
        raise FlameError(
            f"The password file {path} is open to other users (mode {mode:o}); "
            f"make it private first: chmod 600 {path}"
        )
    password = text.rstrip("\r\n")
    if not password:
        raise FlameError(f"The password file {path} is empty.")
    return password


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve_until_signalled(
    start: Callable[[], Awaitable[str]], stop: Callable[[], Awaitable[None]]
) -> None:
    """Start a server, print its banner, run until SIGINT/SIGTERM, then stop it cleanly."""
    from flame.daemon import run_until_signalled

    print(await start(), flush=True)
    try:
        await run_until_signalled()
    finally:
        await stop()


def write_ready_file(path: str | None, ports: dict[str, int], tls: bytes | None) -> None:
    """--ready-file: once the listeners are bound, one JSON object with this process's id, its
    ports (port 0 lets the OS pick them, so a launcher learns them here) and its certificate's
    fingerprint (`tls`, null for plain HTTP). Written to a temporary file and renamed: a reader
    sees no file or the whole object."""
    if not path:
        return
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fingerprint = None if tls is None else fingerprint_text(tls)
        ready = {"pid": os.getpid(), **ports, "tls": fingerprint}
        temporary.write_text(json.dumps(ready) + "\n", encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        raise FlameError(f"Cannot write the ready file {path}: {exc.strerror}.") from exc


# --- commands ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from flame.cli.memory import limit_malloc_arenas
    from flame.daemon import Daemon

    limit_malloc_arenas()  # before any thread allocates (cli/memory.py says why)

    password = (
        read_password_file(settings.daemon.password_file)
        if (settings.daemon.password_file)
        else None
    )

    daemon = Daemon(settings)

    async def start() -> str:
        await daemon.start(password)
        ports = {"peer_port": daemon.peer_port, "ui_port": daemon.ui_port}
        write_ready_file(args.ready_file, ports, daemon.tls_fingerprint)
        state = "unlocked" if password else "locked: log in to the UI to unlock"
        return f"flame serve: UI at {daemon.ui_url} ({state}); peers on port {daemon.peer_port}"

    asyncio.run(serve_until_signalled(start, daemon.stop))
    return 0


def cmd_directory_serve(args: argparse.Namespace, settings: Settings) -> int:
    from flame.directory.app import DirectoryServer

    server = DirectoryServer(settings.directory, settings.directory_data_dir())

    async def start() -> str:
        await server.start()
        assert server.listener is not None  # bound by start()
        write_ready_file(args.ready_file, {"port": server.listener.port}, server.tls_fingerprint)
        registration = settings.directory.registration
        banner = f"flame directory: listening on {server.url} (registration: {registration})"
        if server.tls_fingerprint is None:
            return banner + "; plain HTTP (directory.insecure_plain_http)"
        return f"{banner}\ncertificate fingerprint: {fingerprint_text(server.tls_fingerprint)}"

    asyncio.run(serve_until_signalled(start, server.stop))
    return 0


def cmd_directory_invite(args: argparse.Namespace, settings: Settings) -> int:
    from flame.core.models import check_username
    from flame.directory import admin

    try:
        username = check_username(args.username)
    except ValueError as exc:
        raise FlameError(f"username {args.username!r}: {exc}") from exc
    data_dir = settings.directory_data_dir()  # one where no directory ran is refused (admin.py)
    ttl_s = settings.directory.invite_ttl_s

    async def invite() -> tuple[str, str | None]:
        code = await admin.create_invite(
            settings.directory, data_dir, username, rekey=args.rekey, ttl_s=ttl_s
        )
        return code, await admin.running_address(data_dir)

    code, address = asyncio.run(invite())
    certificate = admin.certificate_fingerprint(settings.directory, data_dir)
    if certificate is not None:  # one string: the code, the certificate and log key to pin (§5.1)
        code = invite_token(code, certificate, admin.log_key(data_dir))
    print(code)
    print(
        f"One-time invite for {username}, valid {ttl_s // 3600} h"
        + (", with this directory's certificate fingerprint and key log key" if certificate else "")
        + ". On their machine:",
        file=sys.stderr,
    )
    running, port = address is not None, settings.directory.port
    if address is None and port:  # not running: where its settings make it listen
        address = admin.reachable_address(settings.directory, port)
    print(
        f"  flame init --username {username} --invite {code} "
        f"--directory {address or '<this directory address>'}",
        file=sys.stderr,
    )
    if not running:
        print(
            "The directory is not running: start it with 'flame directory serve'.", file=sys.stderr
        )
    return 0


def cmd_directory_fingerprint(args: argparse.Namespace, settings: Settings) -> int:
    from flame.directory import admin

    certificate = admin.certificate_fingerprint(settings.directory, settings.directory_data_dir())
    if certificate is None:
        raise FlameError("This directory serves plain HTTP (directory.insecure_plain_http).")
    print(fingerprint_text(certificate))
    return 0


def cmd_directory_users(args: argparse.Namespace, settings: Settings) -> int:
    from flame.core.crypto import fingerprint
    from flame.core.encoding import b64d
    from flame.directory import admin

    users = asyncio.run(admin.enrolled_users(settings.directory, settings.directory_data_dir()))
    if not users:
        print("No users enrolled yet.")
    for user in users:
        print(f"{user['username']:<24} {fingerprint(b64d(user['identity_key']))}")
    return 0


# --- parser -----------------------------------------------------------------------------------


READY_FILE_HELP = (
    "once listening, write {{pid, {}, tls}} as JSON to PATH (atomically): how a launcher learns "
    "the ports a port of 0 got, and the certificate fingerprint to pin"
)


def _daemon_flags(parser: argparse.ArgumentParser, directory_help: str) -> None:
    parser.add_argument("--data-dir", help="data folder (default: $XDG_DATA_HOME/flame/daemon)")
    parser.add_argument("--directory", metavar="ADDRESS", help=directory_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flame", description="Flame: secure peer-to-peer chat and file sharing."
    )
    parser.add_argument("--version", action="version", version=f"flame {__version__}")
    parser.add_argument("--config", help="config file (default: $XDG_CONFIG_HOME/flame/flame.toml)")
    parser.add_argument("--log-level", choices=LOG_LEVELS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser(
        "init",
        help="create keys and enroll with a directory",
        description="Create this user's keys, enroll them with the directory "
        "and seal them under a password. Asks for what is not given as a flag.",
    )
    _daemon_flags(
        init,
        "the directory's address, https://host:port (https:// may be left out: "
        "dir.example.com:8480); asked for when not given",
    )
    init.add_argument("--username", help="the username to enroll")
    init.add_argument("--invite", help="the invite 'flame directory invite' printed")
    init.add_argument(
        "--directory-fingerprint",
        metavar="FP",
        help="the directory's certificate fingerprint, as --directory-fingerprint=FP (it may "
        "start with '-'); an invite carries it; for open registration ask the directory's "
        "admin ('flame directory fingerprint')",
    )
    init.add_argument("--password-file", help="read the password from this file")
    init.set_defaults(run=cmd_init)

    serve = sub.add_parser(
        "serve",
        help="run this user's daemon",
        description="Run the daemon: remote API for peers, UI on localhost, "
        "background tasks. Locked until the UI login unless given a password.",
    )
    _daemon_flags(
        serve,
        "not needed: serve uses the directory pinned at 'flame init' (another address is "
        "named in a warning and ignored), this one only for an account of an older version "
        "that did not remember its directory",
    )
    serve.add_argument("--password-file", help="unlock at start with the password in this file")
    serve.add_argument("--peer-host", help="address the peer API binds (default 0.0.0.0)")
    serve.add_argument("--peer-port", type=int, help="peer API port (default 8470)")
    serve.add_argument("--public-address", help="URL peers use to reach this daemon")
    serve.add_argument("--ui-port", type=int, help="UI port on 127.0.0.1 (default 8471)")
    serve.add_argument(
        "--ready-file", metavar="PATH", help=READY_FILE_HELP.format("peer_port, ui_port")
    )
    serve.set_defaults(run=cmd_serve)

    directory = sub.add_parser(
        "directory",
        help="run or administer the directory",
        description="The directory: enrollment, keys and presence.",
    )
    dsub = directory.add_subparsers(dest="directory_command", required=True, metavar="ACTION")
    dserve = dsub.add_parser(
        "serve", help="run the directory server", description="Run the directory server."
    )
    dserve.add_argument("--data-dir", help="data folder (default: $XDG_DATA_HOME/flame/directory)")
    dserve.add_argument("--host", help="bind address (default 0.0.0.0)")
    dserve.add_argument("--port", type=int, help="port (default 8480)")
    dserve.add_argument("--ready-file", metavar="PATH", help=READY_FILE_HELP.format("port"))
    dserve.add_argument(
        "--registration", choices=["invite", "open"], help="invite (default) or open enrollment"
    )
    dserve.set_defaults(run=cmd_directory_serve)
    dinvite = dsub.add_parser(
        "invite",
        help="print a one-time enrollment code for a user",
        description="Create a one-time enrollment code for USERNAME.",
    )
    dinvite.add_argument("username")
    dinvite.add_argument(
        "--rekey",
        action="store_true",
        help="let an enrolled user enroll new keys (a lost or new machine)",
    )
    dinvite.add_argument("--data-dir", help="the directory's data folder")
    dinvite.set_defaults(run=cmd_directory_invite)
    dusers = dsub.add_parser(
        "users",
        help="list enrolled users",
        description="List enrolled users and their key fingerprints.",
    )
    dusers.add_argument("--data-dir", help="the directory's data folder")
    dusers.set_defaults(run=cmd_directory_users)
    about = "print the fingerprint of the directory's TLS certificate, which 'flame init' pins"
    dfingerprint = dsub.add_parser("fingerprint", help=about, description=about.capitalize())
    dfingerprint.add_argument("--data-dir", help="the directory's data folder")
    dfingerprint.set_defaults(run=cmd_directory_fingerprint)

    return parser


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    def get(name: str) -> Any:
        return getattr(args, name, None)

    flags: dict[str, Any] = {"daemon.log_level": get("log_level")}
    if args.command == "directory":
        flags.update(
            {
                "directory.data_dir": get("data_dir"),
                "directory.host": get("host"),
                "directory.port": get("port"),
                "directory.registration": get("registration"),
            }
        )
    else:
        flags.update(
            {
                "daemon.data_dir": get("data_dir"),
                "daemon.directory_url": get("directory"),
                "daemon.peer_host": get("peer_host"),
                "daemon.peer_port": get("peer_port"),
                "daemon.public_address": get("public_address"),
                "daemon.ui_port": get("ui_port"),
            }
        )
        if args.command == "serve":
            flags["daemon.password_file"] = get("password_file")
    return flags


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, flags=_flags(args))
        setup_logging(settings.daemon.log_level)
        command: Command = args.run
        return command(args, settings)
    except FlameError as exc:
        print(f"flame: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
