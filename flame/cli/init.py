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
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from flame.config import Settings
from flame.core.transport import Endpoint, fingerprint_text
from flame.errors import FlameError, PeerUnreachable

if TYPE_CHECKING:
    from flame.core.keys import Account

T = TypeVar("T")
# What the directory refuses an enrollment for (PROTOCOL.md §5.1), and so what to ask again.
INVITE_REFUSALS = frozenset({"bad_invite", "invite_used", "invite_expired", "invite_required"})
USERNAME_REFUSALS = frozenset({"username_taken"})
INVITE_QUESTION = "Invite (empty if the directory has open registration): "
# The one-time code, the certificate it names, and the key log key it names (PROTOCOL.md §18.1).
Invite = tuple[str | None, bytes | None, bytes | None]


class Terminal:
    """The person at the terminal: questions on standard output, answers from standard input."""

    def line(self, prompt: str) -> str:
        return self._read(lambda: input(prompt).strip())

    def secret(self, prompt: str) -> str:
        return self._read(lambda: getpass.getpass(prompt))

    def say(self, text: str) -> None:
        print(text, flush=True)

    @staticmethod
    def _read(read: Callable[[], str]) -> str:
        try:
            return read()
        except EOFError:
            raise FlameError("Not enrolled: the input ended before every answer.") from None


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


@dataclass(frozen=True)
class Reached:
    """The directory, answering at `url`, and the certificate it presents (None: plain HTTP)."""

    url: str
    presented: bytes | None


def check_username(text: str) -> str:
    from flame.core.models import check_username as rule
    from flame.services.account import sentence

    try:
        return rule(text)
    except ValueError as exc:
        raise FlameError(sentence(exc)) from None


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from flame.core.crypto import fingerprint as key_fingerprint

    terminal = Terminal() if sys.stdin.isatty() else None
    answers = Answers(terminal)
    data_dir = settings.daemon_data_dir()
    check_before_asking(args, settings, data_dir, script=terminal is None)
    # A password file is read and judged first too: nothing to type, nothing to wait for.
    password = new_password(args, terminal) if args.password_file else None
    username = answers.get("--username", args.username, "Username: ", check_username)
    directory = ask_directory(answers, args, settings)
    flag_pin = parse_flag_pin(args.directory_fingerprint)
    check_invite = invite_rule(directory, flag_pin)
    code, invite_pin, log_key = answers.get(
        "--invite", args.invite if args.invite or terminal else "", INVITE_QUESTION, check_invite
    )
    pin = ask_pin(answers, directory, invite_pin or flag_pin, checked=invite_pin is not None)
    if password is None:
        password = new_password(args, terminal)
    account = enroll(
        answers, settings, data_dir, (username, Endpoint(directory.url, pin, "directory")),
        (code, log_key, password), check_invite,
    )  # fmt: skip
    print(f"Enrolled {account.username} with {directory.url}.")
    print(f"Data folder: {data_dir}")
    print(f"Fingerprint: {key_fingerprint(account.identity_key)}")
    print("Start the daemon with: flame serve")
    return 0


def check_before_asking(
    args: argparse.Namespace, settings: Settings, data_dir: Path, *, script: bool
) -> None:
    """What is wrong before any question or call: the Argon2id cost, a folder that holds an
    account already, and for a script what it did not give."""
    from flame.services.account import find_account, kdf_params

    kdf_params(settings.security)
    if find_account(data_dir) is not None:
        raise FlameError(f"{data_dir} already holds a Flame account; choose another --data-dir.")
    if script:
        for flag, value in (
            ("--username", args.username),
            ("--directory (or daemon.directory_url)", args.directory or settings.daemon.directory_url),
            ("--password-file", args.password_file),
        ):  # fmt: skip
            if not value:
                raise FlameError(f"Give {flag} (no terminal to ask on).")


def ask_directory(answers: Answers, args: argparse.Namespace, settings: Settings) -> Reached:
    """The directory's address, reached at once: a malformed address, or one where nothing
    answers, is asked again. The config's is the default offered."""
    from flame.services.account import directory_address, reach_directory

    plain_http = settings.daemon.insecure_plain_http

    def reach(text: str) -> Reached:
        url = directory_address(text, plain_http=plain_http)
        return Reached(url, asyncio.run(reach_directory(url)))

    configured = settings.daemon.directory_url
    return answers.get(
        "--directory" if args.directory else "daemon.directory_url",
        args.directory or (configured if answers.terminal is None else None),
        "Directory address [{default}]: " if configured else "Directory address: ",
        reach,
        default=configured,
    )


def parse_flag_pin(text: str | None) -> bytes | None:
    from flame.services.account import parse_pin

    if not text:
        return None
    try:
        return parse_pin(text)
    except FlameError as exc:
        raise FlameError(f"--directory-fingerprint: {exc.message}") from None


def invite_rule(directory: Reached, flag_pin: bytes | None) -> Callable[[str], Invite]:
    """The check of an invite: one that parses, naming the certificate the directory presents
    (and the one --directory-fingerprint names, when both do)."""
    from flame.services.account import check_pin, parse_invite

    def check(text: str) -> Invite:
        if not text:
            return None, None, None
        code, pin, log_key = parse_invite(text)
        if pin is not None and flag_pin is not None and pin != flag_pin:
            raise FlameError("The invite and --directory-fingerprint name different certificates.")
        if pin is not None:
            check_pin(directory.url, directory.presented, pin, "the invite")
        return code, pin, log_key

    return check


def ask_pin(
    answers: Answers, directory: Reached, pin: bytes | None, *, checked: bool
) -> bytes | None:
    """The certificate to pin (PROTOCOL.md §5.1): the one given (the invite's, `checked`, or the
    flag's), else one typed or the one presented, confirmed by the person. None over plain HTTP."""
    from flame.services.account import check_pin, parse_pin

    presented, terminal = directory.presented, answers.terminal
    if presented is None:  # plain http:// (insecure_plain_http): nothing to pin
        return None
    if pin is not None:
        if not checked:
            check_pin(directory.url, presented, pin, "--directory-fingerprint")
        return pin
    if terminal is None:
        raise FlameError(
            "Give --directory-fingerprint=FP, or the whole invite (its part after the '.'): the "
            "directory's certificate fingerprint, which 'flame directory fingerprint' prints."
        )

    def check(text: str) -> bytes | None:
        if not text:
            return None
        typed = parse_pin(text)
        check_pin(directory.url, presented, typed, "the fingerprint you typed")
        return typed

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


def enroll(
    answers: Answers,
    settings: Settings,
    data_dir: Path,
    who: tuple[str, Endpoint],
    secrets: tuple[str | None, bytes | None, str],
    check_invite: Callable[[str], Invite],
) -> Account:
    """Enroll `who` (username, directory) with `secrets` (invite code, the key log key it names,
    password); at a terminal, what the directory refuses (the invite, the username) is asked
    again and tried again."""
    from flame.services.account import init_account

    (username, directory), (code, log_key, password) = who, secrets
    while True:
        try:
            return asyncio.run(
                init_account(settings, username, directory, code, password, data_dir, log_key)
            )
        except FlameError as exc:
            terminal, refused = answers.terminal, exc.code
            if terminal is None or refused not in INVITE_REFUSALS | USERNAME_REFUSALS:
                raise
            terminal.say(f"  {exc.message}")
        if refused in USERNAME_REFUSALS:
            username = answers.get("--username", None, "Username: ", check_username)
            continue
        code, pin, log_key = answers.get("--invite", None, INVITE_QUESTION, check_invite)
        if pin is not None and directory.tls is not None:
            directory = Endpoint(directory.url, pin, "directory")


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
