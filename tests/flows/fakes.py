"""A fake Kommo API on a real local HTTP server, answering in Kommo's documented formats
(../shared/reference/kommo.md §3): 204 for an empty search, a plain array from leads/complex,
`_embedded` objects elsewhere (notes, tasks). It records every request for exact assertions."""

import json
import threading
import time
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
    lead_created_at: dict[int, int] = field(default_factory=dict)
    leads_of_contact: dict[int, list[int]] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)


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
        params = parse_qs(url.query)
        with_leads = "leads" in params.get("with", [""])[0].split(",")
        if method == "GET" and url.path == "/api/v4/contacts":
            query = params.get("query", [""])[0]
            found = [c for c in self.state.contacts if query and query in json.dumps(c)]
            found = [self._contact(c, with_leads=with_leads) for c in found]
            return (200, {"_embedded": {"contacts": found}}) if found else (204, None)
        if method == "GET" and url.path.startswith("/api/v4/contacts/"):
            contact_id = int(url.path.rsplit("/", 1)[-1])
            for contact in self.state.contacts:
                if contact["id"] == contact_id:
                    return 200, self._contact(contact, with_leads=with_leads)
            return 204, None
        if (
            method == "GET"
            and url.path.startswith("/api/v4/leads/")
            and url.path.endswith("/notes")
        ):
            lead_id = int(url.path.split("/")[4])
            found = [n for n in reversed(self.state.notes) if n["entity_id"] == lead_id]
            return (200, {"_embedded": {"notes": found}}) if found else (204, None)
        if method == "GET" and url.path.startswith("/api/v4/leads/") and url.path[14:].isdigit():
            lead_id = int(url.path.rsplit("/", 1)[-1])
            if lead_id not in self.state.leads:
                return 204, None
            sent = self.state.leads[lead_id]
            return 200, {
                "id": lead_id,
                "name": sent.get("name"),
                "pipeline_id": sent.get("pipeline_id"),
                "status_id": sent.get("status_id"),
                "responsible_user_id": sent.get("responsible_user_id"),
                "created_at": self.state.lead_created_at[lead_id],
            }
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
                self.state.lead_created_at[lead_id] = int(time.time())
                self.state.leads_of_contact.setdefault(contact_id, []).append(lead_id)
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
                self.state.notes.append(
                    {
                        "id": self.state.next_note_id,
                        "entity_id": note["entity_id"],
                        "created_at": int(time.time()),
                        "note_type": note.get("note_type"),
                        "params": note.get("params") or {},
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

    def _contact(self, contact: dict[str, Any], *, with_leads: bool) -> dict[str, Any]:
        if not with_leads:
            return contact
        leads = [{"id": i} for i in self.state.leads_of_contact.get(contact["id"], [])]
        return {**contact, "_embedded": {"leads": leads}}

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
