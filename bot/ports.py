"""Old path of the engine port, now ``bot/service/engine_port.py``.

Kept only because ``bot/gallery_builder.py`` (moving into ``bot/service/`` in the same issue,
on another branch) still imports it from here; delete this file when that import is updated.
"""

from bot.service.engine_port import EnginePort

__all__ = ["EnginePort"]
