-- At rest (docs/ARCHITECTURE.md, "At rest"): the keys now live in <data>/keystore.json, outside
-- this (encrypted) database, and stored files are kept sealed under their file key. Files stored
-- before this version are plaintext until the first unlock rewrites them (`at_rest` 'plain');
-- every transfer recorded from now on is sealed from its first byte (the default).
DROP TABLE keystore;
ALTER TABLE transfers ADD COLUMN at_rest TEXT NOT NULL DEFAULT 'sealed';  -- or 'plain'
UPDATE transfers SET at_rest = 'plain';
-- Until the first unlock has sealed every plaintext file (services/files/atrest.py).
INSERT OR REPLACE INTO meta (key, value) VALUES ('seal_files', '1');
