"""The rules of the daemon, one noun a module. Services get what they use (a small Context and the
other services they call), never the whole daemon; nothing here knows HTTP routes or UI JSON."""
