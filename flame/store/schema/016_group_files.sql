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
