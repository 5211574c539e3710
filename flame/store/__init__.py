"""The daemon's SQLite store (aiosqlite): the only SQL of the daemon lives here."""
