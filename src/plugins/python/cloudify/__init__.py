"""Cloudify's `cloudify` package as windlass offers it to Python operation scripts.

Written for windlass (not Cloudify's code): `from cloudify import ctx` gives the operation's
context, read from and written back to windlass over the operation's ctx socket.
"""
from cloudify.state import ctx  # noqa: F401
