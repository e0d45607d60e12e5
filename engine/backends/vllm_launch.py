"""Starting the two vLLM servers for an exported checkpoint (``capret serve-llm``, the tests).

vLLM lives in its own venv (it pins an older transformers than ours), so a server is that
venv's Python running vLLM's OpenAI API server module (its ``vllm`` script asks
``importlib.metadata`` for a distribution named ``vllm``, which the CPU wheel does not have).
Each server runs in its own process group so stopping it also stops its engine workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from engine.backends.vllm_export import TEMPLATE_FILE

logger = logging.getLogger(__name__)

# The engine's repetition penalty (generated tokens only), loaded into the generate server.
PLUGIN_DIR = Path(__file__).resolve().parent / "vllm_plugin"
PENALTY_PROCESSOR = "capret_penalty:OutputRepetitionPenalty"
LOGPROBS_MODE = "processed_logprobs"
# LAST pooling of the last layer, no activation: exactly the hidden state at the final position.
POOLER_CONFIG = {"pooling_type": "LAST", "use_activation": False}
# What the issue found works on a 2-core CPU: eager mode (compiling costs ~145 s a start for
# little gain), 1 GiB of KV cache each, no thread pinning (two servers share the cores).
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
           "OMP_NUM_THREADS": "1"}


@dataclass(frozen=True)
class ServeSettings:
    """How to serve one exported checkpoint."""

    checkpoint: Path  # written by `capret export-vllm`
    python: str  # the Python of a venv with vLLM (`make vllm`: .venv-vllm/bin/python)
    device: Literal["cpu", "gpu"] = "cpu"
    host: str = "127.0.0.1"  # loopback: prompt-embeds deserialisation has had CVEs
    generate_port: int = 8000
    pooling_port: int = 8001
    served_model: str = "rs-capret"
    max_model_len: int = 2048
    api_key: str | None = None  # vLLM's --api-key (the bot sends CAPRET_VLLM_API_KEY)
    # GPU only: share of GPU memory for each server (two servers share one GPU).
    gpu_memory_utilization: float = 0.45
    env: dict[str, str] = field(default_factory=dict)  # extra environment (TMPDIR...)


def server_argv(s: ServeSettings, role: Literal["generate", "pooling"]) -> list[str]:
    """The command line of one server."""
    port = s.generate_port if role == "generate" else s.pooling_port
    argv = [s.python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(s.checkpoint), "--served-model-name", s.served_model,
            "--host", s.host, "--port", str(port), "--max-model-len", str(s.max_model_len),
            "--enable-prompt-embeds", "--generation-config", "vllm",
            "--disable-uvicorn-access-log"]
    if s.device == "cpu":
        argv += ["--dtype", "float32", "--enforce-eager"]
    else:
        argv += ["--gpu-memory-utilization", str(s.gpu_memory_utilization)]
    if role == "generate":
        # Beam search steps from the client read log-probabilities after the penalty and the
        # [RET] bias, as the hf backend scores beams (engine/backends/vllm_beam.py).
        argv += ["--logits-processors", PENALTY_PROCESSOR, "--logprobs-mode", LOGPROBS_MODE]
    else:
        argv += ["--runner", "pooling", "--pooler-config", json.dumps(POOLER_CONFIG),
                 "--chat-template", str(s.checkpoint / TEMPLATE_FILE)]
    if s.api_key:
        argv += ["--api-key", s.api_key]
    return argv


def server_env(s: ServeSettings) -> dict[str, str]:
    """The servers' environment: never a model hub; CPU tuning on CPU."""
    path = os.pathsep.join(p for p in (str(PLUGIN_DIR), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "PYTHONPATH": path}
    if s.device == "cpu":
        env.update(CPU_ENV)
    env.update(s.env)
    return env


class ServerPair:
    """The generate and pooling servers as child process groups; ``stop`` ends both."""

    def __init__(self, settings: ServeSettings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    @property
    def urls(self) -> dict[str, str]:
        s = self.settings
        return {"generate": f"http://{s.host}:{s.generate_port}",
                "pooling": f"http://{s.host}:{s.pooling_port}"}

    def start(self) -> None:
        """Start both servers (returns at once; ``wait_ready`` waits for health)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for role, url in self.urls.items():  # else /health would be answered by the other
            if _healthy(url):
                raise RuntimeError(f"{url} is already taken by a running server ({role} port)")
        self.spawn("generate")
        self.spawn("pooling")

    def spawn(self, role: Literal["generate", "pooling"]) -> None:
        """Start one server, in its own process group, logging to ``log_dir``."""
        log = open(self.log_dir / f"vllm-{role}.log", "ab")  # noqa: SIM115 (closed in stop)
        self._logs.append(log)
        self.processes[role] = subprocess.Popen(
            server_argv(self.settings, role), env=server_env(self.settings),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        logger.info("started vLLM %s server (pid %d) on %s", role,
                    self.processes[role].pid, self.urls[role])

    def kill(self, role: str) -> None:
        """SIGKILL one server's process group at once, as a crash would."""
        _signal_group(self.processes[role], signal.SIGKILL)
        self.processes[role].wait()

    def wait_ready(self, timeout_s: float) -> float:
        """Block until both answer /health; seconds waited. Raises if one exits or times out."""
        start = time.monotonic()
        pending = set(self.processes)
        while pending:
            for role in sorted(pending):
                code = self.processes[role].poll()
                if code is not None:
                    raise RuntimeError(f"vLLM {role} server exited with {code}; see "
                                       f"{self.log_dir / f'vllm-{role}.log'}")
                if _healthy(self.urls[role]):
                    pending.discard(role)
            if pending and time.monotonic() - start > timeout_s:
                raise TimeoutError(f"vLLM {', '.join(sorted(pending))} not ready after "
                                   f"{timeout_s:.0f} s; see {self.log_dir}")
            time.sleep(0.5)
        return time.monotonic() - start

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM each server's process group, then SIGKILL what is left after ``grace_s``."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(process, signal.SIGKILL)
            process.wait()
        for log in self._logs:
            log.close()
        self.processes.clear()
        self._logs.clear()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, sig)  # the server's own group: it and its workers
