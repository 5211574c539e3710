-- Files (PROTOCOL.md §11).

-- One row per file, sent or received. (peer, direction, transfer_id) names it: transfer ids are
-- chosen by the sender, so an incoming id is only unique per author (nobody can pre-empt one).
CREATE TABLE IF NOT EXISTS transfers (
    peer            TEXT NOT NULL,
    direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    transfer_id     TEXT NOT NULL,             -- b64u of 16 random bytes
    message_id      TEXT,                      -- the offer's message (messages.id)
    name            TEXT NOT NULL,             -- sanitised: metadata only, never a path
    size            INTEGER NOT NULL,
    declared_type   TEXT NOT NULL,             -- what the sender said; shown, never trusted
    media_type      TEXT,                      -- sniffed from the bytes; NULL: download only
    sha256          BLOB,                      -- NULL while the sender's upload runs
    file_key        BLOB NOT NULL,
    upload_token    BLOB NOT NULL,
    chunk_bytes     INTEGER NOT NULL,
    stored_name     TEXT NOT NULL,             -- generated name under <data>/files/
    state           TEXT NOT NULL,
    held_bytes      INTEGER NOT NULL DEFAULT 0, -- in: verified and durable; out: what the peer holds
    sent_bytes      INTEGER NOT NULL DEFAULT 0, -- out: bytes put on the wire, every attempt
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    error           TEXT,
    created_at      REAL NOT NULL,
    completed_at    REAL,
    PRIMARY KEY (peer, direction, transfer_id)
);
CREATE INDEX IF NOT EXISTS transfers_by_state ON transfers (direction, state, next_attempt_at);
CREATE INDEX IF NOT EXISTS transfers_by_message ON transfers (message_id);

-- Users whose file offers and chunks are refused (006 folds it into `blocks`).
CREATE TABLE IF NOT EXISTS blocked_users (
    username   TEXT PRIMARY KEY,
    blocked_at REAL NOT NULL
);
