-- The directory's key log as this daemon verified it (PROTOCOL.md §18.4): the last signed head
-- it took and the frontier of that tree (enough to check the next entries against the next
-- head), every entry it read (the key history of each username), and the alarms it raised.
CREATE TABLE IF NOT EXISTS keylog_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    head     TEXT NOT NULL,                -- the signed head's JSON
    frontier BLOB NOT NULL                 -- the roots of its complete subtrees, largest first
);

CREATE TABLE IF NOT EXISTS keylog_entries (
    position     INTEGER PRIMARY KEY,
    username     TEXT NOT NULL,
    identity_key BLOB NOT NULL,
    x25519_key   BLOB NOT NULL,
    ts           INTEGER NOT NULL,
    kind         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS keylog_entries_by_user ON keylog_entries (username, position);

CREATE TABLE IF NOT EXISTS keylog_alarms (
    id        INTEGER PRIMARY KEY,
    key       TEXT NOT NULL UNIQUE,        -- what it is about: one finding, one alarm
    kind      TEXT NOT NULL,
    message   TEXT NOT NULL,
    raised_at REAL NOT NULL,
    evidence  TEXT NOT NULL                -- JSON: the signed heads (and entry) it rests on
);
