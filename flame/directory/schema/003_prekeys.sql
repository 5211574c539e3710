-- Version 2 prekeys (PROTOCOL.md §14.3): each user's signed one-time keys, handed out once, and
-- one signed fallback key, handed out when none is left. `record` is the PrekeyRecord's JSON.
CREATE TABLE prekeys (
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    fallback INTEGER NOT NULL,
    record   TEXT NOT NULL,
    PRIMARY KEY (username, key)
);
CREATE INDEX prekeys_in_order ON prekeys (username, fallback);

-- A rekey (a new identity key) voids the prekeys the old one signed.
CREATE TRIGGER prekeys_rekeyed AFTER UPDATE OF identity_key ON users
WHEN OLD.identity_key IS NOT NEW.identity_key BEGIN
    DELETE FROM prekeys WHERE username = NEW.username;
END;
