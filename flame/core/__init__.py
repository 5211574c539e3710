"""Pure protocol code: wire models, encodings, crypto, envelope rules, schedules.

No I/O here: nothing in core/ imports asyncio, aiohttp, aiosqlite or reads the clock.
"""
