-- Reliable delivery (PROTOCOL.md §13): receipts travel through the outbox like messages, relays
-- hold sealed envelopes for offline recipients.

-- The outbox, rebuilt without the foreign key to messages: receipts are queued here too.
CREATE TABLE outbox_v2 (
    message_id      TEXT PRIMARY KEY,       -- the message key, or 'receipt:<envelope id>'
    kind            TEXT NOT NULL,          -- 'text' | 'receipt'
    peer            TEXT NOT NULL,
    envelope        TEXT NOT NULL,          -- the sealed envelope, JSON
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    expires_at      REAL NOT NULL,          -- past this with no delivery: failed
    relayed_at      REAL,                   -- when relays accepted a copy
    relay_tried_at  REAL                    -- last attempt to deposit with relays
);
INSERT INTO outbox_v2 (message_id, kind, peer, envelope, attempts, next_attempt_at, last_error,
                       created_at, expires_at)
    SELECT message_id, 'text', peer, envelope, attempts, next_attempt_at, last_error, created_at,
           created_at + 1209600
    FROM outbox ORDER BY rowid;
DROP TABLE outbox;
ALTER TABLE outbox_v2 RENAME TO outbox;
CREATE INDEX outbox_by_peer ON outbox (peer);
CREATE INDEX outbox_due ON outbox (peer, next_attempt_at);

-- As a relay: sealed envelopes held for others. Only `to` is readable.
CREATE TABLE relay_deposits (
    recipient    TEXT NOT NULL,
    envelope_id  TEXT NOT NULL,
    depositor    TEXT NOT NULL,
    envelope     TEXT NOT NULL,
    size         INTEGER NOT NULL,
    deposited_at REAL NOT NULL,
    expires_at   REAL NOT NULL,
    PRIMARY KEY (recipient, envelope_id)
);
CREATE INDEX relay_by_depositor ON relay_deposits (depositor);
CREATE INDEX relay_by_expiry ON relay_deposits (expires_at);
