"""This user's account on disk: creating it (`flame init`: keys, enrollment with the directory over
TLS pinned to the certificate the user was given, the sealed keystore, the encrypted database and
the peer listener's TLS certificate; PROTOCOL.md §1.3, §5.1), finding it (the keystore record,
outside the database), and opening it with the password (the keys and the database key; an older
data folder is converted on the way).

The rules for a new account's password and Argon2id cost are here too (PROTOCOL.md §3.6).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from flame.config import SecuritySettings, Settings
from flame.core.crypto import (
    Identity,
    KdfParams,
    Unsealed,
    new_db_key,
    open_keystore,
    seal_keystore,
)
from flame.core.encoding import b64d, b64e
from flame.core.keys import Account, Keys
from flame.core.models import EnrollRequest, check_username
from flame.core.signing import enrollment_proof, sign_record
from flame.core.transport import (
    Endpoint,
    check_address,
    invite_log_key,
    normal_address,
    parse_fingerprint,
    split_invite,
)
from flame.errors import BadRequest, ConfigError, FlameError, PeerRefused, WrongPassword
from flame.net import keylog_client
from flame.net.peer_client import PeerClient
from flame.net.tls import ensure_certificate, presented_fingerprint
from flame.services.files.atrest import seal_plain_files
from flame.store import cipher
from flame.store.db import DAEMON_DB, Database, FolderLock, open_daemon_db
from flame.store.folder import secure_folder
from flame.store.keylog import save_log_key
from flame.store.keystore import read_account, save_directory, write_account

log = logging.getLogger("flame.account")

MIN_PASSWORD_CHARS = 8
# OWASP's Password Storage Cheat Sheet: Argon2id with at least 19 MiB of memory and 2 iterations.
MIN_ARGON2_MEMORY_KIB = 19 * 1024
MIN_ARGON2_ITERATIONS = 2


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("flame.services").joinpath("data/common_passwords.txt").read_text()
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def check_new_password(password: str) -> None:
    """A new account's password: long enough, and not one of the commonest (case aside)."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise FlameError(f"The password must have at least {MIN_PASSWORD_CHARS} characters.")
    if password.lower() in common_passwords():
        raise FlameError("This password is on the list of the most common ones; choose another.")


def kdf_params(security: SecuritySettings) -> KdfParams:
    """The Argon2id cost of a new keystore. Below OWASP's minimum it is refused, unless the
    settings say `allow_weak_kdf` (the tests' and the demo's clusters, for speed: never a real
    account)."""
    params = KdfParams(
        security.argon2_memory_kib, security.argon2_iterations, security.argon2_lanes
    )
    weak = params.memory_kib < MIN_ARGON2_MEMORY_KIB or params.iterations < MIN_ARGON2_ITERATIONS
    if weak and not security.allow_weak_kdf:
        raise ConfigError(
            f"config: security.argon2_memory_kib={params.memory_kib}, "
            f"security.argon2_iterations={params.iterations}: below the minimum of "
            f"{MIN_ARGON2_MEMORY_KIB} KiB and {MIN_ARGON2_ITERATIONS} iterations"
        )
    return params


def enroll_request(identity: Identity, username: str, invite: str | None) -> EnrollRequest:
    """The enrollment: public keys, the X25519 binding, and proof of the identity key (§5.1)."""
    ik, xk = b64e(identity.identity_key), b64e(identity.x25519_key)
    return EnrollRequest(
        username=username,
        invite=invite,
        identity_key=ik,
        x25519_key=xk,
        x25519_sig=b64e(identity.binding_signature(username)),
        proof=sign_record(identity, "enroll", enrollment_proof(username, ik, xk)),
    )


def sentence(exc: ValueError) -> str:
    """A rule's reason ("the address must ...") as a sentence."""
    text = str(exc)
    return f"{text[:1].upper()}{text[1:]}."


def directory_address(text: str, *, plain_http: bool) -> str:
    """The directory's address as a person gives it: without a scheme it is https://
    (`127.0.0.1:8480` is `https://127.0.0.1:8480`).

    Raises:
        FlameError: an empty address, or one that is not https://host[:port] (PROTOCOL.md §1.3).
    """
    address = normal_address(text)
    if not address:
        raise FlameError("The directory's address is needed, e.g. https://dir.example.com:8480.")
    try:
        return check_address(address, plain_http=plain_http)
    except ValueError as exc:
        raise FlameError(sentence(exc)) from None


