-- The protocol version each incoming message arrived under (PROTOCOL.md §14.2): NULL for one's
-- own messages and for those stored before this column existed.
ALTER TABLE messages ADD COLUMN version INTEGER;
