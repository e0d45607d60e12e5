"""The app on `configs/vllm.yaml` against the real servers: the terminal chat end to end (a real
store, the seed gallery), and a generate server killed in the middle of a reply.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import build_service
from bot.config import AppConfig, load_config
from bot.errors import UserFacingError
from bot.service.conversation import ConversationService
from bot.service.user_ref import UserRef
from bot.terminal import TerminalChat
from engine import create_engine
from engine.backends.vllm import VllmBackend
from engine.backends.vllm_launch import ServerPair
from engine.model import RSCapRet
from tests.bot.conftest import TEST_BOT
from tests.paths import PROJECT, RSICD_IMAGES
from tests.vllm.conftest import RUNNING_ENV, vllm_config

pytestmark = pytest.mark.real_weights

USER = UserRef("test", "vllm")
# A turn with an image is answered in words, never with [RET] (the service's rule).
DESCRIBE = "Describe this image in detail."
PHOTO = RSICD_IMAGES / "00070.jpg"


async def user_turns(service: ConversationService) -> int:
    return sum(line.startswith("You: ") for line in (await service.history(USER)).splitlines())


@pytest.fixture(scope="module")
def app_config(servers: ServerPair) -> AppConfig:
    """configs/vllm.yaml as shipped, pointed at the test servers."""
    config = load_config(PROJECT / "configs" / "vllm.yaml")
    assert config.engine.backend == "vllm"
    return dataclasses.replace(config, engine=vllm_config(config.engine, servers), bot=TEST_BOT)


@pytest.fixture(scope="module")
def yaml_engine(app_config: AppConfig) -> RSCapRet:
    return create_engine(app_config.engine)


@pytest.fixture
async def service(app_config: AppConfig, yaml_engine: RSCapRet,
                  tmp_path: Path) -> AsyncIterator[ConversationService]:
    store = dataclasses.replace(app_config.store, data_dir=str(tmp_path))
    service = build_service(dataclasses.replace(app_config, store=store), yaml_engine)
    yield service
    service.close()


async def test_terminal_chat_on_the_vllm_config(service: ConversationService,
                                                tmp_path: Path) -> None:
    out: list[str] = []
    chat = TerminalChat(service, tmp_path, out.append)
    await chat.handle(f"/image {RSICD_IMAGES / '00010.jpg'} Describe this image.")
    assert out[-1].startswith("capret> ") and len(out[-1].split()) >= 4, out[-1]
    await chat.handle("What kind of scene is this?")
    assert out[-1].startswith("capret> ") and len(out[-1]) > len("capret> ")
    await chat.handle("/search an airport with runways")
    assert out[-1].startswith("  contact sheet: ") and Path(out[-1].split(": ")[1]).is_file()


# Kills the session's generate server for good (a restart costs a full server start, minutes
# on a busy 2-core machine), so it is the session's last test: the last test of the last file
# of tests/vllm, the last folder of tests/.
@pytest.mark.skipif(bool(os.environ.get(RUNNING_ENV)),
                    reason="kills a server: only with servers the session started")
async def test_a_server_killed_mid_reply(service: ConversationService, yaml_engine: RSCapRet,
                                         servers: ServerPair) -> None:
    # Killed as soon as a request is in flight (a description's first beam step): killing at
    # the first streamed piece raced the reply's end. A cut stream: tests/vllm/test_replicas.py.
    backend = yaml_engine.backend
    assert isinstance(backend, VllmBackend)

    async def kill_when_asked() -> None:
        while backend.generate.replicas[0].in_flight == 0:
            await asyncio.sleep(0.005)
        servers.kill("generate")

    killer = asyncio.create_task(kill_when_asked())
    with pytest.raises(UserFacingError, match="not reachable"):
        await service.ask(USER, DESCRIBE, [PHOTO.read_bytes()])
    await asyncio.wait_for(killer, 60)
    assert await user_turns(service) == 0  # nothing half-written
    with pytest.raises(UserFacingError, match="not reachable"):  # still down: said again
        await service.ask(USER, DESCRIBE, [PHOTO.read_bytes()])
    reply = await service.search(USER, "an airport")  # the conversation goes on
    assert reply.hits and await user_turns(service) == 1
