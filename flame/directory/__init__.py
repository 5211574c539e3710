"""The directory ("login server"): enrollment, public keys, signed presence.

It never sees message content.
"""
