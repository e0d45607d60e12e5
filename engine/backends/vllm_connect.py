"""Connecting the vllm backend: check both servers before the first user waits on them.

At start we fail once, clearly, rather than on every message, naming the replica: a server that
is down, too old, serving another model, started without ``--enable-prompt-embeds`` or without
LAST pooling, or serving a checkpoint whose [RET] row is not the loaded bridge's (a stale export).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re

import torch

from engine.backends.vllm import VllmBackend, pooled_vector
from engine.backends.vllm_beam import step_body, top_logprobs
from engine.backends.vllm_http import HttpClient, HttpSettings, VllmError, VllmRequestError
from engine.backends.vllm_payload import MAX_LOGIT_BIAS, completion_body, pooling_body
from engine.backends.vllm_replicas import Replicas, expand_urls
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
    if not config.generate_urls or not config.pool_urls:
        raise VllmError("engine.vllm.generate_urls and engine.vllm.pool_urls each need a "
                        "server: the [RET] hidden state comes from a pooling server "
                        "(`capret serve-llm` starts both)")

    def embed_tokens(ids: list[int]) -> torch.Tensor:
        with torch.inference_mode():
            return lm.embed_ids(torch.tensor(ids), bridge.ret_embedding)  # (N, D)

    backend = VllmBackend(replica_set("generate", config, config.generate_urls),
                          replica_set("pooling", config, config.pool_urls),
                          config.served_model, embed_tokens, stream=config.stream,
                          concurrency=config.concurrency)
    check_servers(backend, lm)
    return backend


def replica_set(role: str, config: VllmConfig, urls: tuple[str, ...]) -> Replicas:
    """The servers of one role. A lone server keeps the configured retries (it may be
    restarting); among several, a connection error moves on to another replica at once.
    """
    found = expand_urls(urls) if config.resolve_replicas else list(urls)
    each = config if len(found) == 1 else dataclasses.replace(config, retries=0)
    return Replicas(role, [HttpClient(_settings(each, url)) for url in found],
                    config.health_interval_s)


def check_servers(backend: VllmBackend, lm: LanguageModel) -> None:
    """Every replica: version, served model, prompt embeddings, and the [RET] row."""
    everyone = backend.generate.replicas + backend.pool.replicas
    roots = {r.url: _served(r.client, backend.model)[1] for r in everyone}
    if len(set(roots.values())) > 1:
        served = ", ".join(f"{url} serves {root}" for url, root in roots.items())
        raise VllmError(f"the vLLM servers serve different checkpoints ({served}): all must "
                        "serve the same exported checkpoint")
    for replica in backend.generate.replicas:
        _check_prompt_embeds(replica.client, backend, lm)
        _check_logprobs_mode(replica.client, backend, lm)
    for replica in backend.pool.replicas:
        _check_ret_row(replica.client, backend, lm)
    logger.info("vLLM servers ready: generate %s, pooling %s, serving %s",
                " ".join(r.url for r in backend.generate.replicas),
                " ".join(r.url for r in backend.pool.replicas), next(iter(roots.values())))


def probe_servers(config: VllmConfig) -> tuple[bool, str]:
    """One line per replica (version, what it serves) for `capret doctor`; no retries."""
    quick = dataclasses.replace(config, retries=0, timeout_s=5.0)
    lines: list[str] = []
    ok = True
    for role, urls in (("generate", config.generate_urls), ("pooling", config.pool_urls)):
        if not urls:
            ok = False
            lines.append(f"{role}: no server in engine.vllm.{role[:4]}_urls")
            continue
        try:
            found = expand_urls(urls) if config.resolve_replicas else list(urls)
        except VllmError as exc:
            ok, found = False, []
            lines.append(f"{role}: {exc}")
        for url in found:
            client = HttpClient(_settings(quick, url))
            try:
                version, root = _served(client, config.served_model)
                lines.append(f"{role} {client.base_url} vLLM {version} serving {root}")
            except VllmError as exc:
                ok = False
                lines.append(f"{role} {client.base_url}: {exc}")
    return ok, "; ".join(lines)


def _settings(config: VllmConfig, url: str) -> HttpSettings:
    # A generate URL may be given as the OpenAI base ("…/v1"): requests name their full path.
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


def _check_prompt_embeds(client: HttpClient, backend: VllmBackend, lm: LanguageModel) -> None:
    """One token from a short embedded prompt: refused when the flag is missing."""
    ids = lm.tokenizer("Hello", add_special_tokens=False).input_ids
    settings = DecodeSettings("greedy", 1, 1.0, 1.0, 1, 1.0, 0.0, False, lm.ret_id,
                              frozenset(lm.eos_ids))
    try:
        client.post("/v1/completions", completion_body(
            backend.model, backend.embed_tokens(ids), settings, stream=False))
    except VllmRequestError as exc:
        hint = (" (start it with --enable-prompt-embeds; `capret serve-llm` does)"
                if "prompt" in str(exc).lower() and "embed" in str(exc).lower() else "")
        raise VllmError(f"the generate server {client.base_url} refuses prompt embeddings: "
                        f"{exc}{hint}") from exc


def _check_logprobs_mode(client: HttpClient, backend: VllmBackend, lm: LanguageModel) -> None:
    """Beam steps need log-probabilities after the logit bias and penalty: with [RET] pushed
    to the top by the largest bias, a server reporting processed ones ranks it first.
    """
    ids = lm.tokenizer("Hello", add_special_tokens=False).input_ids
    settings = DecodeSettings("beam", 1, 1.0, 1.0, 1, 1.0, MAX_LOGIT_BIAS, True, lm.ret_id,
                              frozenset(lm.eos_ids))
    top = top_logprobs(client.post("/v1/completions", step_body(
        backend.model, backend.embed_tokens(ids), [], settings, width=1)))
    if max(top, key=lambda token: top[token]) != lm.ret_id:
        raise VllmError(f"the generate server {client.base_url} reports log-probabilities "
                        "before the logit bias: start it with --logprobs-mode "
                        "processed_logprobs (`capret serve-llm` does); beam search needs them")


def _check_ret_row(client: HttpClient, backend: VllmBackend, lm: LanguageModel) -> None:
    """The server's own [RET] row (text in) must give our bridge's hidden state (embeds in)."""
    ids = lm.tokenizer(PROBE_TEXT, add_special_tokens=False).input_ids
    if ids[-1] != lm.ret_id:
        raise VllmError(f"{PROBE_TEXT!r} does not end in [RET] with this tokenizer")
    body = {"model": backend.model, "messages": [{"role": "user", "content": PROBE_TEXT}],
            "add_special_tokens": False, "add_generation_prompt": False}
    width = lm.hidden_size
    served = pooled_vector(client.post("/pooling", body), width)
    ours = pooled_vector(client.post("/pooling", pooling_body(
        backend.model, backend.embed_tokens(ids))), width)
    error = float((served - ours).abs().max() / ours.abs().max().clamp_min(1e-6))
    if error > PROBE_TOLERANCE:
        raise VllmError(
            f"the checkpoint served by {client.base_url} has a [RET] row that does not match "
            f"the loaded bridge (relative difference {error:.2e}): export it again (`capret "
            "export-vllm`) and restart the servers, or check that the pooling server uses "
            "the pass-through template")
