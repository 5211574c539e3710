-- TLS between machines (PROTOCOL.md §1.3, §5.3): a contact's address comes with the SHA-256 of
-- the certificate its signed presence names, which every call to it pins (NULL: plain http://).
ALTER TABLE contacts ADD COLUMN tls BLOB;
