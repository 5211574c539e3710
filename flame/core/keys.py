"""This user's account and, once the password has unsealed them, the private keys.

`Keys.identity()` is the one check of "locked": every part that needs a private key asks it, and
a locked daemon answers LockedError (503 with Retry-After to peers, PROTOCOL.md §7). No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

from flame.core.crypto import Identity, SealedKeystore
from flame.errors import LockedError


@dataclass(frozen=True, slots=True)
class Account:
    """What the keystore row holds: the username, the public keys and the sealed private keys."""

    username: str
    identity_key: bytes
    x25519_key: bytes
    x25519_sig: bytes
    sealed: SealedKeystore


class Keys:
    def __init__(self, account: Account) -> None:
        self.account = account
        self._identity: Identity | None = None

    @property
    def username(self) -> str:
        return self.account.username

    @property
    def is_unlocked(self) -> bool:
        return self._identity is not None

    def identity(self) -> Identity:
        """The private keys, or LockedError while the user has not logged in."""
        if self._identity is None:
            raise LockedError("This daemon is locked; its user has not logged in yet.")
        return self._identity

    def unlock(self, identity: Identity) -> bool:
        """Hold the unsealed keys. True the first time (the daemon was locked until now)."""
        if identity.identity_key != self.account.identity_key:
            raise ValueError("these keys are not this account's")
        first = self._identity is None
        self._identity = identity
        return first

    def lock(self) -> None:
        """Forget the private keys: from now on everything that needs them is refused."""
        self._identity = None
