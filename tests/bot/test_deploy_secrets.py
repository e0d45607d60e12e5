"""Deployment secrets (issue 29): `capret deploy-secrets` writes them, the GPU compose files take
them (and nothing else), the bot sends the vLLM key to every server, and webhook mode needs its
secret token.
"""

from __future__ import annotations

import json
import re
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli.deploy_secrets import SECRET_NAMES
from bot.cli.main import main
from bot.environment import WEBHOOK_SECRET_ENV
from bot.telegram.webhook import WebhookSecretError, webhook_secret
from engine.backends.vllm_connect import API_KEY_ENV, probe_servers
from engine.config import VllmConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE_FILES = ("compose.gpu.yaml", "compose.gpu.replicas.yaml")
INTERPOLATION = re.compile(r"\$\{([A-Z_]+)(:?[-?+]?)([^}]*)\}")


def read_env(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_deploy_secrets_writes_strong_private_values_once(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    out = tmp_path / "deploy" / ".env"
    assert main(["deploy-secrets", "--out", str(out)]) == 0
    first = read_env(out)
    assert sorted(first) == sorted(SECRET_NAMES) and API_KEY_ENV in first
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in first.values())
    assert len(set(first.values())) == 3
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert main(["deploy-secrets", "--out", str(out)]) == 1, "never overwrites by default"
    assert "kept as it is" in capsys.readouterr().err and read_env(out) == first
    assert main(["deploy-secrets", "--out", str(out), "--force"]) == 0
    assert set(read_env(out).values()).isdisjoint(first.values())


def test_a_generated_webhook_secret_is_accepted(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / ".env"
    assert main(["deploy-secrets", "--out", str(out)]) == 0
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, read_env(out)[WEBHOOK_SECRET_ENV])
    assert webhook_secret() == read_env(out)[WEBHOOK_SECRET_ENV]
    for bad, why in (("", "needs"), ("short", "too short"), ("x" * 20 + "!", "only")):
        monkeypatch.setenv(WEBHOOK_SECRET_ENV, bad)
        with pytest.raises(WebhookSecretError, match=why):
            webhook_secret()


def test_compose_files_take_every_secret_from_the_env_file_and_refuse_without() -> None:
    texts = {name: (DEPLOY / name).read_text() for name in COMPOSE_FILES}
    used = {m for text in texts.values() for m in INTERPOLATION.findall(text)}
    assert used and all(form == ":?" for _, form, _ in used), "no defaults, no silent blanks"
    assert {name for name, _, _ in used} == {*SECRET_NAMES, "TELEGRAM_BOT_TOKEN"}
    base = yaml.safe_load(texts["compose.gpu.yaml"])["services"]
    replicas = yaml.safe_load(texts["compose.gpu.replicas.yaml"])["services"]
    servers = [base["vllm-generate"], base["vllm-pooling"], replicas["vllm-generate-2"]]
    assert all(s["environment"]["VLLM_API_KEY"].startswith("${CAPRET_VLLM_API_KEY:?")
               for s in servers)
    assert base["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")
    bot = base["bot"]["environment"]
    assert "${POSTGRES_PASSWORD:?" in bot["CAPRET_DATABASE_URL"]
    assert bot[API_KEY_ENV].startswith("${CAPRET_VLLM_API_KEY:?")
    assert bot[WEBHOOK_SECRET_ENV].startswith("${TELEGRAM_WEBHOOK_SECRET:?")
    assert "capret:capret@" not in texts["compose.gpu.yaml"]


class _Vllm(BaseHTTPRequestHandler):
    """Enough of a vLLM server for `capret doctor`: /version open, /v1 behind the key."""

    key = "k" * 64
    seen: list[tuple[int, str | None]]

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        self.seen.append((int(self.server.server_address[1]), auth))  # type: ignore[index]
        if self.path.startswith("/v1") and auth != f"Bearer {self.key}":
            self._send(401, {"error": {"message": "Unauthorized"}})
        elif self.path == "/version":
            self._send(200, {"version": "0.32.0"})
        else:
            self._send(200, {"data": [{"id": "rs-capret", "root": "/checkpoint"}]})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def two_servers() -> Iterator[tuple[list[str], list[tuple[int, str | None]]]]:
    seen: list[tuple[int, str | None]] = []
    handler = type("Recording", (_Vllm,), {"seen": seen})
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{s.server_address[1]}" for s in servers], seen
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_bot_sends_the_api_key_to_both_servers(
    two_servers: tuple[list[str], list[tuple[int, str | None]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    (generate, pool), seen = two_servers
    config = VllmConfig(generate_urls=(generate,), pool_urls=(pool,))
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    ok, line = probe_servers(config)
    assert not ok and line.count("401") == 2, line
    seen.clear()
    monkeypatch.setenv(API_KEY_ENV, _Vllm.key)
    ok, line = probe_servers(config)
    assert ok, line
    ports = {int(url.rsplit(":", 1)[1]) for url in (generate, pool)}
    assert {port for port, _ in seen} == ports
    assert {auth for _, auth in seen} == {f"Bearer {_Vllm.key}"}
