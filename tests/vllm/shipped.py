"""The shipped default as the vllm backend serves it."""

from __future__ import annotations

import dataclasses

from bot.config import load_config
from engine.config import EngineConfig


def shipped_greedy() -> EngineConfig:
    """The shipped default with descriptions decoded like every other reply (greedy): vLLM
    has no beam search over prompt embeddings, so the factory refuses ``description_beams``
    > 1, and configs/vllm.yaml leaves them out.
    """
    engine = load_config().engine
    generation = dataclasses.replace(engine.generation, description_beams=1,
                                     description_match=0.0)
    return dataclasses.replace(engine, generation=generation)
