"""The real n8n engine running n8n/kommo_hub.workflow.json, the fakes it calls and the real hub.

Session-wide: `scripts/n8n-engine install` (a failed install fails these tests, never skips
them), the fake SaaS APIs, and one n8n per AI provider in a temporary user folder with the test
credentials and the workflow imported and active. Per test: the hub (gunicorn + a task worker)
on the pytest test database, pointed at n8n, so the outbox delivers real envelopes and n8n calls
back the real claim, callback and booking endpoints.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from kommo_hub.models import ApiKey, ApiKeyScope
from kommo_hub.models.api import api_key_hash
from tests.n8n.fakes import WHATSAPP_PHONE_NUMBER_ID, FakeApis, serve
from tests.system.processes import (
    PYTHON,
    HubProcesses,
    database_url,
    free_port,
    hub_env,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "scripts" / "n8n-engine"
WORKFLOW = ROOT / "n8n" / "kommo_hub.workflow.json"
CREDENTIALS = ROOT / "n8n" / "credentials.example.json"
WORKFLOW_ID = json.loads(WORKFLOW.read_text())["id"]
WEBHOOK_PATH = "/webhook/kommo-hub"
WEBHOOK_SECRET = "n8n-webhook-test-secret"
API_KEY = "0123456789abcdef.n8n-test-api-key"
TEMPLATE_NAME = "kommo_hub_followup"
# The credentials' values in the tests, by the id the workflow refers to them with.
CREDENTIAL_VALUES = {
    "khHubSecret0001": WEBHOOK_SECRET,
    "khHubApiKey0001": f"Api-Key {API_KEY}",
    "khWhatsApp00001": "Bearer test-whatsapp-token",
    "khKommoToken001": "Bearer test-kommo-token",
    "khOpenAiKey0001": "Bearer test-openai-key",
    "khAnthropic0001": "test-anthropic-key",
}
STARTUP_SECONDS = 120


@pytest.fixture(scope="session")
def n8n_engine() -> None:
    """Installs n8n once (a no-op when it is there); no registry → the tests fail, loudly."""
    started = time.monotonic()
    result = subprocess.run(
        [str(ENGINE), "install"], capture_output=True, text=True, timeout=1800, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"scripts/n8n-engine install failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    print(f"n8n engine ready in {time.monotonic() - started:.1f}s: {result.stdout.strip()}")


@pytest.fixture(scope="session")
def fakes() -> Iterator[FakeApis]:
    apis = FakeApis()
    server = serve(apis)
    try:
        yield apis
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def apis(fakes: FakeApis) -> FakeApis:
    """The fakes, emptied and back to their default answers for this test."""
    fakes.reset()
    return fakes


@dataclass
class N8n:
    base: str
    folder: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def webhook_url(self) -> str:
        return f"{self.base}{WEBHOOK_PATH}"

    def post(self, envelope: Any, *, secret: str | None = WEBHOOK_SECRET) -> httpx.Response:
        headers = {"X-Kommo-Hub-Secret": secret} if secret is not None else {}
        return httpx.post(self.webhook_url, json=envelope, headers=headers, timeout=60)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _cli(folder: Path, *args: str) -> None:
    result = subprocess.run(
        [str(ENGINE), "cli", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"n8n {' '.join(args)} failed:\n{result.stdout}{result.stderr}"


def n8n_folder_prepare(folder: Path) -> Path:
    """A user folder with the test credentials (the shipped template, filled in) and the workflow,
    imported and active; each n8n starts on a copy (the imports are the slow part)."""
    folder.mkdir(parents=True, exist_ok=True)
    credentials = json.loads(CREDENTIALS.read_text())
    for credential in credentials:
        credential["data"]["value"] = CREDENTIAL_VALUES[credential["id"]]
    (folder / "credentials.json").write_text(json.dumps(credentials))
    _cli(folder, "import:credentials", f"--input={folder / 'credentials.json'}")
    _cli(folder, "import:workflow", f"--input={WORKFLOW}")
    _cli(folder, "update:workflow", f"--id={WORKFLOW_ID}", "--active=true")
    return folder


def n8n_start(prepared: Path, folder: Path, apis: FakeApis, *, provider: str) -> N8n:
    """n8n on a copy of the prepared folder, its settings pointing at the fakes."""
    shutil.copytree(prepared, folder)
    port = free_port()
    env = {
        **os.environ,
        "N8N_RUNNERS_BROKER_PORT": str(free_port()),
        "AI_PROVIDER": provider,
        "AI_BASE_URL": f"{apis.base}/v1" if provider == "openai" else apis.base,
        "AI_MODEL": "",
        "WHATSAPP_API_URL": f"{apis.base}/whatsapp/v21.0",
        "WHATSAPP_PHONE_NUMBER_ID": WHATSAPP_PHONE_NUMBER_ID,
        "WHATSAPP_TEMPLATE_NAME": TEMPLATE_NAME,
        "WHATSAPP_TEMPLATE_LANGUAGE": "",
        "KOMMO_BASE_URL": f"{apis.base}/kommo",
        "KOMMO_HUB_URL": "",
    }
    log_path = folder / "n8n.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(ENGINE), "start", str(folder), str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    n8n = N8n(base=f"http://127.0.0.1:{port}", folder=folder, process=process, log_path=log_path)

    def webhook_live() -> bool:
        # 403 (header auth) once the active workflow's webhook is registered; 404 before.
        if process.poll() is not None:
            raise AssertionError(f"n8n exited {process.returncode}:\n{n8n.log_tail()}")
        try:
            health = httpx.get(f"{n8n.base}/healthz", timeout=2)
            if health.status_code != 200:
                return False
            return httpx.post(n8n.webhook_url, json={}, timeout=5).status_code == 403
        except httpx.HTTPError:
            return False

    try:
        wait_until(webhook_live, timeout=STARTUP_SECONDS, what="n8n's webhook", interval=0.5)
    except BaseException:
        n8n.stop()
        raise
    return n8n


@pytest.fixture(scope="session")
def n8n_prepared(n8n_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return n8n_folder_prepare(tmp_path_factory.mktemp("n8n-prepared"))


@pytest.fixture(scope="session")
def n8n(
    n8n_prepared: Path, fakes: FakeApis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[N8n]:
    folder = tmp_path_factory.mktemp("n8n") / "openai"
    engine = n8n_start(n8n_prepared, folder, fakes, provider="openai")
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def n8n_anthropic(
    n8n_prepared: Path, fakes: FakeApis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[N8n]:
    folder = tmp_path_factory.mktemp("n8n") / "anthropic"
    engine = n8n_start(n8n_prepared, folder, fakes, provider="anthropic")
    try:
        yield engine
    finally:
        engine.stop()


@dataclass
class Hub:
    base: str
    processes: HubProcesses


def hub_start(n8n: N8n, tmp_path: Path) -> tuple[Hub, HubProcesses]:
    env = hub_env(database=database_url(connection.settings_dict), var_dir=tmp_path / "var")
    processes = HubProcesses(base_env=env, log_dir=tmp_path / "logs")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {
        "N8N_WEBHOOK_URL": n8n.webhook_url,
        "N8N_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HUB_PUBLIC_URL": base,
        "RETRY_BASE_SECONDS": 1,
    }
    argv = [PYTHON, "-m", "gunicorn", "kommo_hub.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", "2", "--threads", "4", "--graceful-timeout", "3", "--no-control-socket"]
    web = processes.start("gunicorn", argv, **settings)
    try:
        assert processes.wait_healthy(base, web, timeout=60), processes.logs()
        processes.worker(**settings)
    except BaseException:
        processes.close()
        raise
    return Hub(base=base, processes=processes), processes


def _hub(n8n: N8n, tmp_path: Path) -> Iterator[Hub]:
    # The key n8n's "Kommo Hub API key" credential holds (the database is emptied per test).
    prefix = API_KEY.partition(".")[0]
    ApiKey.objects.create(
        name="n8n", prefix=prefix, hashed_key=api_key_hash(API_KEY), scope=ApiKeyScope.SCHEDULING
    )
    hub, processes = hub_start(n8n, tmp_path)
    try:
        yield hub
    finally:
        processes.close()


@pytest.fixture
def hub(transactional_db: None, n8n: N8n, tmp_path: Path, settings: Any) -> Iterator[Hub]:
    """The real hub for this test; this process enqueues into the same database queue."""
    _queue_in_database(settings)
    yield from _hub(n8n, tmp_path)


@pytest.fixture
def hub_for_anthropic(
    transactional_db: None, n8n_anthropic: N8n, tmp_path: Path, settings: Any
) -> Iterator[Hub]:
    _queue_in_database(settings)
    yield from _hub(n8n_anthropic, tmp_path)


def _queue_in_database(settings: Any) -> None:
    settings.TASKS_BACKEND = "database"
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing engine test shows the hub's and n8n's logs."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for name in ("hub", "hub_for_anthropic"):
            found = funcargs.get(name)
            if isinstance(found, Hub):
                report.sections.append(("hub process logs", found.processes.logs()))
        for name in ("n8n", "n8n_anthropic"):
            engine = funcargs.get(name)
            if isinstance(engine, N8n):
                report.sections.append((f"{name} log", engine.log_tail()))
    return report
