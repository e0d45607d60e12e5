"""Request bodies for the vLLM servers, built from the engine's prompt embeddings and settings.

Embeddings travel as vLLM expects them: base64 of ``torch.save`` of a (T, D) tensor (the server
loads it with ``weights_only=True``). Decoding settings map onto the OpenAI completions fields
plus vLLM's extras (``repetition_penalty``, ``stop_token_ids``, ``return_token_ids``...).
"""

from __future__ import annotations

import base64
import io
from typing import Any

import torch

from engine.generate import DecodeSettings

# The request argument read by the server's logits processor (vllm_plugin/capret_penalty.py).
PENALTY_KEY = "capret_repetition_penalty"
# OpenAI's (and vLLM's) logit_bias range; -100 makes a token practically impossible.
MIN_LOGIT_BIAS = -100.0
MAX_LOGIT_BIAS = 100.0


def encode_embeds(embeds: torch.Tensor) -> str:
    """(T, D) embeddings -> base64 of ``torch.save`` (a fresh CPU copy: ``torch.save`` writes a
    view's whole storage, which may be far larger than the view).
    """
    buffer = io.BytesIO()
    torch.save(embeds.detach().to("cpu").clone().contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode()


def completion_body(model: str, embeds: torch.Tensor, s: DecodeSettings,
                    stream: bool) -> dict[str, Any]:
    """The /v1/completions request for one decode (greedy or sampling) from ``embeds``."""
    body: dict[str, Any] = {
        "model": model,
        "prompt_embeds": encode_embeds(embeds),
        "max_tokens": s.max_new_tokens,
        "temperature": s.temperature if s.strategy == "sample" else 0.0,
        "top_p": s.top_p if s.strategy == "sample" else 1.0,
        # vLLM's own penalty would also hit unknown "prompt tokens" (the prompt is embeddings):
        # the served logits processor applies ours, on generated tokens only, as hf does.
        "repetition_penalty": 1.0,
        "vllm_xargs": {PENALTY_KEY: s.repetition_penalty},
        # EOS and [RET] end the reply; which one it was comes back as ``stop_reason``.
        "stop_token_ids": sorted(s.eos_ids) + ([s.ret_id] if s.allow_ret else []),
        "logit_bias": ret_bias(s),
        # We decode text ourselves from the ids (as the hf backend does): ask for them.
        "return_token_ids": True,
        "skip_special_tokens": False,
        "stream": stream,
    }
    if s.strategy == "sample" and s.seed is not None:
        body["seed"] = s.seed
    return body


def ret_bias(s: DecodeSettings) -> dict[str, float]:
    """[RET]'s logit bias: the configured one when allowed, the most negative when forbidden."""
    if not s.allow_ret:
        return {str(s.ret_id): MIN_LOGIT_BIAS}
    if s.ret_logit_bias == 0.0:
        return {}
    return {str(s.ret_id): max(MIN_LOGIT_BIAS, min(MAX_LOGIT_BIAS, s.ret_logit_bias))}


def pooling_body(model: str, embeds: torch.Tensor) -> dict[str, Any]:
    """The /pooling request for the last position's hidden state of ``embeds`` (T, D).

    The pooling endpoints ignore a top-level ``prompt_embeds``; a chat message whose content is
    one ``prompt_embeds`` part, rendered by the pass-through template with no special tokens
    and no generation prompt, is pooled exactly as given.
    """
    return {
        "model": model,
        "messages": [{"role": "user", "content": [
            {"type": "prompt_embeds", "data": encode_embeds(embeds)}]}],
        "add_special_tokens": False,
        "add_generation_prompt": False,
        "encoding_format": "float",
    }
