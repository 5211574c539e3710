-- Presence records now name the certificate of the reporter's peer listener (PROTOCOL.md §5.3,
-- field `tls`). Records kept from before lack it: they are dropped (each lives a minute anyway).
DELETE FROM presence;
