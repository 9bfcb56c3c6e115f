"""The SaaS APIs the workflow calls, faked on loopback: an OpenAI- and an Anthropic-compatible
chat API, the WhatsApp Business Cloud API and Kommo's notes API. One threaded HTTP server records
every request; each test says what the AI answers and which API fails.
"""

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WHATSAPP_PHONE_NUMBER_ID = "109876543210"
WHATSAPP_PREFIX = "/whatsapp/v21.0"
KOMMO_PREFIX = "/kommo"
OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"
WHATSAPP_PATH = f"{WHATSAPP_PREFIX}/{WHATSAPP_PHONE_NUMBER_ID}/messages"
NOTES_PATH = re.compile(rf"^{KOMMO_PREFIX}/api/v4/leads/(\d+)/notes$")

# What the AI answers: a fixed text, or computed from the prompt it was sent.
AiAnswer = str | Callable[[str], str]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Behaviour:
    ai_answer: AiAnswer = '{"text": "Olá! Como posso ajudar?", "handoff": false}'
    ai_status: int = 200
    whatsapp_status: int = 200
    kommo_status: int = 200


@dataclass
class FakeApis:
    base: str = ""
    requests: list[Recorded] = field(default_factory=list)
    behaviour: Behaviour = field(default_factory=Behaviour)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 0

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.behaviour = Behaviour()

    def received(self, path: str | re.Pattern[str]) -> list[Recorded]:
        with self.lock:
            requests = list(self.requests)
        if isinstance(path, re.Pattern):
            return [r for r in requests if path.match(r.path)]
        return [r for r in requests if r.path == path]

    def whatsapp(self) -> list[Recorded]:
        return self.received(WHATSAPP_PATH)

    def notes(self) -> list[Recorded]:
        return self.received(NOTES_PATH)

    def ai(self) -> list[Recorded]:
        return self.received(OPENAI_PATH) + self.received(ANTHROPIC_PATH)

    def new_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id

    # --- the answers --------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(Recorded(method, path, headers, body))
            behaviour = self.behaviour
        if path == OPENAI_PATH:
            return self._openai(behaviour, headers, body)
        if path == ANTHROPIC_PATH:
            return self._anthropic(behaviour, headers, body)
        if path == WHATSAPP_PATH:
            return self._whatsapp(behaviour, headers, body)
        match = NOTES_PATH.match(path)
        if match:
            return self._note(behaviour, headers, body, int(match.group(1)))
        return 404, {"error": f"no fake for {method} {path}"}

    def _ai_text(self, behaviour: Behaviour, prompt: str) -> str:
        answer = behaviour.ai_answer
        return answer(prompt) if callable(answer) else answer

    def _openai(self, behaviour: Behaviour, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if headers.get("authorization") != "Bearer test-openai-key":
            return 401, {"error": {"message": "Incorrect API key provided", "type": "auth"}}
        if behaviour.ai_status != 200:
            return behaviour.ai_status, {"error": {"message": "The server had an error"}}
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return 400, {"error": {"message": "messages is required"}}
        prompt = "\n".join(str(m.get("content", "")) for m in body["messages"])
        return 200, {
            "id": f"chatcmpl-{self.new_id()}",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self._ai_text(behaviour, prompt)},
                    "finish_reason": "stop",
                }
            ],
        }

    def _anthropic(
        self, behaviour: Behaviour, headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if headers.get("x-api-key") != "test-anthropic-key" or not headers.get("anthropic-version"):
            return 401, {"type": "error", "error": {"type": "authentication_error"}}
        if behaviour.ai_status != 200:
            return behaviour.ai_status, {"type": "error", "error": {"type": "api_error"}}
        if not isinstance(body, dict) or not body.get("max_tokens"):
            return 400, {"type": "error", "error": {"message": "max_tokens is required"}}
        prompt = (
            str(body.get("system", ""))
            + "\n"
            + "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        )
        return 200, {
            "id": f"msg_{self.new_id()}",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": self._ai_text(behaviour, prompt)}],
            "stop_reason": "end_turn",
        }

    def _whatsapp(
        self, behaviour: Behaviour, headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if headers.get("authorization") != "Bearer test-whatsapp-token":
            return 401, {"error": {"message": "Invalid OAuth access token", "code": 190}}
        if behaviour.whatsapp_status != 200:
            return behaviour.whatsapp_status, {
                "error": {"message": "(#131000) Something went wrong"}
            }
        problem = whatsapp_problem(body)
        if problem:
            return 400, {"error": {"message": problem, "code": 100}}
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": f"wamid.TEST{self.new_id()}"}],
        }

    def _note(
        self, behaviour: Behaviour, headers: dict[str, str], body: Any, lead_id: int
    ) -> tuple[int, Any]:
        if headers.get("authorization") != "Bearer test-kommo-token":
            return 401, {"title": "Unauthorized", "status": 401}
        if behaviour.kommo_status != 200:
            return behaviour.kommo_status, {"title": "Error", "status": behaviour.kommo_status}
        valid = (
            isinstance(body, list)
            and len(body) == 1
            and body[0].get("note_type") == "common"
            and isinstance(body[0].get("params", {}).get("text"), str)
        )
        if not valid:
            return 400, {"title": "Bad Request", "status": 400}
        note_id = 7000 + self.new_id()
        return 200, {
            "_links": {"self": {"href": f"/api/v4/leads/{lead_id}/notes"}},
            "_embedded": {
                "notes": [{"id": note_id, "entity_id": lead_id, "request_id": "0", "_links": {}}]
            },
        }


def whatsapp_problem(body: Any) -> str:
    """What Meta would refuse in a send-message body ("" when it is well formed)."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if not re.fullmatch(r"\d{10,15}", str(body.get("to", ""))):
        return "to must be the phone number in digits"
    if body.get("type") == "text":
        text = body.get("text", {}).get("body")
        return "" if isinstance(text, str) and 0 < len(text) <= 4096 else "text.body is required"
    if body.get("type") == "template":
        template = body.get("template", {})
        if not template.get("name") or not template.get("language", {}).get("code"):
            return "template name and language are required"
        for component in template.get("components", []):
            for parameter in component.get("parameters", []):
                if re.search(r"[\n\t]| {5,}", str(parameter.get("text", ""))):
                    return "template parameters cannot have new lines, tabs or 5 spaces"
        return ""
    return "type must be text or template"


def serve(apis: FakeApis) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw.decode(errors="replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = apis.answer("POST", self.path, headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    apis.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
