"""aiohttp: the peer API, the peer client, the UI API and its WebSocket, shared HTTP plumbing."""
