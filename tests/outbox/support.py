"""Shared by the outbox and ops tests: n8n/Kommo settings and a real local HTTP server.

External systems are replaced at the HTTP boundary only: respx for httpx, or the server below.
"""

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import respx
from django.test import TestCase

N8N_URL = "https://n8n.example.test/webhook/kommo-hub"
N8N_SECRET = "n8n-outbound-test-secret"
KOMMO_SUBDOMAIN = "acme"
KOMMO_API = "https://acme.kommo.com"
KOMMO_TOKEN = "kommo-long-lived-test-token"


@dataclass
class Reply:
    status: int = 200
    body: str = '{"received": true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LocalHttpServer:
    """A real HTTP server on 127.0.0.1: answers from `replies` in order (then 200), records all."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.received: list[Received] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with server._lock:
                    server.received.append(
                        Received(self.command, self.path, dict(self.headers.items()), body)
                    )
                    reply = server.replies.pop(0) if server.replies else Reply()
                time.sleep(reply.delay)
                payload = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout tests)

            do_POST = do_PATCH = do_GET = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> "LocalHttpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port() -> int:
    """A local port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_mock() -> Iterator[respx.MockRouter]:
    """httpx is answered by routes; any request without a route fails the test."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def local_server() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as server:
        yield server


@pytest.fixture
def n8n_on(settings: Any) -> None:
    settings.N8N_WEBHOOK_URL = N8N_URL
    settings.N8N_WEBHOOK_SECRET = N8N_SECRET


@pytest.fixture
def kommo_on(settings: Any) -> None:
    settings.KOMMO_SUBDOMAIN = KOMMO_SUBDOMAIN
    settings.KOMMO_ACCESS_TOKEN = KOMMO_TOKEN
    # The shared 7/s limiter has its own tests; here it must not slow delivery tests down.
    settings.KOMMO_MAX_REQUESTS_PER_SECOND = 1000


@contextmanager
def committed() -> Iterator[None]:
    """Run the block as if its transaction committed: the on-commit tasks run when it ends.

    Tests run inside a transaction that is rolled back afterwards (fast on Postgres); this runs
    exactly the callbacks a real commit would, so tasks still only ever see committed work.
    """
    with TestCase.captureOnCommitCallbacks(execute=True):
        yield


def enqueue_n8n(key: str = "lead:1:proactive_message", action: str = "proactive_message") -> Any:
    """Record an n8n action the way the flows do and commit: inline tasks deliver it."""
    from kommo_hub.outbox.envelope import envelope_build
    from kommo_hub.outbox.services import action_enqueue

    with committed():
        obj, _ = action_enqueue(
            target="n8n",
            action=action,
            idempotency_key=key,
            payload=envelope_build(action=action, idempotency_key=key, lead=None),
        )
    obj.refresh_from_db()
    return obj
