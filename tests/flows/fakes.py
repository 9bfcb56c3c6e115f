"""A fake Kommo API on a real local HTTP server, answering in Kommo's documented formats
(../shared/reference/kommo.md §3): 204 for an empty search, a plain array from leads/complex,
`_embedded` objects elsewhere (notes, tasks). It records every request for exact assertions."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.outbox.support import Received


@dataclass
class KommoState:
    contacts: list[dict[str, Any]] = field(default_factory=list)
    next_lead_id: int = 9001
    next_contact_id: int = 8001
    next_note_id: int = 7001
    next_task_id: int = 6001
    leads: dict[int, dict[str, Any]] = field(default_factory=dict)


class FakeKommo:
    def __init__(self) -> None:
        self.state = KommoState()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with fake._lock:
                    fake.received.append(
                        Received(self.command, self.path, dict(self.headers.items()), body)
                    )
                    status, answer = fake.answer(self.command, self.path, body)
                payload = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                if payload:
                    self.send_header("Content-Type", "application/hal+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        url = urlsplit(path)
        data = json.loads(body) if body else None
        if method == "GET" and url.path == "/api/v4/contacts":
            query = parse_qs(url.query).get("query", [""])[0]
            found = [c for c in self.state.contacts if query and query in json.dumps(c)]
            return (200, {"_embedded": {"contacts": found}}) if found else (204, None)
        if method == "POST" and url.path == "/api/v4/leads/complex":
            out = []
            for lead in data:
                lead_id = self.state.next_lead_id
                self.state.next_lead_id += 1
                contacts = lead.get("_embedded", {}).get("contacts", [{}])
                contact_id = contacts[0].get("id")
                if contact_id is None:
                    contact_id = self.state.next_contact_id
                    self.state.next_contact_id += 1
                    self.state.contacts.append({"id": contact_id, **contacts[0]})
                self.state.leads[lead_id] = lead
                out.append(
                    {
                        "id": lead_id,
                        "contact_id": contact_id,
                        "company_id": None,
                        "request_id": [lead.get("request_id", "0")],
                        "merged": False,
                    }
                )
            return 200, out
        if method == "PATCH" and url.path.startswith("/api/v4/leads/"):
            lead_id = int(url.path.rsplit("/", 1)[-1])
            return 200, {"id": lead_id, "updated_at": 1767261600}
        if method == "POST" and url.path == "/api/v4/leads/notes":
            notes = []
            for note in data:
                notes.append(
                    {
                        "id": self.state.next_note_id,
                        "entity_id": note["entity_id"],
                        "request_id": note.get("request_id", "0"),
                    }
                )
                self.state.next_note_id += 1
            return 200, {"_embedded": {"notes": notes}}
        if method == "POST" and url.path == "/api/v4/tasks":
            tasks = []
            for task in data:
                tasks.append(
                    {"id": self.state.next_task_id, "request_id": task.get("request_id", "0")}
                )
                self.state.next_task_id += 1
            return 200, {"_embedded": {"tasks": tasks}}
        return 404, {"title": "Not Found", "status": 404, "detail": f"{method} {path}"}

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.received]

    def __enter__(self) -> "FakeKommo":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_kommo(settings: Any) -> Iterator[FakeKommo]:
    with FakeKommo() as kommo:
        settings.KOMMO_BASE_URL = kommo.url
        settings.KOMMO_ACCESS_TOKEN = "kommo-long-lived-test-token"
        settings.KOMMO_MAX_REQUESTS_PER_SECOND = 1000
        yield kommo
