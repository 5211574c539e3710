-- The key log (PROTOCOL.md §18), as the SQLite file's migration 005: every enrolment and rekey, in
-- order, never changed; entry `position` is leaf `position` of the log's Merkle tree. The
-- triggers on `users` write each entry in the transaction of the enrolment itself.
CREATE TABLE keylog (
    position     BIGINT PRIMARY KEY,        -- 0, 1, 2, ... without gaps
    username     TEXT NOT NULL,
    identity_key BYTEA NOT NULL,
    x25519_key   BYTEA NOT NULL,
    x25519_sig   BYTEA NOT NULL,
    ts           BIGINT NOT NULL,           -- when the directory bound these keys (enrolled_at)
    kind         TEXT NOT NULL CHECK (kind IN ('enroll', 'rekey'))
);
CREATE INDEX keylog_by_user ON keylog (username, position);

-- Users enrolled before the log existed: one entry each, in the order they enrolled.
INSERT INTO keylog (position, username, identity_key, x25519_key, x25519_sig, ts, kind)
SELECT ROW_NUMBER() OVER (ORDER BY enrolled_at, username) - 1,
       username, identity_key, x25519_key, x25519_sig, enrolled_at, 'enroll'
FROM users;

-- Appends are serialised across every process on the database: a transaction-level advisory
-- lock, held to the commit, is taken before the next position is read, so two enrolments never
-- take one position and entries commit in the order of their positions. Under READ COMMITTED
-- the read after the lock sees the entry of the transaction that held it before.
CREATE FUNCTION keylog_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(x'6b65796c6f67'::bigint);  -- "keylog": the log's appends
    INSERT INTO keylog (position, username, identity_key, x25519_key, x25519_sig, ts, kind)
    VALUES ((SELECT COALESCE(MAX(position) + 1, 0) FROM keylog), NEW.username, NEW.identity_key,
            NEW.x25519_key, NEW.x25519_sig, NEW.enrolled_at,
            CASE WHEN EXISTS (SELECT 1 FROM keylog WHERE username = NEW.username)
                 THEN 'rekey' ELSE 'enroll' END);
    RETURN NULL;
END $$;

CREATE TRIGGER keylog_enrolled AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION keylog_append();
CREATE TRIGGER keylog_rekeyed AFTER UPDATE OF identity_key, x25519_key, x25519_sig ON users
    FOR EACH ROW WHEN (OLD.identity_key IS DISTINCT FROM NEW.identity_key
                       OR OLD.x25519_key IS DISTINCT FROM NEW.x25519_key
                       OR OLD.x25519_sig IS DISTINCT FROM NEW.x25519_sig)
    EXECUTE FUNCTION keylog_append();

-- Append-only: an entry, once written, is never changed or removed.
CREATE FUNCTION keylog_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the key log is append-only';
END $$;
CREATE TRIGGER keylog_no_update BEFORE UPDATE OR DELETE ON keylog
    FOR EACH ROW EXECUTE FUNCTION keylog_refuse();
CREATE TRIGGER keylog_no_truncate BEFORE TRUNCATE ON keylog
    FOR EACH STATEMENT EXECUTE FUNCTION keylog_refuse();
