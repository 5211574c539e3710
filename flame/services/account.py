"""Creating an account (`flame init`): keys, the sealed keystore, enrollment with the directory."""

from __future__ import annotations

from pathlib import Path

from flame.config import Settings
from flame.core.crypto import Identity, KdfParams, seal_keystore
from flame.core.encoding import b64e
from flame.core.keys import Account, Keys
from flame.core.models import EnrollRequest, check_username
from flame.core.signing import enrollment_proof, sign_record
from flame.errors import ConfigError, FlameError, PeerRefused
from flame.net.peer_client import PeerClient
from flame.store.db import FolderLock, open_daemon_db
from flame.store.keystore import load_account, save_account

MIN_PASSWORD_CHARS = 8


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


async def init_account(
    settings: Settings,
    username: str,
    directory_url: str,
    invite: str | None,
    password: str,
    data_dir: Path,
) -> Account:
    """Generate keys, enroll them with the directory, then store them sealed under the password.

    Nothing is written if enrollment fails, so a retry with a corrected invite starts clean.
    """
    try:
        check_username(username)
    except ValueError as exc:
        raise ConfigError(f"username {username!r}: {exc}") from exc
    if len(password) < MIN_PASSWORD_CHARS:
        raise FlameError(f"The password must have at least {MIN_PASSWORD_CHARS} characters.")
    directory_url = directory_url.rstrip("/")
    lock = FolderLock(data_dir)
    lock.acquire()
    try:
        db = await open_daemon_db(data_dir)
        try:
            if await load_account(db) is not None:
                raise FlameError(
                    f"{data_dir} already holds a Flame account; choose another --data-dir."
                )
            identity = Identity.generate()
            security = settings.security
            params = KdfParams(
                security.argon2_memory_kib, security.argon2_iterations, security.argon2_lanes
            )
            account = Account(
                username,
                identity.identity_key,
                identity.x25519_key,
                identity.binding_signature(username),
                seal_keystore(identity, username, password, params),
            )
            # Enrollment is unsigned: the client needs no unlocked keys for it.
            client = PeerClient(Keys(account), settings.daemon.request_timeout_s, lambda: 0.0)
            try:
                await client.enroll(directory_url, enroll_request(identity, username, invite))
            except PeerRefused as exc:
                raise FlameError(f"The directory refused the enrollment: {exc.message}") from exc
            finally:
                await client.close()
            await save_account(db, account, directory_url)
            return account
        finally:
            await db.close()
    finally:
        lock.release()
