-- Replies, edits, deletes and reactions (PROTOCOL.md §17). A reply's reference lives in its body.
-- edited_at: when the text shown was written (the author's clock), NULL if never edited;
-- deleted: 'everyone' (a tombstone, shown as such) or 'me' (hidden here only), its text gone;
-- target: on the row of an edit, delete or reaction, the key of the message it acts on.
ALTER TABLE messages ADD COLUMN edited_at REAL;
ALTER TABLE messages ADD COLUMN deleted TEXT CHECK (deleted IN ('everyone', 'me'));
ALTER TABLE messages ADD COLUMN target TEXT;
CREATE INDEX messages_by_target ON messages (target) WHERE target IS NOT NULL;

-- Every version of an edited message, the original first (edit_id ''): the one with the largest
-- (ts_ms, edit_id) is its text (§17.2). Gone with the message's text when it is deleted.
CREATE TABLE message_versions (
    message_id TEXT NOT NULL,
    edit_id    TEXT NOT NULL,
    text       TEXT NOT NULL,
    ts_ms      INTEGER NOT NULL,
    PRIMARY KEY (message_id, edit_id)
);

-- Each person's reactions to a message, by emoji: the one with the latest ts_ms wins (§17.4).
CREATE TABLE reactions (
    message_id TEXT NOT NULL,
    reactor    TEXT NOT NULL,
    emoji      TEXT NOT NULL,
    is_on      INTEGER NOT NULL,
    ts_ms      INTEGER NOT NULL,
    PRIMARY KEY (message_id, reactor, emoji)
);

-- A deleted or edited text leaves the search index itself, not only its lookups: FTS5's
-- secure-delete removes the old entries from the index's pages at once (docs/ARCHITECTURE.md).
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
