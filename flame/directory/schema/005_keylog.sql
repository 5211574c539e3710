-- The key log (PROTOCOL.md §18): every enrolment and rekey, in order, never changed. Entry
-- `position` is leaf `position` of the log's Merkle tree. The triggers on `users` write each
-- entry in the transaction of the enrolment itself, so the directory never serves a key that its
-- log does not hold, and no code path can forget to log one.
CREATE TABLE keylog (
    position     INTEGER PRIMARY KEY,       -- 0, 1, 2, ... without gaps
    username     TEXT NOT NULL,
    identity_key BLOB NOT NULL,
    x25519_key   BLOB NOT NULL,
    x25519_sig   BLOB NOT NULL,
    ts           INTEGER NOT NULL,          -- when the directory bound these keys (enrolled_at)
    kind         TEXT NOT NULL CHECK (kind IN ('enroll', 'rekey'))
);
CREATE INDEX keylog_by_user ON keylog (username, position);

-- Users enrolled before the log existed: one entry each, in the order they enrolled.
INSERT INTO keylog (position, username, identity_key, x25519_key, x25519_sig, ts, kind)
SELECT ROW_NUMBER() OVER (ORDER BY enrolled_at, username) - 1,
       username, identity_key, x25519_key, x25519_sig, enrolled_at, 'enroll'
FROM users;

CREATE TRIGGER keylog_enrolled AFTER INSERT ON users BEGIN
    INSERT INTO keylog (position, username, identity_key, x25519_key, x25519_sig, ts, kind)
    VALUES ((SELECT COALESCE(MAX(position) + 1, 0) FROM keylog), NEW.username, NEW.identity_key,
            NEW.x25519_key, NEW.x25519_sig, NEW.enrolled_at,
            CASE WHEN EXISTS (SELECT 1 FROM keylog WHERE username = NEW.username)
                 THEN 'rekey' ELSE 'enroll' END);
END;

CREATE TRIGGER keylog_rekeyed AFTER UPDATE OF identity_key, x25519_key, x25519_sig ON users
WHEN OLD.identity_key IS NOT NEW.identity_key OR OLD.x25519_key IS NOT NEW.x25519_key
     OR OLD.x25519_sig IS NOT NEW.x25519_sig BEGIN
    INSERT INTO keylog (position, username, identity_key, x25519_key, x25519_sig, ts, kind)
    VALUES ((SELECT COALESCE(MAX(position) + 1, 0) FROM keylog), NEW.username, NEW.identity_key,
            NEW.x25519_key, NEW.x25519_sig, NEW.enrolled_at, 'rekey');
END;

-- Append-only: an entry, once written, is never changed or removed.
CREATE TRIGGER keylog_no_update BEFORE UPDATE ON keylog BEGIN
    SELECT RAISE(ABORT, 'the key log is append-only');
END;
CREATE TRIGGER keylog_no_delete BEFORE DELETE ON keylog BEGIN
    SELECT RAISE(ABORT, 'the key log is append-only');
END;
