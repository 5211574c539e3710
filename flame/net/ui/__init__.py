"""The local browser UI: its guards (DESIGN §9), its JSON API and WebSocket, the static page."""
