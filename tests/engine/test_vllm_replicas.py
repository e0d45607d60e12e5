"""Which vLLM replica serves a request: stickiness, least loaded, failover, health. The servers
here are loopback HTTP servers that only answer /health (the real vLLM servers' behaviour is in
tests/vllm/test_replicas.py); ``produce`` stands in for a streamed reply.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.backends.vllm_http import HttpClient, HttpSettings, VllmUnavailableError
from engine.backends.vllm_replicas import Replicas, RetryDivergedError, expand_urls


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[list[str]]:
    running = [ThreadingHTTPServer(("127.0.0.1", 0), Health) for _ in range(2)]
    for server in running:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{s.server_address[1]}" for s in running]
    for server in running:
        server.shutdown()
        server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replicas(urls: list[str], clock: Clock | None = None) -> Replicas:
    clients = [HttpClient(HttpSettings(url, 2.0, 0, 0.0)) for url in urls]
    return Replicas("generate", clients, health_interval_s=10.0, clock=clock or Clock())


def test_conversations_stick_and_new_ones_go_to_the_least_loaded(servers: list[str]) -> None:
    group = replicas(servers)
    a = group.pick("alice")
    b = group.pick("bob")  # alice's request still in flight on a
    assert a is not b
    group.release(a, lost=False)
    group.release(b, lost=False)
    assert group.pick("alice") is a and group.pick("bob") is b  # back where its cache is
    carol = group.pick("carol")  # both busy with one each: fewest conversations, then order
    assert carol is a
    group.forget("alice")
    assert group.pick("alice") is b  # a has two requests in flight, b one


def test_a_lost_replica_is_skipped_until_its_health_answers(servers: list[str]) -> None:
    clock = Clock()
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    group = replicas([dead, servers[0]], clock)
    first = group.pick("alice")
    assert first.url == dead
    group.release(first, lost=True)
    assert group.pick("alice").url == servers[0]  # moved, and sticks there
    clock.now = 11.0
    assert group.pick("bob").url == servers[0]  # probed, still dead: skipped again
    revived = group.replicas[0]
    revived.client = HttpClient(HttpSettings(servers[1], 2.0, 0, 0.0))  # "restarted"
    clock.now = 22.0
    assert group.pick("carol") is revived


def test_a_reply_cut_by_a_lost_replica_goes_on_on_another(servers: list[str]) -> None:
    group = replicas(servers)
    reply = [5, 6, 7, 8]

    def produce(client: HttpClient) -> Iterator[int]:
        for i, token in enumerate(reply):
            if client.base_url == servers[0] and i == 2:
                raise VllmUnavailableError("the server went away")
            yield token

    assert list(group.stream(produce, "alice")) == reply  # each token once
    first, second = group.replicas
    assert (first.failed, first.served, second.served) == (1, 0, 1)
    assert first.down_until is not None and group.pick("alice") is second


def test_a_retry_that_differs_is_not_spliced(servers: list[str]) -> None:
    group = replicas(servers)

    def produce(client: HttpClient) -> Iterator[int]:
        yield 1 if client.base_url == servers[0] else 2
        raise VllmUnavailableError("the server went away")

    with pytest.raises(RetryDivergedError, match="began differently"):
        list(group.stream(produce, "alice"))
    assert group.replicas[1].down_until is None  # not its fault


def test_all_down_is_one_error_naming_each(servers: list[str]) -> None:
    group = replicas(servers)

    def produce(client: HttpClient) -> Iterator[int]:
        raise VllmUnavailableError(f"cannot reach {client.base_url}")
        yield 0

    with pytest.raises(VllmUnavailableError, match="cannot reach"):
        list(group.stream(produce, "alice"))
    with pytest.raises(VllmUnavailableError, match="no vLLM generate server is reachable") as exc:
        group.pick("bob")
    assert all(url in str(exc.value) for url in servers)


def test_a_name_stands_for_each_of_its_addresses() -> None:
    found = expand_urls(("http://localhost:8000",))
    assert "http://127.0.0.1:8000" in found and all(u.endswith(":8000") for u in found)
    assert expand_urls(("http://127.0.0.1:8000/v1",)) == ["http://127.0.0.1:8000/v1"]
    with pytest.raises(VllmUnavailableError, match="cannot resolve"):
        expand_urls(("http://no-such-host.invalid:8000",))
