"""Two generate replicas behind the app on `configs/vllm.yaml`: eight conversations at once are
spread over both, stick to theirs, and all complete without losing a turn when one replica is
killed in the middle of their replies; with every replica down each user is told once and
nothing is stored. The second replica is started here and killed by the test (the session's
servers stay up for the files after this one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.app import build_service
from bot.cli.doctor_checks import check_vllm
from bot.config import AppConfig, load_config
from bot.errors import UserFacingError
from bot.service.conversation import ConversationService
from bot.service.user_ref import UserRef
from bot.service.workers import ProgressFn
from engine import create_engine
from engine.backends.vllm import VllmBackend
from engine.backends.vllm_connect import connect_vllm, replica_set
from engine.backends.vllm_http import VllmError
from engine.backends.vllm_launch import ServerPair
from engine.model import RSCapRet
from tests.bot.conftest import TEST_BOT
from tests.paths import PROJECT, RSICD_IMAGES
from tests.vllm.conftest import READY_TIMEOUT_S, free_port, vllm_config

pytestmark = pytest.mark.real_weights

CONVERSATIONS = 8
PHOTOS = sorted(RSICD_IMAGES.glob("*.jpg"))[:2 * CONVERSATIONS]


@pytest.fixture(scope="module")
def second_generate(servers: ServerPair, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[ServerPair]:
    """Another generate server on the session's checkpoint, as `capret serve-llm` starts one."""
    root = tmp_path_factory.mktemp("vllm-replica")
    (root / "tmp").mkdir()
    settings = dataclasses.replace(
        servers.settings, generate_port=free_port(), pooling_port=free_port(),
        env={"TMPDIR": str(root / "tmp"), "VLLM_CACHE_ROOT": str(root / "cache")})
    replica = ServerPair(settings, root / "logs")
    replica.log_dir.mkdir()
    replica.spawn("generate")
    try:
        started = time.monotonic()
        replica.wait_ready(READY_TIMEOUT_S)
        print(f"\nsecond generate server ready in {time.monotonic() - started:.0f} s")
        yield replica
    finally:
        replica.stop()


@pytest.fixture(scope="module")
def app_config(servers: ServerPair, second_generate: ServerPair) -> AppConfig:
    """configs/vllm.yaml with both generate replicas; eight model calls at once; descriptions
    greedy, so that a reply streams and a kill cuts it part-way (a beam search's steps are
    single requests: each fails over as the start of a streamed reply does).
    """
    config = load_config(PROJECT / "configs" / "vllm.yaml")
    engine = vllm_config(config.engine, servers)
    urls = (servers.urls["generate"], second_generate.urls["generate"])
    generation = dataclasses.replace(engine.generation, description_beams=1)
    engine = dataclasses.replace(engine, generation=generation, vllm=dataclasses.replace(
        engine.vllm, generate_urls=urls))
    bot = dataclasses.replace(TEST_BOT, max_concurrent_model_calls=CONVERSATIONS)
    return dataclasses.replace(config, engine=engine, bot=bot)


@pytest.fixture(scope="module")
def engine(app_config: AppConfig) -> RSCapRet:
    return create_engine(app_config.engine)  # the start-up checks ask each replica


@pytest.fixture
async def service(app_config: AppConfig, engine: RSCapRet,
                  tmp_path: Path) -> AsyncIterator[ConversationService]:
    store = dataclasses.replace(app_config.store, data_dir=str(tmp_path))
    service = build_service(dataclasses.replace(app_config, store=store), engine)
    yield service
    service.close()


def backend_of(engine: RSCapRet) -> VllmBackend:
    assert isinstance(engine.backend, VllmBackend)
    return engine.backend


async def user_turns(service: ConversationService, user: UserRef) -> int:
    return sum(line.startswith("You: ") for line in (await service.history(user)).splitlines())


def test_doctor_lists_each_replica(app_config: AppConfig) -> None:
    ok, line = check_vllm(app_config)
    assert ok and line.count("generate http://") == 2 and line.count("pooling http://") == 1


def test_a_replica_serving_another_model_is_named(app_config: AppConfig,
                                                  engine: RSCapRet) -> None:
    config = dataclasses.replace(app_config.engine.vllm, served_model="another-model")
    first = app_config.engine.vllm.generate_urls[0]
    with pytest.raises(VllmError, match=f"{first} serves .*not 'another-model'"):
        connect_vllm(config, engine.lm, engine.bridge)


# One test for both (a service with its seed gallery costs over a minute to build here).
async def test_a_replica_killed_mid_reply_then_all_down(
        app_config: AppConfig, engine: RSCapRet, service: ConversationService,
        second_generate: ServerPair) -> None:
    generate = backend_of(engine).generate
    first, second = generate.replicas
    users = [UserRef("test", f"replica-{i}") for i in range(CONVERSATIONS)]

    async def turn(user: UserRef, photo: Path, progress: ProgressFn | None = None) -> str:
        reply = await service.ask(user, "Describe this image.", [photo.read_bytes()],
                                  progress=progress)
        return reply.text

    started = time.monotonic()
    await asyncio.gather(*(turn(u, PHOTOS[i]) for i, u in enumerate(users)))
    assert first.served > 0 and second.served > 0  # new conversations spread over both

    async def kill_when_busy(text: str) -> None:
        if second.in_flight > 0 and second_generate.processes["generate"].poll() is None:
            second_generate.kill("generate")

    replies = await asyncio.gather(*(turn(u, PHOTOS[CONVERSATIONS + i], kill_when_busy)
                                     for i, u in enumerate(users)))
    print(f"\n16 turns over two replicas, one killed: {time.monotonic() - started:.0f} s")
    assert second_generate.processes["generate"].poll() is not None  # it did die mid-round
    assert second.failed >= 1  # replies it had begun went on on the other
    assert all(len(r.split()) >= 3 for r in replies), replies
    assert [await user_turns(service, u) for u in users] == [2] * CONVERSATIONS
    await all_down_tells_each_user_once(app_config, engine, service)


async def all_down_tells_each_user_once(app_config: AppConfig, engine: RSCapRet,
                                        service: ConversationService) -> None:
    backend = backend_of(engine)
    live = backend.generate
    dead = tuple(f"http://127.0.0.1:{free_port()}" for _ in range(2))
    backend.generate = replica_set("generate", dataclasses.replace(
        app_config.engine.vllm, generate_urls=dead), dead)
    users = [UserRef("test", f"down-{i}") for i in range(2)]
    try:
        answers = await asyncio.gather(
            *(service.ask(u, "Describe this image.", [PHOTOS[0].read_bytes()]) for u in users),
            return_exceptions=True)
    finally:
        backend.generate = live
    assert all(isinstance(a, UserFacingError) and "not reachable" in str(a) for a in answers)
    assert [await user_turns(service, u) for u in users] == [0, 0]
