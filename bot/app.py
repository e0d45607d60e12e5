"""Wiring: config → engine → store (+ seed gallery) → conversation service."""

from __future__ import annotations

import logging

from bot.config import AppConfig
from bot.environment import DATABASE_URL_ENV, secret
from bot.service.conversation import ConversationService
from bot.service.engine_port import EnginePort
from bot.service.store_adapter import StoreAdapter
from store import Store, open_store

logger = logging.getLogger(__name__)


def describe(config: AppConfig) -> str:
    """One line per model part, for /about."""
    engine = config.engine
    bridge = engine.bridge.weights or "untrained (random init)"
    return (f"RS-CapRet: language model {engine.language.model}, image encoder "
            f"{engine.vision.arch} ({engine.vision.weights}), bridge {bridge}, "
            f"backend {engine.backend}")


def build_engine(config: AppConfig) -> EnginePort:
    """The real engine; imported here so the transports load without torch until needed."""
    from engine import create_engine

    engine: EnginePort = create_engine(config.engine)
    return engine


def build_store(config: AppConfig, engine: EnginePort) -> Store:
    """The store (database URL from CAPRET_DATABASE_URL, else SQLite in ``data_dir``), with
    the seed gallery indexed on first start and re-embedded when the bridge changed.
    """
    from bot.gallery_builder import ensure_seed_gallery

    store = open_store(config.store, secret(DATABASE_URL_ENV))
    try:
        indexed = ensure_seed_gallery(store, engine, config)
    except BaseException:
        store.close()
        raise
    if indexed:
        logger.info("gallery %r: %d vectors indexed", store.gallery.name, indexed)
    return store


def build_service(config: AppConfig, engine: EnginePort | None = None) -> ConversationService:
    """Everything the transports need, from one config (``engine``: an already built one)."""
    engine = engine if engine is not None else build_engine(config)
    store = build_store(config, engine)
    logger.info("service ready: %s; gallery of %d images", describe(config), len(store.gallery))
    adapter = StoreAdapter(store, engine.search_id, engine.score_scale)
    return ConversationService(engine, adapter, config.bot, description=describe(config),
                               observe=store.usage.record_call)
