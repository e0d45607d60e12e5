"""The /forget confirmation: two buttons that act only for the person who asked, for a while.

The buttons carry who asked and when (``forget:<yes|no>:<user id>:<unix seconds>``, well under
Telegram's 64 bytes of callback data), so a tap is checked without keeping state: it survives
restarts and works with several workers. Telegram itself reports who tapped, which a member
cannot forge. Buttons of older versions (``forget:yes``) count as expired.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

PREFIX = "forget"
# The asker of a request sent anonymously "as the group" by one of its administrators:
# any administrator of the group may confirm it.
ANY_ADMIN = 0
QUESTION = "Delete everything I keep about this conversation (messages, images)?"
NOT_YOURS = "Only the person who sent /forget can answer this."
EXPIRED = "This confirmation has expired: nothing was deleted. Send /forget again if you wish."
CANCELLED = "Nothing was deleted."


@dataclass(frozen=True)
class Confirmation:
    """One tap's meaning: delete or not, who asked, and when (unix seconds)."""

    delete: bool
    asker: int
    asked_at: int

    def expired(self, now: float, ttl_s: float) -> bool:
        """Too old to act on (or from the future: a clock we cannot trust)."""
        return not 0 <= now - self.asked_at <= ttl_s

    def answers_for(self, user_id: int) -> bool:
        """Whether a tap by ``user_id`` counts."""
        return self.asker in (ANY_ADMIN, user_id)


def forget_buttons(asker: int, now: float) -> InlineKeyboardMarkup:
    """"Yes" and "Cancel", both bound to ``asker`` and the time they were asked."""
    def data(answer: str) -> str:
        return f"{PREFIX}:{answer}:{asker}:{int(now)}"

    return InlineKeyboardMarkup([[
        InlineKeyboardButton("Yes, delete everything", callback_data=data("yes")),
        InlineKeyboardButton("Cancel", callback_data=data("no"))]])


def parse_confirmation(data: str | None) -> Confirmation | None:
    """A button's data back; None for anything else (older buttons included)."""
    parts = (data or "").split(":")
    if len(parts) != 4 or parts[0] != PREFIX or parts[1] not in ("yes", "no"):
        return None
    try:
        return Confirmation(parts[1] == "yes", int(parts[2]), int(parts[3]))
    except ValueError:
        return None
