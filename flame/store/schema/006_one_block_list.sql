-- One block list (PROTOCOL.md §12.4): `blocks`, which the UI writes, is the only one. The
-- `blocked_users` table that file transfers consulted before blocking existed moves into it.
INSERT OR IGNORE INTO blocks (username, blocked_at) SELECT username, blocked_at FROM blocked_users;
DROP TABLE blocked_users;
