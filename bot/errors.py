"""Errors whose message is fit to show the user as it is."""

from __future__ import annotations


class UserFacingError(Exception):
    """Something the user caused or can fix; ``str(exc)`` is the reply."""
