"""Flame: secure peer-to-peer chat.

One daemon per user, a small directory, end-to-end encryption.
"""

__version__ = "0.1.0"
