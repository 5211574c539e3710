-- Files streamed to the peer while the browser's upload still arrives (PROTOCOL.md §11.4): the
-- offer goes without its SHA-256, which follows the last chunk, sealed (the hash trailer). Set on
-- the sender's row from the upload's start, on the receiver's when the offer had no `sha256`.
ALTER TABLE transfers ADD COLUMN hash_last INTEGER NOT NULL DEFAULT 0;
