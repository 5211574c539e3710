-- What a relay keeps (PROTOCOL.md §13.3): per held envelope only what hand-over, quotas and expiry
-- need. The depositor's name gives way to a tag (HMAC-SHA256 of the name under a key that lives in
-- the relay's memory only and is new at every start), so the database never says who left what;
-- the deposit time goes (hand-over follows the row order). Rows held before this migration keep
-- no tag: they count against their recipient's quotas only.
CREATE TABLE relay_deposits_v2 (
    recipient     TEXT NOT NULL,
    envelope_id   TEXT NOT NULL,
    depositor_tag BLOB,
    envelope      TEXT NOT NULL,
    size          INTEGER NOT NULL,
    expires_at    REAL NOT NULL,
    PRIMARY KEY (recipient, envelope_id)
);
INSERT INTO relay_deposits_v2 (recipient, envelope_id, depositor_tag, envelope, size, expires_at)
    SELECT recipient, envelope_id, NULL, envelope, size, expires_at
    FROM relay_deposits ORDER BY deposited_at, rowid;
DROP TABLE relay_deposits;
ALTER TABLE relay_deposits_v2 RENAME TO relay_deposits;
CREATE INDEX relay_by_depositor ON relay_deposits (depositor_tag);
CREATE INDEX relay_by_expiry ON relay_deposits (expires_at);
