"""The shipped default as the vllm backend serves it: the default itself (descriptions
beam-searched and re-ranked, as configs/default.yaml decodes them).
"""

from __future__ import annotations

from bot.config import load_config
from engine.config import EngineConfig


def shipped_default() -> EngineConfig:
    """The shipped default's engine config, unchanged."""
    return load_config().engine
