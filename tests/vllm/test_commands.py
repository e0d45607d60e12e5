"""`capret serve-llm`'s server command lines and `capret doctor`'s vLLM line, on real servers."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from bot.cli import serve_llm
from bot.cli.doctor_checks import check_vllm
from bot.config import AppConfig, load_config
from engine.backends.vllm_launch import ServerPair, ServeSettings, server_argv, server_env
from tests.paths import PROJECT
from tests.vllm.conftest import free_port, vllm_config
from tests.vllm.shipped import shipped_default

VLLM_YAML = PROJECT / "configs" / "vllm.yaml"


def args(**given: object) -> argparse.Namespace:
    values = {"config": str(VLLM_YAML), "checkpoint": None, "device": "cpu",
              "host": "127.0.0.1", "python": "/venv/bin/python", "ready_timeout": 5.0}
    return argparse.Namespace(**{**values, **given})


def test_serve_llm_cpu_command_lines(tmp_path: Path) -> None:
    config = load_config(VLLM_YAML).engine.vllm
    settings = serve_llm.serve_settings(config, tmp_path, args())
    generate, pooling = server_argv(settings, "generate"), server_argv(settings, "pooling")
    for argv, port in ((generate, "8000"), (pooling, "8001")):
        assert argv[:3] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
        assert argv[argv.index("--host") + 1] == "127.0.0.1"
        assert argv[argv.index("--port") + 1] == port
        assert "--enable-prompt-embeds" in argv and "--enforce-eager" in argv
        assert argv[argv.index("--served-model-name") + 1] == "rs-capret"
    assert "--runner" not in generate and "--logits-processors" in generate
    assert generate[generate.index("--logprobs-mode") + 1] == "processed_logprobs"
    assert json.loads(pooling[pooling.index("--pooler-config") + 1]) == {
        "pooling_type": "LAST", "use_activation": False}
    assert pooling[pooling.index("--chat-template") + 1] == str(tmp_path / "passthrough.jinja")
    env = server_env(settings)
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_CPU_KVCACHE_SPACE"] == "1"


def test_serve_llm_wants_an_exported_checkpoint(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_llm.run(args(checkpoint=str(tmp_path))) == 2
    assert "capret export-vllm" in capsys.readouterr().err


@pytest.mark.real_weights
def test_doctor_checks_both_servers(servers: ServerPair) -> None:
    config = load_config(VLLM_YAML)
    live = dataclasses.replace(config, engine=vllm_config(config.engine, servers))
    ok, line = check_vllm(live)
    assert ok and line.count("vLLM 0.32.0 serving") == 2, line
    dead = f"http://127.0.0.1:{free_port()}"
    down = dataclasses.replace(live.engine.vllm, pool_urls=(dead,))
    ok, line = check_vllm(AppConfig(engine=dataclasses.replace(live.engine, vllm=down)))
    assert not ok and f"pooling {dead}: cannot reach the vLLM server" in line, line


def test_vllm_config_is_the_default_served_by_vllm() -> None:
    """configs/vllm.yaml must stay the shipped default's model, or the bridge would not fit."""
    default, served = shipped_default(), load_config(VLLM_YAML).engine
    assert served.backend == "vllm"
    assert dataclasses.replace(served, backend="hf", vllm=default.vllm) == default


def test_compose_file_serves_as_serve_llm_does_on_a_gpu() -> None:
    """deploy/compose.gpu.yaml's two servers take serve-llm's GPU flags, and its bot config is
    the shipped default served by vLLM (else the exported checkpoint would not fit).
    """
    compose = yaml.safe_load((PROJECT / "deploy" / "compose.gpu.yaml").read_text())
    settings = ServeSettings(checkpoint=Path("/checkpoint"), python="python3", device="gpu",
                             host="0.0.0.0")
    for role in ("generate", "pooling"):
        service = compose["services"][f"vllm-{role}"]
        assert service["command"] == server_argv(settings, role)[3:]
    served = load_config(PROJECT / "configs" / "compose-gpu.yaml").engine
    assert served.vllm.checkpoint == "/checkpoint"
    default = shipped_default()
    assert dataclasses.replace(served, backend="hf", vllm=default.vllm) == default



def test_compose_replicas_file_adds_a_generate_replica_the_bot_finds() -> None:
    """deploy/compose.gpu.replicas.yaml: the same generate server on another GPU, under the
    name the bot resolves to all of its replicas.
    """
    base = yaml.safe_load((PROJECT / "deploy" / "compose.gpu.yaml").read_text())["services"]
    extra = yaml.safe_load((PROJECT / "deploy" / "compose.gpu.replicas.yaml").read_text())
    replica = extra["services"]["vllm-generate-2"]
    assert replica["command"] == base["vllm-generate"]["command"]
    assert replica["networks"]["private"]["aliases"] == ["vllm-generate"]
    assert replica["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["1"]
    assert "vllm-generate-2" in extra["services"]["bot"]["depends_on"]
    served = load_config(PROJECT / "configs" / "compose-gpu.yaml").engine.vllm
    assert served.resolve_replicas and served.generate_urls == ("http://vllm-generate:8000",)
