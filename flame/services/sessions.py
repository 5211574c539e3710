"""Version 2 sessions (PROTOCOL.md §14): the Olm account and its prekeys at the directory,
sealing under a peer's session, opening what peers sealed, and the reset of a broken session.

Exactly once survives the ratchet (§14.6). Ratchet state is only ever changed on a copy loaded
from the last state this process produced, one peer at a time (a lock per peer):
- sealing advances the cached state at once, and the envelope's transaction carries that state
  (store/outbox.enqueue): never persisted later than an envelope it sealed, so no message key is
  used twice, even after kill -9 (one persisted alone only skips a key nobody needs);
- opening decrypts on copies, stores every inner message with the new states in ONE transaction
  (store/sessions.stage), then makes them current; on any failure the copies are dropped. A copy
  that comes again is answered from what was stored, never decrypted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import vodozemac

from flame.core import envelope as envelope_rules
from flame.core import prekeys, ratchet
from flame.core.crypto import Identity
from flame.core.models import Envelope, Inner
from flame.core.prekeys import PrekeyRecord
from flame.errors import FlameError, NotFound, PeerRefused, RequestError, Unavailable
from flame.services.events import SessionReset
from flame.services.negotiation import no_prekeys_yet, old_version
from flame.services.olm_account import OlmAccount
from flame.store import contacts as contact_store
from flame.store import outbox as outbox_store
from flame.store import sessions as store
from flame.store.contacts import Contact
from flame.store.outbox import Queued
from flame.store.sessions import ERASED, AccountState, Opened, SessionState, Staged

log = logging.getLogger("flame.sessions")
CLAIM_RETRY_S = 30.0  # a claim that failed is not tried again for a peer before this
NO_PREKEYS_RETRY_S = 30.0  # nor one that found no prekeys (asked CLAIM_ATTEMPTS times)
CLAIM_ATTEMPTS, CLAIM_PAUSE_S = 3, 0.3
SESSIONS_PER_PEER = 4  # older ones are dropped (with their skipped keys) when a new one starts


@dataclass(frozen=True, slots=True)
class SealedEnvelope:
    """An envelope to queue, and for version 2 the session state and inner message to keep."""

    envelope: Envelope
    ratchet: tuple[SessionState, str] | None = None


def _version_1(identity: Identity, contact: Contact, inner: Inner) -> SealedEnvelope:
    """A version 1 envelope (PROTOCOL.md §6), for a peer with no version 2 session."""
    return SealedEnvelope(
        envelope_rules.seal(
            identity.exchange, inner.to, contact.x25519_key, inner, statics=identity.static_secret
        )
    )


@dataclass(eq=False)
class Sessions(OlmAccount):
    cache: dict[str, list[SessionState]] = field(default_factory=dict, init=False)
    locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock), init=False
    )
    resets: int = field(default=0, init=False)  # sessions reset so far (for the tests)
    claim_failed: dict[str, float] = field(default_factory=dict, init=False)  # peer -> until
    # One unpickling less per message: each session kept live by (peer, session id), for
    # sealing and opening alike (one state: a receipt back on it must not unpickle it again).
    unpickled: ratchet.Unpickled = field(default_factory=ratchet.Unpickled, init=False)

    # --- sealing -----------------------------------------------------------------------------

    async def ensure(self, contact: Contact) -> None:
        """Before queueing a message to `contact`: start a session if version 2 needs one
        (claiming a prekey at the directory, PROTOCOL.md §14.3). Without the directory, a first
        message goes as version 1 when this daemon allows it (§14.2)."""
        peer = contact.username
        if await self.negotiation.version_for(peer) < 2 or self.cache.get(peer):
            return  # the common case, a session there already: no lock to wait for
        async with self.locks[peer]:
            if await self._states(peer) or self.claim_failed.get(peer, 0) > self.ctx.clock.now():
                return
            try:
                await self._start(contact)
            except Unavailable:
                self.claim_failed[peer] = self.ctx.clock.now() + CLAIM_RETRY_S
                if 1 not in self.negotiation.versions:
                    raise
            if not self.cache[peer]:  # no prekeys (yet): version 1 for now, asked again soon
                self.claim_failed[peer] = self.ctx.clock.now() + NO_PREKEYS_RETRY_S

    async def seal(self, contact: Contact, inner: Inner) -> SealedEnvelope:
        """Seal with the version `contact` gets: under its session when there is one (only
        `ensure` starts one), else as version 1 if this daemon allows it."""
        return (await self.seal_all(contact, [inner]))[0]

    async def seal_all(self, contact: Contact, inners: Sequence[Inner]) -> list[SealedEnvelope]:
        """`seal` for several messages to `contact`, in order, to be stored in ONE transaction:
        under version 2 they share the state after the last (pickled once, §14.6)."""
        identity = self.ctx.keys.identity()
        peer = contact.username
        if await self.negotiation.version_for(peer) == 2:
            async with self.locks[peer]:
                if await self._states(peer):
                    await self._account()
                    return self._seal_locked(contact, inners)
            if 1 not in self.negotiation.versions:
                raise Unavailable(
                    f"No secure session with {peer} yet; try again.", code="no_session"
                )
        return [_version_1(identity, contact, inner) for inner in inners]

    def _seal_locked(self, contact: Contact, inners: Sequence[Inner]) -> list[SealedEnvelope]:
        """Encrypt under the peer's first session (its lock held) and seal each result in a
        version 2 envelope; the cached state advances now (see the module's docstring). The
        state after the last is pickled once and goes with every envelope: they are stored
        together, so none is ever stored with a state older than the one that sealed it."""
        ctx = self.ctx
        key = self._pickle_key()
        states = self.cache[contact.username]
        state = states[0]
        where = (state.peer, state.session_id)
        session = self.unpickled.take(where, state.pickle, key)
        me, my_identity = ctx.keys.identity(), self._my_identity()
        sealed = []
        for inner in inners:
            plaintext = envelope_rules.encode_inner(inner)
            envelope = envelope_rules.seal_bytes(
                me.exchange,
                inner.to,
                contact.x25519_key,
                envelope_rules.message_id_bytes(inner.id),
                ratchet.encrypt_outer(session, my_identity, inner, plaintext),
                version=2,
                statics=me.static_secret,
            )
            sealed.append((envelope, plaintext.decode()))
        pickle = session.pickle(key)
        self.unpickled.keep(where, pickle, session)
        new = states[0] = replace(state, pickle=pickle, generation=state.generation + 1)
        return [SealedEnvelope(envelope, (new, text)) for envelope, text in sealed]

    async def _start(self, contact: Contact) -> None:
        """Claim a prekey of `contact` and start a session (its lock held). A peer with no prekeys
        speaks version 1 (noted, until a signed record says otherwise)."""
        ctx = self.ctx
        peer = contact.username
        try:
            claimed = await self._claim(peer)
        except PeerRefused as exc:
            if exc.code == NotFound.code or exc.code == "no_prekeys":
                known = await store.versions_of(ctx.db, peer)
                if 1 not in self.negotiation.versions and (known is None or 2 in known[0]):
                    raise no_prekeys_yet(peer) from exc  # nothing signed says it is older
                await self.negotiation.note_versions([(peer, [1], 0)])
                if 1 not in self.negotiation.versions:
                    raise old_version(peer) from exc
                return
            raise Unavailable(
                f"Cannot start a secure session with {peer}: {exc.message}", code="no_session"
            ) from exc
        except FlameError as exc:
            raise Unavailable(
                f"Cannot start a secure session with {peer} now: the directory does not answer.",
                code="no_session",
                retry_after_s=5,
            ) from exc
        if claimed.username != peer or not prekeys.verify_prekey(claimed, contact.identity_key):
            raise Unavailable(
                f"The directory served a prekey of {peer} that does not verify.", code="no_session"
            )
        key = self._pickle_key()
        account = vodozemac.Account.from_pickle((await self._account()).pickle, key)
        session_id, pickle = ratchet.outbound(account, key, claimed)
        state = SessionState(peer, session_id, pickle, 1, ctx.clock.now())
        await store.save_sessions(ctx.db, [state])
        self.negotiation.forget(peer)  # a session says 2 (§14.2): requests go with the MAC now
        self.cache[peer] = [state, *self.cache.get(peer, [])][:SESSIONS_PER_PEER]
        log.info("started a version 2 session with %s", peer)

    async def _claim(self, peer: str) -> PrekeyRecord:
        """A claimed prekey of `peer`; asked a few times when there is none yet: a daemon that has
        just been unlocked publishes its first prekeys within moments (PROTOCOL.md §14.3)."""
        for _ in range(CLAIM_ATTEMPTS - 1):
            try:
                return (await self.client.claim_prekey(self.directory, peer)).prekey
            except PeerRefused as exc:
                if exc.code != "no_prekeys":
                    raise
            await self.ctx.clock.sleep(CLAIM_PAUSE_S)
        return (await self.client.claim_prekey(self.directory, peer)).prekey

    # --- opening -------------------------------------------------------------------------------

    async def open_all(self, outers: Sequence[Inner]) -> list[Opened]:
        """The inner messages of version 2 envelopes (outer kind `ratchet`), in order; each one
        already opened is taken from the store, never decrypted twice (ERASED, if deleted since)."""
        results: list[Opened | None] = [None] * len(outers)
        by_author: dict[str, list[int]] = defaultdict(list)
        for index, outer in enumerate(outers):
            by_author[outer.from_].append(index)
        for author, indexes in by_author.items():
            opened = await self._open_from(author, [outers[i] for i in indexes])
            for index, result in zip(indexes, opened, strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    async def _open_from(self, author: str, outers: list[Inner]) -> list[Opened]:
        ctx = self.ctx
        key = self._pickle_key()
        now = ctx.clock.now()
        async with self.locks[author]:
            done = await store.staged(ctx.db, author, [o.id for o in outers])
            states = {s.session_id: s for s in await self._states(author)}
            live: dict[
                str, vodozemac.Session
            ] = {}  # session id -> its state after the last success
            needs_account = any(
                o.id not in done and ratchet.body_of(o).session not in states for o in outers
            )
            async with self._account_lock_if(needs_account):
                account_pickle = (await self._account()).pickle if needs_account else None
                account_changed = False
                results: list[Opened] = []
                fresh: list[Staged] = []
                for outer in outers:
                    if outer.id in done:
                        results.append(done[outer.id] or ERASED)
                        continue
                    body = ratchet.body_of(outer)
                    try:
                        session, account = live.get(body.session), None
                        if session is None and body.session in states:  # kept, or unpickled
                            where = (author, body.session)
                            session = self.unpickled.take(where, states[body.session].pickle, key)
                            live[body.session] = session
                        elif session is None and account_pickle is not None:
                            account = vodozemac.Account.from_pickle(account_pickle, key)
                        opened = ratchet.decrypt_live(session, account, key, body, outer)
                    except RequestError as exc:  # a failure leaves the session as it was
                        if exc.code == "no_session":
                            await self._reset_noticed(author)
                            log.warning("a version 2 message from %s did not open", author)
                        results.append(exc)
                        continue
                    live[body.session] = opened.session
                    if opened.account_pickle is not None:
                        account_pickle, account_changed = opened.account_pickle, True
                    done[outer.id] = opened.inner
                    fresh.append(Staged(author, outer.id, opened.plaintext.decode(), now))
                    results.append(opened.inner)
                # Each session that opened something, pickled once, after its last message.
                pickles = {sid: session.pickle(key) for sid, session in live.items()}
                new_states = [
                    store.advanced(states.get(sid), author, sid, pickle, now)
                    for sid, pickle in pickles.items()
                    if sid not in states or pickle != states[sid].pickle
                ]
                account_state = None
                if account_changed and account_pickle is not None and self.account is not None:
                    account_state = AccountState(account_pickle, self.account.generation + 1)
                if fresh:  # atomic; durable with the receivers' commit (§14.6)
                    await store.stage(ctx.db, fresh, new_states, account_state)
                    if account_state is not None:
                        self.account = account_state
                        await store.prune_sessions(ctx.db, author, SESSIONS_PER_PEER)
                    self._make_current(author, new_states)
                for sid, session in live.items():  # committed (or unchanged): the next goes on
                    if sid in states or fresh:
                        self.unpickled.keep((author, sid), pickles[sid], session)
        return results

    def _make_current(self, peer: str, new_states: list[SessionState]) -> None:
        """Committed states become the cached ones: the peer's latest session first."""
        by_id = {s.session_id: s for s in self.cache.get(peer, [])}
        for state in new_states:
            by_id[state.session_id] = state
        ordered = sorted(
            by_id.values(),
            key=lambda s: (s.received_at is not None, s.received_at or 0, s.created_at),
            reverse=True,
        )
        self.cache[peer] = ordered[:SESSIONS_PER_PEER]

    def _account_lock_if(self, needed: bool) -> asyncio.Lock | contextlib.nullcontext[None]:
        return self.account_lock if needed else contextlib.nullcontext()

    # --- healing (PROTOCOL.md §14.9) ------------------------------------------------------------

    async def reset(self, peer: str) -> bool:
        """`peer` could not open our messages: forget our sessions with it, start a new one, and
        seal every queued version 2 envelope to it again under that one (same ids, so a copy
        that did arrive stays a duplicate); as version 1 if the peer has no prekeys any more and
        this daemon allows it. True when they were sealed again."""
        ctx = self.ctx
        contact = await contact_store.get_contact(ctx.db, peer)
        if contact is None or contact.key_changed:
            return False
        async with self.locks[peer]:
            await self._account()
            await store.delete_sessions(ctx.db, peer)
            self.cache[peer] = []
            self.unpickled.forget(peer)
            try:
                await self._start(contact)
            except RequestError as exc:
                log.warning("could not start a new session with %s: %s", peer, exc.message)
                return False
            session = bool(self.cache[peer])
            if not session and 1 not in self.negotiation.versions:
                return False
            queued = await outbox_store.outgoing_v2(ctx.db, peer)
            inners = [Inner.model_validate_json(inner_json) for _, _, inner_json in queued]
            if session:
                sealed = self._seal_locked(contact, inners) if inners else []
            else:  # the peer publishes no prekeys any more: an older Flame (§14.2)
                sealed = [_version_1(ctx.keys.identity(), contact, inner) for inner in inners]
            again = [
                Queued(message_id, kind, peer, one.envelope, one.ratchet)
                for (message_id, kind, _), one in zip(queued, sealed, strict=True)
            ]
            await outbox_store.replace_envelopes(ctx.db, again)
        self.resets += 1
        log.warning("reset the version 2 session with %s (%d envelopes again)", peer, len(again))
        await self._reset_noticed(peer)
        return True

    async def _reset_noticed(self, peer: str) -> None:
        """Both users see a notice (§14.9): kept for the conversation, and shown now."""
        await store.note_reset(self.ctx.db, peer, self.ctx.clock.now())
        self.ctx.events.publish(SessionReset(peer))

    async def _states(self, peer: str) -> list[SessionState]:
        if peer not in self.cache:
            self.cache[peer] = (await store.load_sessions(self.ctx.db, peer))[:SESSIONS_PER_PEER]
        return self.cache[peer]
