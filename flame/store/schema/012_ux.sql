-- What the conversation view needs of the store (issue 12): verified safety numbers, when a
-- message went to relays, past blocks, and file captions in the search index.

-- The identity key whose safety number the user compared and confirmed (PROTOCOL.md §3.4); a
-- contact is verified while it is the pinned key, so a key change undoes it.
ALTER TABLE contacts ADD COLUMN verified_key BLOB;

-- When relays accepted a copy of an outgoing message (PROTOCOL.md §13.3): shown beside it.
ALTER TABLE messages ADD COLUMN relayed_at REAL;

-- What the sender writes with a file (PROTOCOL.md §11.2), kept from the browser's announcement
-- until the offer is sent.
ALTER TABLE transfers ADD COLUMN caption TEXT NOT NULL DEFAULT '';

-- Blocks that ended: what a contact wrote while blocked is never shown (PROTOCOL.md §12.4).
CREATE TABLE block_periods (
    username     TEXT NOT NULL,
    blocked_at   REAL NOT NULL,
    unblocked_at REAL NOT NULL
);
CREATE INDEX block_periods_by_user ON block_periods (username);

-- The search index covers a file's caption (PROTOCOL.md §11.2) as it covers a text message: the
-- generated column is made again with the caption in it, and the index rebuilt from it.
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts;
ALTER TABLE messages DROP COLUMN search_text;
ALTER TABLE messages ADD COLUMN search_text TEXT
    GENERATED ALWAYS AS (CASE kind WHEN 'text' THEN json_extract(body, '$.text')
                                   WHEN 'file_offer' THEN json_extract(body, '$.caption') END)
    VIRTUAL;

CREATE VIRTUAL TABLE messages_fts USING fts5(
    search_text,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.search_text IS NOT NULL BEGIN
    INSERT INTO messages_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.search_text IS NOT NULL BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, search_text)
    VALUES ('delete', old.rowid, old.search_text);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF kind, body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, search_text)
    SELECT 'delete', old.rowid, old.search_text WHERE old.search_text IS NOT NULL;
    INSERT INTO messages_fts (rowid, search_text)
    SELECT new.rowid, new.search_text WHERE new.search_text IS NOT NULL;
END;

INSERT INTO messages_fts (rowid, search_text)
SELECT rowid, search_text FROM messages WHERE search_text IS NOT NULL;
