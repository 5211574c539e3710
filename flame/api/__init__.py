"""The daemon's two inbound HTTP apps: `peer` (other daemons, signed requests) and `ui` (this
user's browser, on loopback). Handlers are thin: parse, call one service, answer."""
