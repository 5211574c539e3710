-- Groups (PROTOCOL.md §19). The membership is computed from the operations (core/groups.py);
-- `groups` keeps the last result, for listing without recomputing.
CREATE TABLE groups (
    id              TEXT PRIMARY KEY,          -- the group id, b64u
    name            TEXT NOT NULL,
    picture         TEXT,                      -- b64u image, or NULL
    members         TEXT NOT NULL,             -- JSON array of usernames, sorted
    admins          TEXT NOT NULL,             -- JSON array of usernames, sorted
    heads           TEXT NOT NULL,             -- JSON array of operation hashes
    is_member       INTEGER NOT NULL,          -- this user is in the membership
    created_at      REAL NOT NULL,             -- when this daemon first held it
    next_seq        INTEGER NOT NULL DEFAULT 1, -- this user's next group message seq
    last_read_rowid INTEGER NOT NULL DEFAULT 0  -- group_messages.rowid the user has seen
);

-- Every operation held, accepted by PROTOCOL.md §19.4; never deleted (the set is the state).
CREATE TABLE group_ops (
    hash        TEXT PRIMARY KEY,
    group_id    TEXT NOT NULL,
    op          TEXT NOT NULL,                 -- the signed operation, JSON
    received_at REAL NOT NULL
);
CREATE INDEX group_ops_by_group ON group_ops (group_id);

-- Messages of groups, one row each, both directions (the text once).
CREATE TABLE group_messages (
    rowid       INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,          -- '<author>:<envelope id>' in, '<me>:<group message id>' out
    group_id    TEXT NOT NULL,
    message_id  TEXT NOT NULL,                 -- the group message id (the same at every member)
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    author      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    text        TEXT NOT NULL,
    sent_at     REAL NOT NULL,                 -- the author's clock
    received_at REAL,
    envelope_id TEXT                           -- incoming: the envelope it came in (receipts)
);
CREATE INDEX group_messages_by_group ON group_messages (group_id, sent_at, seq, rowid);

-- An outgoing group message's copy to each member: the row of `messages` (kind 'group_text') whose
-- state the outbox and the member's receipts move (PROTOCOL.md §19.5).
CREATE TABLE group_copies (
    group_message TEXT NOT NULL,               -- group_messages.id
    member        TEXT NOT NULL,
    copy_id       TEXT NOT NULL UNIQUE,        -- messages.id
    PRIMARY KEY (group_message, member)
);

-- Search over group messages, as 004_social.sql does for one-to-one ones.
CREATE VIRTUAL TABLE group_messages_fts USING fts5(
    text,
    content = 'group_messages',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER group_messages_fts_insert AFTER INSERT ON group_messages BEGIN
    INSERT INTO group_messages_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER group_messages_fts_delete AFTER DELETE ON group_messages BEGIN
    INSERT INTO group_messages_fts (group_messages_fts, rowid, text)
    VALUES ('delete', old.rowid, old.text);
END;
