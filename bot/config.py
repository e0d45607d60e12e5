"""The application's config: the root of one YAML file in ``configs/`` and how it is read.

Each section is its package's own dataclass (``engine/config.py``, ``store/config.py``,
``engine/training/config.py``, ``bot/bot_config.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.bot_config import BotConfig
from engine.config import EngineConfig
from engine.training.config import TrainConfig
from engine.typed_config import ConfigError, from_mapping
from store.config import StoreConfig

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


@dataclass(frozen=True)
class AppConfig:
    """The whole application: one YAML file in ``configs/``."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    bot: BotConfig = field(default_factory=BotConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_config(path: str | Path | None = None) -> AppConfig:
    """Read a YAML config; strings starting with ./ or ../ are relative to the file's folder."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return from_mapping(AppConfig, _resolve_relative(raw, path.resolve().parent))


def _resolve_relative(node: Any, base: Path) -> Any:
    """``node`` with every string starting with ./ or ../ made absolute against ``base``."""
    if isinstance(node, Mapping):
        return {k: _resolve_relative(v, base) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_relative(v, base) for v in node]
    if isinstance(node, str) and node.startswith(("./", "../")):
        return str((base / node).resolve())
    return node
