"""Several vLLM servers of one role (generate or pooling): which one serves a request.

A conversation sticks to the replica that served it while that one is healthy, because its
prefix cache (the conversation so far) lives there; a new conversation goes to the replica
with the fewest requests in flight (then the fewest conversations). A replica whose request
fails to reach it is skipped until its ``/health`` answers again, asked at most once per
``health_interval_s``, so a dead server costs one failed request, not one per message.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from engine.backends.vllm_http import HttpClient, VllmUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Conversations remembered for stickiness (LRU); one forgotten just picks afresh.
STICKY_SESSIONS = 4096
# Seconds a /health probe may take before the replica counts as still down.
HEALTH_TIMEOUT_S = 2.0


@dataclass
class Replica:
    """One server and what the set knows of it."""

    client: HttpClient
    in_flight: int = 0  # requests sent and not yet finished
    served: int = 0  # requests finished without losing the server
    failed: int = 0  # requests that lost it
    down_until: float | None = None  # monotonic time of its next /health probe; None = up

    @property
    def url(self) -> str:
        return self.client.base_url


class Replicas:
    """The replicas of one role; ``pick`` one per request and ``release`` it after."""

    def __init__(self, role: str, clients: list[HttpClient], health_interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not clients:
            raise ValueError(f"no {role} server configured")
        self.role = role
        self.replicas = [Replica(c) for c in clients]
        self.health_interval_s = health_interval_s
        self._clock = clock
        self._sticky: OrderedDict[str, Replica] = OrderedDict()
        self._lock = threading.Lock()

    def pick(self, session: str | None = None, avoid: Replica | None = None) -> Replica:
        """The replica for the next request of ``session`` (counted in flight until
        ``release``); raises VllmUnavailableError naming every replica when none is up.
        """
        self._probe_due()
        with self._lock:
            up = [r for r in self.replicas if r.down_until is None and r is not avoid]
            if not up:
                raise VllmUnavailableError(self._none_up(avoid))
            chosen = self._sticky.get(session) if session is not None else None
            if chosen not in up:
                counts = Counter(id(r) for r in self._sticky.values())
                chosen = min(up, key=lambda r: (r.in_flight, counts[id(r)]))
            if session is not None:
                self._remember(session, chosen)
            chosen.in_flight += 1
            return chosen

    def release(self, replica: Replica, lost: bool) -> None:
        """The request on ``replica`` ended; ``lost``: the server went away (skip it)."""
        with self._lock:
            replica.in_flight -= 1
            if not lost:
                replica.served += 1
                return
            replica.failed += 1
            if replica.down_until is None:
                logger.warning("vLLM %s server %s lost; skipped until its /health answers",
                               self.role, replica.url)
            replica.down_until = self._clock() + self.health_interval_s

    def call(self, fn: Callable[[HttpClient], T], session: str | None = None) -> T:
        """``fn`` on a picked replica; when that replica is lost, once more on another."""
        return list(self.stream(lambda client: iter([fn(client)]), session))[0]

    def stream(self, produce: Callable[[HttpClient], Iterator[T]],
               session: str | None = None) -> Iterator[T]:
        """``produce``'s items from a picked replica. When that replica is lost part-way, the
        request runs once more on another, whose first items must repeat those already given
        (greedy and seeded decoding do) and are skipped: the caller sees one reply.
        """
        given: list[T] = []
        lost: Replica | None = None
        cause: VllmUnavailableError | None = None
        for attempt in range(2):
            replica = self._pick_after(session, lost, cause)
            try:
                for i, item in enumerate(produce(replica.client)):
                    if i >= len(given):
                        given.append(item)
                        yield item
                    elif item != given[i]:
                        raise RetryDivergedError(
                            f"the retry on {replica.url} began differently from the reply "
                            "its lost replica had begun")
            except VllmUnavailableError as exc:
                self.release(replica, lost=not isinstance(exc, RetryDivergedError))
                if attempt == 1 or isinstance(exc, RetryDivergedError):
                    raise
                logger.warning("vLLM %s request lost on %s after %d items; retrying on "
                               "another replica", self.role, replica.url, len(given))
                lost, cause = replica, exc
                continue
            except BaseException:
                self.release(replica, lost=False)
                raise
            self.release(replica, lost=False)
            return

    def _pick_after(self, session: str | None, lost: Replica | None,
                    cause: VllmUnavailableError | None) -> Replica:
        """``pick`` avoiding ``lost``; when none is left, the error keeps why it was lost."""
        try:
            return self.pick(session, avoid=lost)
        except VllmUnavailableError as none_up:
            raise none_up from cause

    def forget(self, session: str) -> None:
        """A conversation was reset: its next request picks afresh."""
        with self._lock:
            self._sticky.pop(session, None)

    def _remember(self, session: str, replica: Replica) -> None:
        self._sticky[session] = replica
        self._sticky.move_to_end(session)
        while len(self._sticky) > STICKY_SESSIONS:
            self._sticky.popitem(last=False)

    def _probe_due(self) -> None:
        """Ask /health of each down replica whose wait is over (outside the lock: a hung
        host must not hold up the picks of the others).
        """
        now = self._clock()
        with self._lock:
            due = [r for r in self.replicas if r.down_until is not None and r.down_until <= now]
            for replica in due:  # one prober each: the others keep skipping it meanwhile
                replica.down_until = now + self.health_interval_s
        for replica in due:
            if healthy(replica.client):
                with self._lock:
                    replica.down_until = None
                logger.warning("vLLM %s server %s is back", self.role, replica.url)

    def _none_up(self, avoid: Replica | None) -> str:
        states = ", ".join(f"{r.url} ({'just failed' if r is avoid else 'down'})"
                           for r in self.replicas)
        return f"no vLLM {self.role} server is reachable: {states}"


class RetryDivergedError(VllmUnavailableError):
    """A retried request did not repeat what the lost replica had already given."""


def healthy(client: HttpClient) -> bool:
    """Whether the server answers ``/health`` now (no retries)."""
    try:
        with urllib.request.urlopen(client.base_url + "/health",
                                    timeout=HEALTH_TIMEOUT_S) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def expand_urls(urls: tuple[str, ...]) -> list[str]:
    """Each URL once per address its host name resolves to (in a stable order), e.g. the N
    containers of a compose service scaled to N; an address stays as it is.
    """
    expanded: list[str] = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise VllmUnavailableError(f"cannot resolve the vLLM host {host!r} of {url} "
                                       f"({exc})") from exc
        addresses = sorted({str(info[4][0]) for info in found})
        for address in addresses:
            netloc = f"[{address}]" if ":" in address else address
            expanded.append(urllib.parse.urlunsplit(parts._replace(netloc=f"{netloc}:{port}")))
    return expanded
