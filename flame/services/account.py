"""Creating an account (`flame init`): keys, the sealed keystore, the peer listener's TLS
certificate, enrollment with the directory over TLS pinned to the certificate the user was given
(PROTOCOL.md §1.3, §5.1)."""

from __future__ import annotations

from pathlib import Path

from flame.config import Settings
from flame.core.crypto import Identity, KdfParams, seal_keystore
from flame.core.encoding import b64e
from flame.core.keys import Account, Keys
from flame.core.models import EnrollRequest, check_username
from flame.core.signing import enrollment_proof, sign_record
from flame.core.transport import Endpoint, check_address, parse_fingerprint, split_invite
from flame.errors import ConfigError, FlameError, PeerRefused, PeerUnreachable
from flame.net.peer_client import PeerClient
from flame.net.tls import ensure_certificate
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


def pinned_directory(
    url: str, invite: str | None, fingerprint: str | None, *, plain_http: bool
) -> tuple[Endpoint, str | None]:
    """The directory to enroll with and the invite's one-time code. Its certificate fingerprint
    comes from the invite (`flame directory invite` prints code and fingerprint as one string) or
    from `fingerprint`; with neither it is None, for the user to confirm (PROTOCOL.md §5.1).

    Raises:
        FlameError: an address, invite or fingerprint that does not parse, or two that differ.
    """
    url = url.rstrip("/")
    try:
        check_address(url, plain_http=plain_http)
        code, from_invite = split_invite(invite) if invite else (None, None)
        given = parse_fingerprint(fingerprint) if fingerprint else None
    except ValueError as exc:
        raise FlameError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
    if url.startswith("http://"):
        return Endpoint(url, None, "directory"), code  # insecure_plain_http: nothing to pin
    if given is not None and from_invite is not None and given != from_invite:
        raise FlameError("The invite and --directory-fingerprint name different certificates.")
    return Endpoint(url, given or from_invite, "directory"), code


async def init_account(
    settings: Settings,
    username: str,
    directory: Endpoint,
    invite: str | None,
    password: str,
    data_dir: Path,
) -> Account:
    """Generate keys, enroll them with the directory, then store them sealed under the password,
    with the directory's address and pinned certificate.

    Nothing is written to the database if enrollment fails, so a retry with a corrected invite
    starts clean.
    """
    try:
        check_username(username)
    except ValueError as exc:
        raise ConfigError(f"username {username!r}: {exc}") from exc
    if len(password) < MIN_PASSWORD_CHARS:
        raise FlameError(f"The password must have at least {MIN_PASSWORD_CHARS} characters.")
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
            client = PeerClient(
                Keys(account),
                settings.daemon.request_timeout_s,
                lambda: 0.0,
                plain_http=settings.daemon.insecure_plain_http,
            )
            try:
                await client.enroll(directory, enroll_request(identity, username, invite))
            except PeerRefused as exc:
                raise FlameError(f"The directory refused the enrollment: {exc.message}") from exc
            except PeerUnreachable as exc:
                raise FlameError(f"Enrollment failed: {exc.message}") from exc
            finally:
                await client.close()
            if not settings.daemon.insecure_plain_http:
                ensure_certificate(data_dir)  # the peer listener's, named in every presence
            await save_account(db, account, directory)
            return account
        finally:
            await db.close()
    finally:
        lock.release()