def parse_invite(text: str) -> tuple[str, bytes | None, bytes | None]:
    """The invite's one-time code, the directory's certificate fingerprint and its key log's
    public key, when it carries them (`flame directory invite` prints all three as one string,
    CODE.FINGERPRINT.LOGKEY, PROTOCOL.md §5.1, §18.1).

    Raises:
        FlameError: a fingerprint or key log part that does not parse.
    """
    try:
        code, pin = split_invite(text)
        return code, pin, invite_log_key(text)
    except ValueError as exc:
        raise FlameError(f"This invite is damaged: {exc}.") from None


def parse_pin(text: str) -> bytes:
    """A certificate fingerprint as the directory's admin gives it.

    Raises:
        FlameError: it does not parse.
    """
    try:
        return parse_fingerprint(text)
    except ValueError as exc:
        raise FlameError(sentence(exc)) from None


async def reach_directory(url: str) -> bytes | None:
    """Whether the directory answers at `url`, and the fingerprint of the certificate it presents
    (None over plain http://), unverified: `flame init` compares it with the one given, or shows
    it for the person to confirm (PROTOCOL.md §5.1).

    Raises:
        PeerUnreachable: nothing answers there, with the reason ("connection refused: is the
            directory running at ...?").
    """
    return await presented_fingerprint(url)


def check_pin(url: str, presented: bytes | None, pin: bytes, source: str) -> None:
    """The certificate the directory presents must be the one `source` (the invite, a flag) names.

    Raises:
        FlameError: it presents another.
    """
    if presented is not None and presented != pin:
        raise FlameError(
            f"The directory at {url} presents a certificate other than the one pinned by "
            f"{source}: refused. Check the address and {source}; someone may be in the middle."
        )


def account_directory(settings: Settings, pinned: Endpoint | None, username: str) -> Endpoint:
    """The directory an account uses: the one pinned at `flame init` (address and certificate),
    whatever the settings say, so a different or malformed daemon.directory_url gets one warning
    and changes nothing; the settings' address only for an account of a version that did not
    remember its directory."""
    configured = settings.daemon.directory_url
    if pinned is None:
        return Endpoint(configured, None, "directory")
    if configured and configured != pinned.url and malformed_directory_setting(settings) is None:
        log.warning(
            "daemon.directory_url (--directory) %s is not used: %s uses the directory it enrolled "
            "with, at %s, whose certificate flame init pinned",
            configured,
            username,
            pinned.url,
        )
    return pinned


def malformed_directory_setting(settings: Settings) -> str | None:
    """What is wrong with daemon.directory_url, if it is set and not an address Flame dials."""
    configured = settings.daemon.directory_url
    try:
        check_address(configured, plain_http=settings.daemon.insecure_plain_http)
    except ValueError as exc:
        return f"daemon.directory_url (--directory) {configured!r}: {exc}" if configured else None
    return None


async def pin_log_key(client: PeerClient, directory: Endpoint, given: bytes | None) -> bytes | None:
    """The key log key to pin: the one the directory's hello names over the pinned TLS, which must
    be the invite's when the invite carries one; None when the directory keeps no log (an older
    directory, PROTOCOL.md §18.1).

    Raises:
        FlameError: the directory names another key than the invite, or none though it has one.
    """
    hello = await keylog_client.directory_hello(client, directory)
    try:
        named = None if hello.key_log is None else b64d(hello.key_log, length=32, what="key_log")
    except BadRequest:
        named = None
    if given is not None and named != given:
        raise FlameError(
            "The directory does not present the key log key of the invite: this is not the "
            "directory that made the invite, or it replaced its key. Not enrolled."
        )
    return named


def find_account(data_dir: Path) -> Account | None:
    """The account of a data folder: its keystore record, or, in a folder of an older version,
    the keystore row of its plaintext database, copied out to the record first (the database is
    encrypted at the first unlock; until then it is as readable as it always was)."""
    account = read_account(data_dir)
    database = data_dir / DAEMON_DB
    if account is None and cipher.is_plaintext(database):
        account = cipher.read_legacy_account(database)
        if account is not None:
            write_account(data_dir, account)
            log.info("%s: keystore moved out of the database into %s", account.username, data_dir)
    return account


