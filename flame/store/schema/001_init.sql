-- The daemon's database. Times are UTC epoch seconds (REAL) unless named *_ms.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Exactly one row: this user's keys, private halves sealed under Argon2id(password).
CREATE TABLE keystore (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    username     TEXT NOT NULL,
    identity_key BLOB NOT NULL,
    x25519_key   BLOB NOT NULL,
    x25519_sig   BLOB NOT NULL,
    salt         BLOB NOT NULL,
    nonce        BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    memory_kib   INTEGER NOT NULL,
    iterations   INTEGER NOT NULL,
    lanes        INTEGER NOT NULL
);

-- Everyone we know of, with the identity key pinned on first use. A different key seen later is
-- kept in pending_* and used for nothing until the user accepts it.
CREATE TABLE contacts (
    username             TEXT PRIMARY KEY,
    identity_key         BLOB NOT NULL,
    x25519_key           BLOB NOT NULL,
    x25519_sig           BLOB NOT NULL,
    pending_identity_key BLOB,
    pending_x25519_key   BLOB,
    pending_x25519_sig   BLOB,
    key_changed_at       REAL,
    address              TEXT,
    status               TEXT NOT NULL DEFAULT 'offline',
    presence_ts          INTEGER,
    pinned_at            REAL NOT NULL
);

CREATE TABLE messages (
    rowid       INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,          -- the envelope id: deduplicates deliveries
    peer        TEXT NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    author      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,                 -- JSON of the inner body
    sent_at     REAL NOT NULL,                 -- the author's clock
    received_at REAL,
    state       TEXT NOT NULL,
    error       TEXT
);
CREATE INDEX messages_by_peer ON messages (peer, sent_at, rowid);

-- Every outgoing envelope until the recipient's daemon acknowledged it (PROTOCOL.md §13.1).
CREATE TABLE outbox (
    message_id      TEXT PRIMARY KEY REFERENCES messages (id),
    peer            TEXT NOT NULL,
    envelope        TEXT NOT NULL,             -- the sealed envelope, JSON
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    created_at      REAL NOT NULL
);
CREATE INDEX outbox_by_peer ON outbox (peer);  -- entries of a peer in creation (rowid) order
CREATE INDEX outbox_due ON outbox (peer, next_attempt_at);

-- The next sequence number per conversation, as sender.
CREATE TABLE sequences (
    peer     TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL
);

-- How far the user has read each conversation (for unread counts).
CREATE TABLE reads (
    peer            TEXT PRIMARY KEY,
    last_read_rowid INTEGER NOT NULL
);
