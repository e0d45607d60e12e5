"""Real vLLM servers for the vllm backend's tests, started once per test session.

The checkpoint is exported from the shipped default (real SmolLM2 weights, the trained bridge),
both servers run from the vLLM venv (`make vllm`) on free loopback ports, with their temporary
and cache folders inside the session's temp dir, and are stopped by process group at the end.
Without that venv the tests skip, saying why; with CAPRET_REQUIRE_VLLM=1 (`make test-vllm`) a
missing venv is a failure.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import main as cli_main
from engine import create_engine
from engine.backends.vllm_launch import ServerPair, ServeSettings
from engine.config import EngineConfig
from engine.model import RSCapRet
from tests.paths import PROJECT
from tests.vllm.shipped import shipped_default

VLLM_PYTHON = Path(os.environ.get("CAPRET_VLLM_PYTHON")
                   or PROJECT / ".venv-vllm" / "bin" / "python")
READY_TIMEOUT_S = 900.0
# "GENERATE_PORT,POOLING_PORT" of servers started by hand for this checkpoint's bridge.
RUNNING_ENV = "CAPRET_TEST_VLLM_PORTS"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def hf_engine() -> RSCapRet:
    """The shipped default on the hf backend: the reference the vllm backend must equal."""
    return create_engine(shipped_default())


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Written by the real command, as a user would: `capret export-vllm --out DIR`."""
    out = tmp_path_factory.mktemp("vllm-checkpoint")
    assert cli_main(["export-vllm", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def servers(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPair]:
    if not VLLM_PYTHON.is_file():
        reason = f"no vLLM venv at {VLLM_PYTHON} (run `make vllm`)"
        if os.environ.get("CAPRET_REQUIRE_VLLM"):
            pytest.fail(f"CAPRET_REQUIRE_VLLM is set but there is no vLLM venv: {reason}")
        pytest.skip(reason)
    if os.environ.get(RUNNING_ENV):  # servers already running (while developing)
        generate, pooling = (int(p) for p in os.environ[RUNNING_ENV].split(","))
        yield ServerPair(ServeSettings(checkpoint, str(VLLM_PYTHON), generate_port=generate,
                                       pooling_port=pooling), checkpoint)
        return
    root = tmp_path_factory.mktemp("vllm-run")
    (root / "tmp").mkdir()
    settings = ServeSettings(
        checkpoint=checkpoint, python=str(VLLM_PYTHON), generate_port=free_port(),
        pooling_port=free_port(),
        env={"TMPDIR": str(root / "tmp"), "VLLM_CACHE_ROOT": str(root / "cache")})
    pair = ServerPair(settings, root / "logs")
    pair.start()
    try:
        started = time.monotonic()
        pair.wait_ready(READY_TIMEOUT_S)
        print(f"\nvLLM servers ready in {time.monotonic() - started:.0f} s")
        yield pair
    finally:
        pair.stop()


def vllm_config(base: EngineConfig, servers: ServerPair, **vllm: Any) -> EngineConfig:
    """``base`` on the vllm backend, pointed at the test servers."""
    urls = servers.urls
    settings = dataclasses.replace(
        base.vllm, generate_urls=(urls["generate"],), pool_urls=(urls["pooling"],),
        checkpoint=str(servers.settings.checkpoint), retries=1, backoff_s=0.2, **vllm)
    return dataclasses.replace(base, backend="vllm", vllm=settings)


@pytest.fixture(scope="session")
def vllm_engine(servers: ServerPair) -> RSCapRet:
    """The shipped default on the vllm backend, built by ``create_engine`` (checks included)."""
    return create_engine(vllm_config(shipped_default(), servers))