async def create_account(
    data_dir: Path,
    account: Account,
    db_key: bytes,
    directory: Endpoint,
    log_key: bytes | None = None,
) -> None:
    """The encrypted database (migrated, remembering the directory, its pinned certificate and
    its key log's key), then the keystore record that holds its key: a crash in between leaves
    no account, and `flame init` can run again."""
    db = await open_daemon_db(data_dir, db_key)
    try:
        await save_directory(db, directory)
        if log_key is not None:
            await save_log_key(db, log_key)
    finally:
        await db.close()
    write_account(data_dir, account)


async def init_account(
    settings: Settings,
    username: str,
    directory: Endpoint,
    invite: str | None,
    password: str,
    data_dir: Path,
    log_key: bytes | None = None,
) -> Account:
    """Generate keys, enroll them with the directory, then store them sealed under the password,
    with the directory's address, pinned certificate and key log key (`log_key`, the invite's,
    if it carried one; else the one the directory names).

    Nothing is written if enrollment fails, so a retry with a corrected invite starts clean.
    """
    try:
        check_username(username)
    except ValueError as exc:
        raise ConfigError(f"username {username!r}: {exc}") from exc
    check_new_password(password)
    params = kdf_params(settings.security)
    plain_http = settings.daemon.insecure_plain_http
    lock = FolderLock(data_dir)
    lock.acquire()
    try:
        secure_folder(data_dir)
        if find_account(data_dir) is not None:
            raise FlameError(
                f"{data_dir} already holds a Flame account; choose another --data-dir."
            )
        for leftover in ("", *cipher.SIDE_FILES):  # an init that a crash cut short
            (data_dir / (DAEMON_DB + leftover)).unlink(missing_ok=True)
        identity, db_key = Identity.generate(), new_db_key()
        account = Account(
            username,
            identity.identity_key,
            identity.x25519_key,
            identity.binding_signature(username),
            await asyncio.to_thread(seal_keystore, identity, db_key, username, password, params),
        )
        # Enrollment is unsigned: the client needs no unlocked keys for it.
        client = PeerClient(
            Keys(account), settings.daemon.request_timeout_s, lambda: 0.0, plain_http=plain_http
        )
        try:
            log_key = await pin_log_key(client, directory, log_key)
            await client.enroll(directory, enroll_request(identity, username, invite))
        except PeerRefused as exc:  # its code says what to ask again (a bad invite, a taken name)
            message = f"The directory refused the enrollment: {exc.message}"
            raise FlameError(message, code=exc.code) from exc
        finally:
            await client.close()
        if not plain_http:
            ensure_certificate(data_dir)  # the peer listener's, named in every presence
        await create_account(data_dir, account, db_key, directory, log_key)
        return account
    finally:
        lock.release()


async def unseal(account: Account, password: str) -> Unsealed:
    """Check the password against the keystore (Argon2id, in a thread). A wrong one raises
    WrongPassword and unlocks nothing."""
    unsealed = await asyncio.to_thread(open_keystore, account.sealed, account.username, password)
    if unsealed.identity.identity_key != account.identity_key:
        raise WrongPassword("The keystore does not match this account.")
    return unsealed


@dataclass(frozen=True, slots=True)
class Opened:
    """An account opened by its password: the keys, the open database, and the account as it is
    now on disk (a keystore of an older version is sealed again, with a database key)."""

    identity: Identity
    db: Database
    account: Account


async def open_account(settings: Settings, account: Account, password: str) -> Opened:
    """The password opens the keystore; its key opens the database. A data folder of an older
    version is converted on the way, each step crash-safe (docs/ARCHITECTURE.md, "At rest"):
    a database key is made and sealed with the keys (the record is replaced atomically), the
    plaintext database is rewritten encrypted, then the plaintext files are rewritten sealed."""
    data_dir = settings.daemon_data_dir()
    unsealed = await unseal(account, password)
    db_key = unsealed.db_key
    if db_key is None:  # sealed before the database was encrypted: seal the keys with a new key
        db_key = new_db_key()
        sealed = await asyncio.to_thread(
            seal_keystore,
            unsealed.identity,
            db_key,
            account.username,
            password,
            account.sealed.params,
        )
        account = dataclasses.replace(account, sealed=sealed)
        write_account(data_dir, account)  # before the database needs the key, never after
    database = data_dir / DAEMON_DB
    if cipher.is_plaintext(database):
        await asyncio.to_thread(cipher.encrypt_plaintext, database, db_key)
    db = await open_daemon_db(data_dir, db_key)
    try:
        await seal_plain_files(settings, db)
    except BaseException:
        await db.close()
        raise
    return Opened(unsealed.identity, db, account)
