-- The directory's database. Times are UTC epoch seconds.
CREATE TABLE users (
    username     TEXT PRIMARY KEY,
    identity_key BLOB NOT NULL,
    x25519_key   BLOB NOT NULL,
    x25519_sig   BLOB NOT NULL,
    enrolled_at  INTEGER NOT NULL
);

-- One-time enrollment codes, stored as SHA-256 of the normalised code.
CREATE TABLE invites (
    code_hash  BLOB PRIMARY KEY,
    username   TEXT NOT NULL,
    rekey      INTEGER NOT NULL DEFAULT 0,   -- 1: may replace the keys of an existing user
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

-- The latest signed presence report per user (JSON of the PresenceRecord).
CREATE TABLE presence (
    username    TEXT PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
    record      TEXT NOT NULL,
    expires_at  REAL NOT NULL
);
