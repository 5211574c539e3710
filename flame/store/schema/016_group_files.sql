-- Files sent to groups (PROTOCOL.md §19.7). The file itself is an ordinary row of `transfers`
-- (the author's: peer = the author itself, direction 'out'; a member's: peer = the author,
-- direction 'in'), its group message a row of `group_messages` (text = the caption). This table
-- joins the two and keeps who the file was sent to: the members at its heads, but its author.
CREATE TABLE group_files (
    author        TEXT NOT NULL,
    transfer_id   TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    group_message TEXT NOT NULL UNIQUE,        -- group_messages.id
    recipients    TEXT NOT NULL,               -- JSON array of usernames, byte order
    PRIMARY KEY (author, transfer_id)
);

-- A copy of a group message to a member whose key change this user has not accepted yet
-- (PROTOCOL.md §19.5): its `messages` row stays `sending`, and it is sealed under the accepted
-- key and queued only then; never sealed under a key that may no longer be the member's.
CREATE TABLE group_held (
    copy_id TEXT PRIMARY KEY,                  -- messages.id of the copy
    member  TEXT NOT NULL,
    held_at REAL NOT NULL
);
CREATE INDEX group_held_by_member ON group_held (member);
