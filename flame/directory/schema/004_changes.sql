-- The change cursor (PROTOCOL.md §5.4): one counter, the head, and on each user the number of its
-- last change. Users enrolled before are numbered 1..n in username order.
ALTER TABLE users ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE users SET seq = (SELECT count(*) FROM users AS earlier WHERE earlier.username <= users.username);
CREATE INDEX users_by_seq ON users (seq);
CREATE TABLE change_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO change_head (id, seq) SELECT 1, count(*) FROM users;
CREATE INDEX presence_by_expiry ON presence (expires_at);
