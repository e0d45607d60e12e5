"""RS-CapRet's model: pure computation (tensors and PIL images in, text and vectors out)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import EngineConfig
    from engine.model import RSCapRet


def create_engine(config: EngineConfig) -> RSCapRet:
    """Build the engine from its config (imports torch and transformers on first use)."""
    from engine.factory import create_engine as _create

    return _create(config)
