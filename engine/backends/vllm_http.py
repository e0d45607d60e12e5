"""A small JSON-over-HTTP client for the vLLM servers (stdlib only: no extra dependency).

Connection errors (server not up yet, restarting) are retried with exponential back-off; any
answer the server did give (4xx, 5xx) is not, since sending the same request again would get
the same answer or, worse, run it twice. Everything that goes wrong ends as one
``VllmUnavailableError`` (cannot talk to the server) or ``VllmRequestError`` (it refused).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from engine.backends.errors import BackendUnavailableError

logger = logging.getLogger(__name__)


class VllmError(RuntimeError):
    """Something went wrong talking to a vLLM server; the message says what and where."""


class VllmUnavailableError(VllmError, BackendUnavailableError):
    """The server cannot be reached, or it went away in the middle of a request."""


class VllmRequestError(VllmError):
    """The server answered with an error status; ``status`` and its message are kept."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class HttpSettings:
    """How to talk to one server."""

    base_url: str  # e.g. "http://127.0.0.1:8000" (no trailing slash)
    timeout_s: float  # per socket operation (connect, each read)
    retries: int  # extra tries on connection errors only
    backoff_s: float  # first wait; doubles each retry
    api_key: str | None = None  # vLLM's --api-key, sent as a bearer token


class HttpClient:
    """GET/POST JSON and read server-sent events from one server."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")

    def get(self, path: str) -> Any:
        """GET ``path`` and decode its JSON body."""
        with self._open(path, None) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST ``body`` as JSON to ``path`` and decode the JSON answer."""
        with self._open(path, body) as response:
            try:
                return json.loads(response.read())
            except (OSError, HTTPException) as exc:
                raise self._lost(path, exc) from exc

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST ``body`` and yield each server-sent event's JSON until ``[DONE]``."""
        with self._open(path, body) as response:
            try:
                for raw in response:
                    line = raw.decode().strip()
                    if not line.startswith("data:"):
                        continue
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    yield json.loads(data)
            except (OSError, HTTPException) as exc:
                raise self._lost(path, exc) from exc
        raise VllmUnavailableError(f"{self.base_url}{path}: the stream ended without [DONE] "
                                   "(did the server stop?)")

    def _open(self, path: str, body: dict[str, Any] | None) -> Any:
        request = self._request(path, body)
        wait = self.settings.backoff_s
        for attempt in range(self.settings.retries + 1):
            try:
                return urllib.request.urlopen(request, timeout=self.settings.timeout_s)
            except urllib.error.HTTPError as exc:
                raise _refused(self.base_url + path, exc) from exc
            except (OSError, HTTPException) as exc:
                if attempt == self.settings.retries:
                    raise VllmUnavailableError(
                        f"cannot reach the vLLM server at {self.base_url} ({exc}); is it "
                        "running? (`capret serve-llm`)") from exc
                logger.warning("vLLM %s: %s; retrying in %.1f s", self.base_url, exc, wait)
                time.sleep(wait)
                wait *= 2
        raise AssertionError("unreachable")

    def _request(self, path: str, body: dict[str, Any] | None) -> urllib.request.Request:
        headers = {"Accept": "application/json"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return urllib.request.Request(self.base_url + path, data=data, headers=headers)

    def _lost(self, path: str, exc: BaseException) -> VllmUnavailableError:
        return VllmUnavailableError(
            f"the vLLM server at {self.base_url} went away during {path} ({exc})")


def _refused(url: str, exc: urllib.error.HTTPError) -> VllmRequestError:
    """The server's own error message, which names the problem (e.g. a missing flag)."""
    try:
        payload = json.loads(exc.read() or b"{}")
        detail = payload.get("error", payload)
        message = detail.get("message", str(detail)) if isinstance(detail, dict) else str(detail)
    except (ValueError, OSError):
        message = exc.reason
    return VllmRequestError(f"{url} answered {exc.code}: {message}", exc.code)
