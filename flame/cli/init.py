"""`flame init`: each answer, from a flag or asked at a terminal, is checked as it comes: a wrong
one typed at the terminal is explained and asked again, a wrong flag is one line naming it. The
directory is reached as soon as its address is known, and its certificate compared with the one
given (or shown, to confirm). An enrollment the directory refuses for its invite or its username
asks for that again (PROTOCOL.md §5.1). The rules themselves live in services/account.py."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flame.config import Settings
from flame.core.transport import fingerprint_text
from flame.errors import FlameError, PeerUnreachable

T = TypeVar("T")
# What the directory refuses an enrollment for, and so what to ask again (directory/store.py).
INVITE_REFUSALS = frozenset({"bad_invite", "invite_used", "invite_expired", "invite_required"})
USERNAME_REFUSALS = frozenset({"username_taken"})


class Terminal:
    """The person at the terminal: questions on standard output, answers from standard input."""

    def line(self, prompt: str) -> str:
        try:
            return input(prompt).strip()
        except EOFError:
            raise FlameError("Not enrolled: the input ended before every answer.") from None

    def secret(self, prompt: str) -> str:
        try:
            return getpass.getpass(prompt)
        except EOFError:
            raise FlameError("Not enrolled: the input ended before every answer.") from None

    def say(self, text: str) -> None:
        print(text, flush=True)


@dataclass
class Answers:
    """Answers from flags, and a terminal to ask the missing ones on (None: there is none)."""

    terminal: Terminal | None

    def get(
        self,
        flag: str,
        given: str | None,
        prompt: str,
        check: Callable[[str], T],
        default: str = "",
    ) -> T:
        """`check(answer)`: a flag's value is checked once (FlameError naming the flag, unless
        the error names the address it could not reach), an answer typed is asked again, after
        the reason, until it passes."""
        if given is not None and (given or self.terminal is None):
            try:
                return check(given)
            except PeerUnreachable:
                raise
            except FlameError as exc:
                raise FlameError(f"{flag}: {exc.message}", code=exc.code) from None
        if self.terminal is None:
            raise FlameError(f"Give {flag} (no terminal to ask on).")
        while True:
            answer = self.terminal.line(prompt.format(default=default)) or default
            try:
                return check(answer)
            except FlameError as exc:
                self.terminal.say(f"  {exc.message}")


def check_username(text: str) -> str:
    from flame.core.models import check_username as rule

    try:
        return rule(text)
    except ValueError as exc:
        raise FlameError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None


@dataclass(frozen=True)
class Reached:
    """The directory, answering at `url`, and the certificate it presents (None: plain HTTP)."""

    url: str
    presented: bytes | None


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from flame.core.crypto import fingerprint as key_fingerprint
    from flame.core.transport import Endpoint
    from flame.services import account as rules

    terminal = Terminal() if sys.stdin.isatty() else None
    answers = Answers(terminal)
    plain_http = settings.daemon.insecure_plain_http
    rules.kdf_params(settings.security)  # a config error first, before any question
    data_dir = settings.daemon_data_dir()
    if rules.find_account(data_dir) is not None:
        raise FlameError(f"{data_dir} already holds a Flame account; choose another --data-dir.")
    if terminal is None:  # a script: say what is missing before calling anyone
        configured = args.directory or settings.daemon.directory_url or None
        for flag, value in (
            ("--username", args.username),
            ("--directory (or daemon.directory_url)", configured),
            ("--password-file", args.password_file),
        ):
            if not value:
                raise FlameError(f"Give {flag} (no terminal to ask on).")

    # A password file is read and judged first too: nothing to type, nothing to wait for.
    password = new_password(args, terminal) if args.password_file else None
    username = answers.get("--username", args.username, "Username: ", check_username)

    def reach(text: str) -> Reached:
        url = rules.directory_address(text, plain_http=plain_http)
        return Reached(url, asyncio.run(rules.reach_directory(url)))

    configured = settings.daemon.directory_url
    directory = answers.get(
        "--directory" if args.directory else "daemon.directory_url",
        args.directory or (configured if terminal is None else None),
        "Directory address [{default}]: " if configured else "Directory address: ",
        reach,
        default=configured,
    )

    flag_pin: bytes | None = None
    if args.directory_fingerprint:
        try:
            flag_pin = rules.parse_pin(args.directory_fingerprint)
        except FlameError as exc:
            raise FlameError(f"--directory-fingerprint: {exc.message}") from None

    def check_invite(text: str) -> tuple[str | None, bytes | None]:
        if not text:
            return None, None
        code, pin = rules.parse_invite(text)
        if pin is not None and flag_pin is not None and pin != flag_pin:
            raise FlameError("The invite and --directory-fingerprint name different certificates.")
        if pin is not None:
            rules.check_pin(directory.url, directory.presented, pin, "the invite")
        return code, pin

    def ask_invite(given: str | None) -> tuple[str | None, bytes | None]:
        return answers.get(
            "--invite",
            given if given is not None or terminal is not None else "",
            "Invite (empty if the directory has open registration): ",
            check_invite,
        )

    code, invite_pin = ask_invite(args.invite)
    pin = flag_pin or invite_pin
    if pin is not None and invite_pin is None:
        rules.check_pin(directory.url, directory.presented, pin, "--directory-fingerprint")
    if directory.presented is None:  # plain http:// (insecure_plain_http): nothing to pin
        pin = None
    elif pin is None:
        pin = confirm_presented(answers, directory)

    if password is None:
        password = new_password(args, terminal)
    endpoint = Endpoint(directory.url, pin, "directory")
    while True:
        try:
            account = asyncio.run(
                rules.init_account(settings, username, endpoint, code, password, data_dir)
            )
            break
        except FlameError as exc:  # at a terminal, ask again what the directory refused
            if terminal is None or exc.code not in INVITE_REFUSALS | USERNAME_REFUSALS:
                raise
            terminal.say(f"  {exc.message}")
            if exc.code in USERNAME_REFUSALS:
                username = answers.get("--username", None, "Username: ", check_username)
            else:
                code, invite_pin = ask_invite(None)
                if invite_pin is not None and directory.presented is not None:
                    endpoint = Endpoint(directory.url, invite_pin, "directory")
    print(f"Enrolled {account.username} with {directory.url}.")
    print(f"Data folder: {data_dir}")
    print(f"Fingerprint: {key_fingerprint(account.identity_key)}")
    print("Start the daemon with: flame serve")
    return 0


def confirm_presented(answers: Answers, directory: Reached) -> bytes:
    """No fingerprint given: ask for it, or show the one the directory presents for the person to
    confirm (PROTOCOL.md §5.1). A script must give it."""
    from flame.services import account as rules

    presented, terminal = directory.presented, answers.terminal
    assert presented is not None
    if terminal is None:
        raise FlameError(
            "Give --directory-fingerprint=FP, or the whole invite (its part after the '.'): the "
            "directory's certificate fingerprint, which 'flame directory fingerprint' prints."
        )

    def check(text: str) -> bytes | None:
        if not text:
            return None
        pin = rules.parse_pin(text)
        rules.check_pin(directory.url, presented, pin, "the fingerprint you typed")
        return pin

    typed = answers.get(
        "--directory-fingerprint", None, "Directory fingerprint (empty: show the one it presents): ",
        check,
    )  # fmt: skip
    if typed is not None:
        return typed
    answer = terminal.line(
        f"The directory at {directory.url} presents the certificate fingerprint\n"
        f"  {fingerprint_text(presented)}\nIs it the one its administrator gave you? [y/N] "
    )
    if answer.lower() not in ("y", "yes"):
        raise FlameError("Not enrolled: the directory's certificate was not confirmed.")
    return presented


def new_password(args: argparse.Namespace, terminal: Terminal | None) -> str:
    """From --password-file, or typed twice; too short, too common or not repeated alike is
    asked again."""
    from flame.cli import read_password_file
    from flame.services.account import check_new_password

    if args.password_file:
        password = read_password_file(args.password_file)
        check_new_password(password)
        return password
    if terminal is None:
        raise FlameError("Give --password-file (no terminal to ask for a password on).")
    while True:
        password = terminal.secret("New password: ")
        try:
            check_new_password(password)
        except FlameError as exc:
            terminal.say(f"  {exc.message}")
            continue
        if terminal.secret("Repeat it: ") == password:
            return password
        terminal.say("  The two differ; type the password again.")
