"""The production stack as a user runs it: `scripts/start release|web|worker|scheduler` with
DJANGO_ENV=production, Postgres and Redis; two schedulers started (one by mistake)."""

import os
import re
import secrets

import httpx
import pytest
from django.db.models import Count
from django_tasks_db.models import DBTaskResult

from kommo_hub.models import EventStatus, InboundEvent, Lead, SchedulerRun
from tests.conftest import SECRETS, shared_fixture
from tests.system.processes import (
    FORM_CONTENT_TYPE,
    KOMMO_WEBHOOK_PATH,
    ROOT,
    HubProcess,
    HubProcesses,
    free_port,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

START = str(ROOT / "scripts" / "start")
HTTPS = {"X-Forwarded-Proto": "https"}  # what the TLS proxy in front of the hub adds


def _production_env() -> dict[str, str]:
    return {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "HUB_PUBLIC_URL": "https://hub.example.com.br",
        "DJANGO_BEHIND_TLS_PROXY": "1",
        "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15",
        "CACHE_KEY_PREFIX": f"test-prod-{secrets.token_hex(4)}",
    }


def _start_web(hub: HubProcesses, env: dict[str, str]) -> tuple[str, HubProcess]:
    for _attempt in range(3):  # another process may take the free port first
        port = free_port()
        web = hub.start(
            "web",
            [START, "web"],
            PORT=port,
            HUB_HOST="127.0.0.1",
            WEB_CONCURRENCY=2,
            THREADS=2,
            **env,
        )
        base = f"http://127.0.0.1:{port}"
        if hub.wait_healthy(base, web, timeout=60):
            return base, web
    raise AssertionError(f"scripts/start web never became healthy\n{hub.logs()}")


def test_the_production_processes_serve_static_files_and_process_a_webhook_once(
    hub: HubProcesses,
) -> None:
    env = _production_env()
    release = hub.start("release", [START, "release"], **env)
    assert release.popen.wait(timeout=180) == 0, hub.logs([release])
    base, web = _start_web(hub, env)
    worker = hub.start("worker", [START, "worker", "--interval", "0.1"], **env)
    schedulers = [
        hub.start("scheduler", [START, "scheduler"], SCHEDULER_TICK_SECONDS=0.2, **env)
        for _ in range(2)
    ]

    def ready() -> dict[str, object] | None:
        answer = httpx.get(f"{base}/readyz", timeout=5)  # plain HTTP: probes are not redirected
        body: dict[str, object] = answer.json()
        return body if answer.status_code == 200 and body["status"] == "ok" else None

    readiness = wait_until(ready, timeout=30, what="/readyz to say ok", hub=hub)
    assert readiness["checks"]["cache"] == "ok"  # type: ignore[index]

    # Plain HTTP to the admin goes to HTTPS; through the proxy it is served, with hashed static
    # files (CompressedManifestStaticFilesStorage) that whitenoise serves with a long cache life.
    redirect = httpx.get(f"{base}/admin/login/", headers={"Host": "hub.example.com.br"})
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == "https://hub.example.com.br/admin/login/"
    login = httpx.get(f"{base}/admin/login/", headers=HTTPS)
    assert login.status_code == 200
    assert login.headers["X-Frame-Options"] == "DENY"
    assert login.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.text)
    assert css is not None, login.text[:2000]
    static = httpx.get(f"{base}{css.group(1)}", headers={**HTTPS, "Accept-Encoding": "gzip"})
    assert static.status_code == 200
    assert static.headers["Content-Type"].startswith("text/css")
    assert static.headers["Cache-Control"] == "max-age=315360000, public, immutable"
    assert static.headers["Content-Encoding"] == "gzip"
    assert "body" in static.text

    answer = httpx.post(
        f"{base}{KOMMO_WEBHOOK_PATH}",
        content=shared_fixture("kommo/lead_add.form"),
        headers={**HTTPS, "Content-Type": FORM_CONTENT_TYPE},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 1, "duplicates": 0}
    event = InboundEvent.objects.get()
    wait_until(
        lambda: InboundEvent.objects.filter(pk=event.pk, status=EventStatus.PROCESSED).exists(),
        timeout=30,
        what="the webhook's event to be processed",
        hub=hub,
    )
    # Let both schedulers race through a few more ticks before looking at what ran.
    first_tick = SchedulerRun.objects.order_by("tick").values_list("tick", flat=True).first()
    assert first_tick is not None
    wait_until(
        lambda: SchedulerRun.objects.filter(job="sweep_events", tick__gt=first_tick).exists(),
        timeout=20,
        what="a second sweep tick",
        hub=hub,
    )
    assert all(p.alive() for p in [web, worker, *schedulers]), hub.logs()
    hub.close()

    event.refresh_from_db()
    assert event.attempts == 1
    assert Lead.objects.get().kommo_lead_id == 18754321
    assert [t.return_value for t in DBTaskResult.objects.all()] == ["processed"]
    per_tick = SchedulerRun.objects.values("job", "tick").annotate(n=Count("id"))
    assert [row for row in per_tick if row["n"] != 1] == []
    # The access log has the request, with the webhook secret masked; no log has the secret.
    logs = "\n".join(p.log_path.read_text(errors="replace") for p in hub.processes)
    assert '"POST /webhooks/kommo/***/ HTTP/1.1" 200' in logs
    assert SECRETS["KOMMO_WEBHOOK_SECRET"] not in logs
    assert env["DJANGO_SECRET_KEY"] not in logs
