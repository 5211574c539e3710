-- Delivered receipts owed (PROTOCOL.md §13.2): written in the transaction that stores the
-- messages they answer, and paid a moment later, together, one receipt per author, in the
-- transaction that queues it; a burst's batches share one receipt instead of one each.
CREATE TABLE receipts_owed (
    id          INTEGER PRIMARY KEY,           -- the order they were owed in
    author      TEXT NOT NULL,                 -- who gets the receipt
    envelope_id TEXT NOT NULL,                 -- the id it carries
    owed_at     REAL NOT NULL
);
