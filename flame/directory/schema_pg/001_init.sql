-- The directory's PostgreSQL database (the same tables as the SQLite file's migrations 001-004).
-- Times are UTC epoch seconds. `seq`: the head number of the user's last change (PROTOCOL.md §5.4).
CREATE TABLE users (
    username     TEXT PRIMARY KEY,
    identity_key BYTEA NOT NULL,
    x25519_key   BYTEA NOT NULL,
    x25519_sig   BYTEA NOT NULL,
    enrolled_at  BIGINT NOT NULL,
    seq          BIGINT NOT NULL
);
CREATE INDEX users_by_seq ON users (seq);

-- The one counter of changes. Every writer takes its row lock last and holds it to its commit,
-- so changes commit in the order of their numbers: a reader at head h has seen every change <= h.
CREATE TABLE change_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_head (id, seq) VALUES (1, 0);

-- One-time enrollment codes, stored as SHA-256 of the normalised code.
CREATE TABLE invites (
    code_hash  BYTEA PRIMARY KEY,
    username   TEXT NOT NULL,
    rekey      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- The published signed presence report per user (JSON of the PresenceRecord); `material` and
-- `published_ts` let a report that only keeps it alive be one UPDATE (core/presence.py).
CREATE TABLE presence (
    username     TEXT PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
    record       TEXT NOT NULL,
    material     TEXT NOT NULL,
    published_ts BIGINT NOT NULL,
    expires_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX presence_by_expiry ON presence (expires_at);

-- Version 2 prekeys (PROTOCOL.md §14.3); `n` keeps the order they were given in.
CREATE TABLE prekeys (
    n        BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    fallback BOOLEAN NOT NULL,
    record   TEXT NOT NULL,
    UNIQUE (username, key)
);
CREATE INDEX prekeys_in_order ON prekeys (username, fallback, n);
