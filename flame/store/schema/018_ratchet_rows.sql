-- The ratchet messages opened (PROTOCOL.md §14.6), without the unique index on (author, envelope
-- id): envelope ids are random, so that index took a page per message anywhere in it. Rows are
-- appended in the order they were opened; the daemon finds them through its own index in memory
-- (store/sessions.OpenedIndex), checked against the row.
CREATE TABLE ratchet_opened (
    id          INTEGER PRIMARY KEY,           -- in the order opened; what the index in memory holds
    author      TEXT NOT NULL,
    envelope_id TEXT NOT NULL,
    inner       TEXT NOT NULL,                 -- the inner message's JSON, as decrypted
    received_at REAL NOT NULL
);
INSERT INTO ratchet_opened (author, envelope_id, inner, received_at)
    SELECT author, envelope_id, inner, received_at FROM ratchet_inbox ORDER BY received_at;
DROP TABLE ratchet_inbox;
ALTER TABLE ratchet_opened RENAME TO ratchet_inbox;
CREATE INDEX ratchet_inbox_by_age ON ratchet_inbox (received_at);

-- The inner message of a queued version 2 envelope (§14.9) moves into its outbox row: it was a
-- table of its own, with its own random index, written and deleted beside every entry.
ALTER TABLE outbox ADD COLUMN inner TEXT;      -- version 2 only: the inner message sealed
UPDATE outbox SET inner = (SELECT r.inner FROM ratchet_outbox r WHERE r.message_id = outbox.message_id);
DROP TRIGGER ratchet_outbox_gone;
DROP TABLE ratchet_outbox;
