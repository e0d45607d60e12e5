"""Who is talking, as a transport knows them: the service's key for a person or a group.

Its own light module so a transport can name users without importing the service (and with
it torch): the terminal shows its prompt before the engine has loaded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UserRef:
    """Who is talking, as the transport knows them."""

    transport: str
    external_id: str
    name: str | None = None
