-- Profiles, blocking and local full-text search (issue 5; PROTOCOL.md §12, docs/ARCHITECTURE.md).

-- Profiles: this user's own (signed here) and contacts' (fetched or pushed, verified against the
-- pinned identity key before they land here). `ts` is the owner's signing time in milliseconds:
-- a record older than the one held is ignored, so a replayed old profile cannot roll one back.
CREATE TABLE profiles (
    id           INTEGER PRIMARY KEY,          -- stable rowid for the FTS index
    username     TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    position     TEXT NOT NULL,
    location     TEXT NOT NULL,
    bio          TEXT NOT NULL,
    avatar       BLOB,                         -- image bytes (PNG, JPEG or WebP), checked
    ts           INTEGER NOT NULL,
    sig          TEXT NOT NULL,                -- the owner's signature over the record
    stored_at    REAL NOT NULL
);

-- People this user blocked: their requests are refused at the remote API (403) before any
-- decryption, and they are hidden from the contact list unless asked for.
CREATE TABLE blocks (
    username   TEXT PRIMARY KEY,
    blocked_at REAL NOT NULL
);

-- Search. The text of every text message (both directions) is indexed by FTS5 as an external
-- content table over a generated column, so the words are stored once (in the index) and the
-- message text once (in messages.body). Triggers keep the index in step in the same transaction
-- that stores a message.
ALTER TABLE messages ADD COLUMN search_text TEXT
    GENERATED ALWAYS AS (CASE WHEN kind = 'text' THEN json_extract(body, '$.text') END) VIRTUAL;

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

CREATE VIRTUAL TABLE profiles_fts USING fts5(
    username, display_name, position, location, bio,
    content = 'profiles',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER profiles_fts_insert AFTER INSERT ON profiles BEGIN
    INSERT INTO profiles_fts (rowid, username, display_name, position, location, bio)
    VALUES (new.id, new.username, new.display_name, new.position, new.location, new.bio);
END;

CREATE TRIGGER profiles_fts_delete AFTER DELETE ON profiles BEGIN
    INSERT INTO profiles_fts (profiles_fts, rowid, username, display_name, position, location, bio)
    VALUES ('delete', old.id, old.username, old.display_name, old.position, old.location, old.bio);
END;

CREATE TRIGGER profiles_fts_update AFTER UPDATE ON profiles BEGIN
    INSERT INTO profiles_fts (profiles_fts, rowid, username, display_name, position, location, bio)
    VALUES ('delete', old.id, old.username, old.display_name, old.position, old.location, old.bio);
    INSERT INTO profiles_fts (rowid, username, display_name, position, location, bio)
    VALUES (new.id, new.username, new.display_name, new.position, new.location, new.bio);
END;
