"""Connecting the vllm backend: check both servers before the first user waits on them.

At start we fail once, clearly, rather than on every message: a server that is down, too old,
serving another model, started without ``--enable-prompt-embeds`` or without LAST pooling, or
serving a checkpoint whose [RET] row is not the loaded bridge's (a stale export).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re

import torch

from engine.backends.vllm import VllmBackend, pooled_vector
from engine.backends.vllm_http import HttpClient, HttpSettings, VllmError, VllmRequestError
from engine.backends.vllm_payload import completion_body
from engine.bridge import Bridge
from engine.config import VllmConfig
from engine.generate import DecodeSettings
from engine.language import LanguageModel

logger = logging.getLogger(__name__)

API_KEY_ENV = "CAPRET_VLLM_API_KEY"
# The oldest vLLM this backend was tested against (prompt_embeds content parts for pooling).
MIN_VERSION = (0, 32, 0)
# A text with [RET] in it: the pooling server embeds it with the checkpoint's own rows.
PROBE_TEXT = "Show me an airport with planes[RET]"
# Max |difference| / max |value| between the two probe states: float noise, not a stale row.
PROBE_TOLERANCE = 1e-3


def connect_vllm(config: VllmConfig, lm: LanguageModel, bridge: Bridge) -> VllmBackend:
    """A checked ``VllmBackend`` for the servers in ``config``; raises VllmError naming the fix."""
    if config.pooling_url is None:
        raise VllmError("engine.vllm.pooling_url is required: the [RET] hidden state comes "
                        "from a pooling server (`capret serve-llm` starts both)")
    generate = HttpClient(_settings(config, config.completions_url))
    pool = HttpClient(_settings(config, config.pooling_url))

    def embed_tokens(ids: list[int]) -> torch.Tensor:
        with torch.inference_mode():
            return lm.embed_ids(torch.tensor(ids), bridge.ret_embedding)  # (N, D)

    backend = VllmBackend(generate, pool, config.served_model, embed_tokens,
                          stream=config.stream, concurrency=config.concurrency)
    check_servers(backend, lm)
    return backend


def check_servers(backend: VllmBackend, lm: LanguageModel) -> None:
    """Version, served model, prompt embeddings on both servers, and the [RET] row."""
    roots = [_served(client, backend.model)[1] for client in (backend.generate, backend.pool)]
    if roots[0] != roots[1]:
        raise VllmError(f"the generate server serves {roots[0]} but the pooling server "
                        f"{roots[1]}: both must serve the same exported checkpoint")
    _check_prompt_embeds(backend, lm)
    _check_ret_row(backend, lm)
    logger.info("vLLM servers ready: %s and %s serving %s", backend.generate.base_url,
                backend.pool.base_url, roots[0])


def probe_servers(config: VllmConfig) -> tuple[bool, str]:
    """One line on both servers (version, what they serve) for `capret doctor`; no retries."""
    quick = dataclasses.replace(config, retries=0, timeout_s=5.0)
    lines: list[str] = []
    ok = True
    for role, url in (("generate", config.completions_url), ("pooling", config.pooling_url)):
        if url is None:
            ok = False
            lines.append(f"{role}: engine.vllm.pooling_url is not set")
            continue
        client = HttpClient(_settings(quick, url))
        try:
            version, root = _served(client, config.served_model)
            lines.append(f"{role} {client.base_url} vLLM {version} serving {root}")
        except VllmError as exc:
            ok = False
            lines.append(f"{role}: {exc}")
    return ok, "; ".join(lines)


def _settings(config: VllmConfig, url: str) -> HttpSettings:
    # completions_url is the OpenAI base ("…/v1"): requests name their full path.
    base = url.rstrip("/").removesuffix("/v1")
    return HttpSettings(base, config.timeout_s, config.retries, config.backoff_s,
                        os.environ.get(API_KEY_ENV) or None)


def _served(client: HttpClient, model: str) -> tuple[str, str]:
    """The server's vLLM version and the folder it serves ``model`` from."""
    version = str(client.get("/version").get("version", "0"))
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:3])
    if numbers < MIN_VERSION:
        raise VllmError(f"{client.base_url} runs vLLM {version}; the vllm backend needs "
                        f">= {'.'.join(map(str, MIN_VERSION))}")
    served = {m["id"]: m for m in client.get("/v1/models").get("data", [])}
    if model not in served:
        raise VllmError(f"{client.base_url} serves {sorted(served)}, not {model!r} "
                        "(engine.vllm.served_model)")
    return version, str(served[model].get("root", model))


def _check_prompt_embeds(backend: VllmBackend, lm: LanguageModel) -> None:
    """One token from a short embedded prompt: refused when the flag is missing."""
    ids = lm.tokenizer("Hello", add_special_tokens=False).input_ids
    settings = DecodeSettings("greedy", 1, 1.0, 1.0, 1, 1.0, 0.0, False, lm.ret_id,
                              frozenset(lm.eos_ids))
    try:
        backend.generate.post("/v1/completions", completion_body(
            backend.model, backend.embed_tokens(ids), settings, stream=False))
    except VllmRequestError as exc:
        hint = (" (start it with --enable-prompt-embeds; `capret serve-llm` does)"
                if "prompt" in str(exc).lower() and "embed" in str(exc).lower() else "")
        raise VllmError(f"the generate server refuses prompt embeddings: {exc}{hint}") from exc


def _check_ret_row(backend: VllmBackend, lm: LanguageModel) -> None:
    """The server's own [RET] row (text in) must give our bridge's hidden state (embeds in)."""
    ids = lm.tokenizer(PROBE_TEXT, add_special_tokens=False).input_ids
    if ids[-1] != lm.ret_id:
        raise VllmError(f"{PROBE_TEXT!r} does not end in [RET] with this tokenizer")
    body = {"model": backend.model, "messages": [{"role": "user", "content": PROBE_TEXT}],
            "add_special_tokens": False, "add_generation_prompt": False}
    width = lm.hidden_size
    served = pooled_vector(backend.pool.post("/pooling", body), width)
    ours = backend.last_hidden(backend.embed_tokens(ids))
    error = float((served - ours).abs().max() / ours.abs().max().clamp_min(1e-6))
    if error > PROBE_TOLERANCE:
        raise VllmError(
            f"the served checkpoint's [RET] row does not match the loaded bridge (relative "
            f"difference {error:.2e}): export it again (`capret export-vllm`) and restart "
            "the servers, or check that the pooling server uses the pass-through template")
