"""Who a Telegram update belongs to: the conversation key, the person, and whether it is for us.

The conversation key is the one convention every part of the bot (and the store's user row,
which also owns a chat's uploaded images) relies on:

- a private chat: the user's Telegram id, e.g. ``"12345"`` (as before groups existed, so
  existing conversations keep working);
- a group or supergroup: ``"chat:<chat_id>"``, one memory for the whole group;
- a topic of a forum supergroup: ``"chat:<chat_id>:topic:<message_thread_id>"``, one memory
  per topic (the forum's General topic has no thread id and is the group's own key).

Limits and rate limits are per person (``person_key``), whichever chat they write in.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Chat, Message, MessageEntity, Update

from bot.service.user_ref import UserRef

TRANSPORT = "telegram"
GROUP_TYPES = (Chat.GROUP, Chat.SUPERGROUP)


@dataclass(frozen=True)
class Place:
    """Where replies go: the chat and, in a forum supergroup, the topic."""

    chat_id: int
    thread_id: int | None = None


def conversation_key(chat_id: int, chat_type: str, user_id: int,
                     thread_id: int | None = None) -> str:
    """The external id of a chat's conversation (see the module docstring)."""
    if chat_type not in GROUP_TYPES:
        return str(user_id)
    if thread_id is not None:
        return f"chat:{chat_id}:topic:{thread_id}"
    return f"chat:{chat_id}"


def topic_of(message: Message | None) -> int | None:
    """The forum topic a message is in; None outside forum topics (replies in ordinary
    groups also carry a thread id, which is not a topic).
    """
    if message is None or not message.is_topic_message:
        return None
    return message.message_thread_id


def conversation_of(update: Update) -> UserRef:
    """The conversation an update belongs to, as the service and the store know it."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    key = conversation_key(chat.id, chat.type, user.id, topic_of(update.effective_message))
    name = user.full_name if key == str(user.id) else (chat.title or key)
    return UserRef(TRANSPORT, key, name)


def person_key(update: Update) -> str:
    """The person who sent the update, for limits and usage counters."""
    assert update.effective_user is not None
    return f"{TRANSPORT}:{update.effective_user.id}"


def place_of(update: Update) -> Place:
    """Where to answer an update."""
    assert update.effective_chat is not None
    return Place(update.effective_chat.id, topic_of(update.effective_message))


def is_group(update: Update) -> bool:
    """Whether the update comes from a group or supergroup."""
    return update.effective_chat is not None and update.effective_chat.type in GROUP_TYPES


def is_addressed(message: Message, username: str, bot_id: int) -> bool:
    """In a group, a message is for the bot when it mentions ``@username``, replies to one of
    the bot's messages, or is a command (commands for other bots never reach our handlers:
    python-telegram-bot drops ``/cmd@otherbot``).
    """
    if message.chat.type not in GROUP_TYPES:
        return True
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        return True
    mention = f"@{username}".lower()
    entities = message.parse_entities() or message.parse_caption_entities()
    for entity, text in entities.items():
        if entity.type == MessageEntity.MENTION and text.lower() == mention:
            return True
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return "@" not in text or text.lower().endswith(mention)
    return False


def without_mention(text: str, username: str) -> str:
    """The question without the ``@username`` that addressed it."""
    mention = f"@{username}"
    start = text.lower().find(mention.lower())
    if start < 0:
        return text
    return (text[:start] + text[start + len(mention):]).strip(" ,:\n")
