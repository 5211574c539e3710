-- Small files travel inside their offer (PROTOCOL.md §11.6): such a transfer is complete as soon
-- as the peer's daemon has stored the offer, and nothing is ever streamed for it.
ALTER TABLE transfers ADD COLUMN inline INTEGER NOT NULL DEFAULT 0;
