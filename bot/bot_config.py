"""The ``bot:`` section of a config: conversation limits and the Telegram transport's settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BotConfig:
    """Conversation limits and Telegram transport settings."""

    # Longest text message accepted, in characters.
    max_text_chars: int = 2000
    # Largest upload accepted (Telegram's bot download limit is 20 MB) and largest pixel count.
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    # Per-user rate limit: at most this many messages per window; a queue bound per chat.
    rate_limit_messages: int = 8
    rate_limit_window_s: float = 10.0
    max_queued_per_chat: int = 5
    # How many model calls run at once (each runs in a worker thread). The hf backend batches
    # concurrent generations into shared decode steps, so this is how many conversations
    # decode together, not how many cores are busy.
    max_concurrent_model_calls: int = 8
    # Telegram user ids allowed to talk to the bot; empty = everyone.
    allowed_user_ids: tuple[int, ...] = ()
    # "typing…" is shown once a reply takes longer than this (quicker ones need no indicator).
    typing_delay_s: float = 0.5
    # Images returned by one search, and how often a growing reply is edited.
    search_results: int = 4
    stream_edit_interval_s: float = 1.5
    # Webhook mode when set (public https URL); polling otherwise.
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    # Path of the webhook endpoint on this server (the secret comes from TELEGRAM_WEBHOOK_SECRET).
    webhook_path: str = "telegram"
    # Photos of one album arriving within this many seconds of each other form one turn.
    album_wait_s: float = 1.0
    # Updates handled at once across all chats (each chat's own updates run in order).
    max_concurrent_updates: int = 256
    # HTTP connections to the Bot API for sending (getUpdates has its own one).
    connection_pool_size: int = 8
    # Telegram's send limit for the whole bot (messages per second, the library's limiter).
    send_rate_per_s: float = 30.0
    # Uploads are kept (and shown to the model) at most this many pixels on a side.
    stored_image_side: int = 1024
    # "/more" pages through at most this many results of one search.
    max_search_depth: int = 64
    # A scene larger than the model's input side (pixels) by this factor is also described by
    # a grid of tiles (grid × grid), the most distinct ones named in the reply.
    model_input_side: int = 224
    tile_factor: float = 4.0
    tile_grid: int = 3
    notable_tiles: int = 3
    # A group's /forget and /export are for its administrators (Telegram's getChatMember,
    # whose answers are kept this many seconds); a /forget confirmation lasts this long.
    group_admin_cache_s: float = 60.0
    forget_confirm_s: float = 120.0
    # Per-person daily limits (UTC days; None = no limit); admins (TELEGRAM_ADMIN_IDS) exempt.
    daily_model_calls: int | None = 200
    daily_upload_mb: float | None = 200.0
