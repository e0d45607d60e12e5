"""Wiring: config → engine (imported lazily) → store → seed gallery → conversation service."""

from __future__ import annotations

import logging

from bot.config import AppConfig, secret
from bot.ports import EnginePort
from bot.service import ConversationService
from bot.storage import ConversationStore

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
    from engine import create_engine  # type: ignore[attr-defined]

    engine: EnginePort = create_engine(config.engine)
    return engine


def build_store(config: AppConfig, engine: EnginePort) -> ConversationStore:
    """The store behind the service, with the seed gallery indexed on first start."""
    from bot.store_adapter import open_conversation_store

    return open_conversation_store(config, engine, secret("CAPRET_DATABASE_URL"))


def build_service(config: AppConfig) -> ConversationService:
    """Everything the transports need, from one config."""
    engine = build_engine(config)
    store = build_store(config, engine)
    logger.info("service ready: %s", describe(config))
    return ConversationService(engine, store, config.bot, description=describe(config))
