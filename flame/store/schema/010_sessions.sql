-- Numbered 010: 007 to 009 are the at-rest, TLS and relay migrations of the same release.
-- Version 2 (PROTOCOL.md §14): the Olm account and sessions, pickled under the pickle key
-- (§14.7). A pickle is replaced only by a later `generation`, so two transactions that carry
-- states of one session can commit in either order.
CREATE TABLE IF NOT EXISTS ratchet_account (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    pickle     TEXT NOT NULL,
    generation INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS ratchet_sessions (
    peer        TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    pickle      TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    received_at REAL,                          -- when it last opened a message from the peer
    PRIMARY KEY (peer, session_id)
);

-- Every ratchet message opened, by (author, envelope id), stored in the transaction that
-- advanced its session (§14.6): a copy that comes again is answered from here, never decrypted.
CREATE TABLE IF NOT EXISTS ratchet_inbox (
    author      TEXT NOT NULL,
    envelope_id TEXT NOT NULL,
    inner       TEXT NOT NULL,                 -- the inner message's JSON, as decrypted
    received_at REAL NOT NULL,
    PRIMARY KEY (author, envelope_id)
);
CREATE INDEX IF NOT EXISTS ratchet_inbox_by_age ON ratchet_inbox (received_at);

-- The inner message of each version 2 outbox entry: a session reset seals it again (§14.9).
CREATE TABLE IF NOT EXISTS ratchet_outbox (
    message_id TEXT PRIMARY KEY,
    inner      TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS ratchet_outbox_gone AFTER DELETE ON outbox BEGIN
    DELETE FROM ratchet_outbox WHERE message_id = OLD.message_id;
END;

-- The protocol versions a peer speaks, from its verified presence record or hello (§9).
CREATE TABLE IF NOT EXISTS peer_versions (
    username TEXT PRIMARY KEY,
    versions TEXT NOT NULL,                    -- JSON list of integers
    ts       INTEGER NOT NULL                  -- the signed record's time
);
