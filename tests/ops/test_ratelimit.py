"""The shared sliding-window limiter: never more than `limit` grants in any window."""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from django.db import connection

from kommo_hub.clients.ratelimit import (
    DatabaseLimiter,
    Limiter,
    RateLimited,
    RedisLimiter,
    acquire,
    limiter_for,
)
from kommo_hub.models import RateLimitWindow

pytestmark = pytest.mark.django_db

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
ROOT = Path(__file__).resolve().parents[2]

MakeLimiter = Callable[[str, int, float], Limiter]


def redis_reachable() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["database", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> MakeLimiter:
    if request.param == "database":
        return DatabaseLimiter
    if not redis_reachable():
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    return lambda key, limit, window: RedisLimiter(key, limit, window, REDIS_URL)


def unique_key() -> str:
    return f"test-{uuid.uuid4().hex}"


def crowded_window(spans: list[tuple[float, float]], limit: int, window: float) -> list[int]:
    """Indexes of grants that certainly began a window holding more than `limit` grants.

    Each grant happened somewhere in its [before, after] span; a window is only reported when
    limit + 1 grants fit in less than `window` seconds however they fall inside their spans.
    """
    crowded = []
    for i, (start, _) in enumerate(spans):
        later_ends = sorted(after for before, after in spans if before >= start)
        if len(later_ends) > limit and later_ends[limit] - start < window:
            crowded.append(i)
    return crowded


def test_a_limiter_grants_exactly_its_limit_then_says_how_long_to_wait(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(unique_key(), 3, 0.5)

    granted = [limiter.try_acquire() for _ in range(3)]
    wait = limiter.try_acquire()

    assert granted == [0.0, 0.0, 0.0]
    assert 0 < wait <= 0.5


def test_a_grant_is_available_again_once_the_oldest_grant_leaves_the_window(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(unique_key(), 2, 0.4)
    assert limiter.try_acquire() == 0.0
    time.sleep(0.2)
    assert limiter.try_acquire() == 0.0

    wait = limiter.try_acquire()
    assert 0 < wait <= 0.2
    time.sleep(wait)

    assert limiter.try_acquire() == 0.0  # the first grant has left the window
    assert limiter.try_acquire() > 0  # the second has not


def test_acquire_waits_until_the_window_has_slid_past_the_oldest_grant(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(unique_key(), 2, 0.4)
    started = time.time()
    acquire(limiter, timeout=1)
    acquire(limiter, timeout=1)

    acquire(limiter, timeout=2)

    assert time.time() - started >= 0.4


def test_acquire_raises_rate_limited_when_no_grant_comes_within_the_timeout(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(unique_key(), 1, 5.0)
    acquire(limiter, timeout=1)

    started = time.monotonic()
    with pytest.raises(RateLimited, match=r"no grant within 0\.2s"):
        acquire(limiter, timeout=0.2)

    assert time.monotonic() - started < 0.2  # it does not sleep when the wait cannot fit


def test_limiters_with_different_keys_do_not_share_grants(make_limiter: MakeLimiter) -> None:
    first, second = make_limiter(unique_key(), 1, 5.0), make_limiter(unique_key(), 1, 5.0)

    assert first.try_acquire() == 0.0
    assert second.try_acquire() == 0.0
    assert first.try_acquire() > 0


@pytest.mark.django_db(transaction=True)
def test_threads_sharing_a_key_never_get_more_than_the_limit_in_any_window(
    make_limiter: MakeLimiter,
) -> None:
    key, limit, window = unique_key(), 4, 0.3
    spans: list[tuple[float, float]] = []
    start = threading.Barrier(4)

    def worker() -> None:
        limiter = make_limiter(key, limit, window)
        try:
            start.wait()
            for _ in range(4):
                while True:
                    before = time.time()
                    wait = limiter.try_acquire()
                    if wait == 0:
                        spans.append((before, time.time()))
                        break
                    time.sleep(wait)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    spans.sort()
    assert len(spans) == 16
    assert crowded_window(spans, limit, window) == []
    # 16 grants at 4 per 0.3 s: the 13th cannot come before three full windows have passed.
    assert spans[12][1] - spans[0][0] >= 3 * window


def test_the_database_limiter_keeps_only_the_grants_inside_the_window() -> None:
    key = unique_key()
    limiter = DatabaseLimiter(key, 3, 0.2)
    for _ in range(3):
        assert limiter.try_acquire() == 0.0
    time.sleep(0.25)

    assert limiter.try_acquire() == 0.0
    assert len(RateLimitWindow.objects.get(key=key).grants) == 1


def test_limiter_for_uses_redis_when_redis_is_configured_and_the_database_otherwise(
    settings: Any,
) -> None:
    settings.REDIS_URL = ""
    assert type(limiter_for("kommo", limit=7)) is DatabaseLimiter

    settings.REDIS_URL = REDIS_URL
    limiter = limiter_for("kommo", limit=7)
    assert type(limiter) is RedisLimiter
    assert (limiter.key, limiter.limit, limiter.window) == ("kommo_hub:ratelimit:kommo", 7, 1.0)


def database_url_of_the_test_database() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_four_processes_sharing_one_key_never_get_more_than_7_grants_in_any_second() -> None:
    """Both limiters at once (4 OS processes each, one key each): the run takes ~12 s, not 24."""
    if not redis_reachable():
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    limit, per_process = 7, 20
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kommo_hub.settings",
        "KOMMO_HUB_IGNORE_DOTENV": "1",
        "DATABASE_URL": database_url_of_the_test_database(),
        "REDIS_URL": REDIS_URL,
        "PYTHONPATH": str(ROOT),
    }
    kinds = {"database": unique_key(), "redis": unique_key()}
    processes = [
        (
            kind,
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.ops.ratelimit_worker",
                    kind,
                    key,
                    str(limit),
                    str(per_process),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for kind, key in kinds.items()
        for _ in range(4)
    ]
    for _, process in processes:  # all set up before any takes a grant
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    for _, process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    spans: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    for kind, process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        spans[kind].extend(tuple(span) for span in json.loads(out.strip().splitlines()[-1]))

    for kind in kinds:
        grants = sorted(spans[kind])
        assert len(grants) == 80, kind
        assert crowded_window(grants, limit, 1.0) == [], kind
        # Grant n and grant n+7 are at least a second apart, so 80 grants take over 11 s.
        assert grants[77][1] - grants[0][0] >= 11.0, kind


def test_a_released_grant_counts_from_when_its_call_ended(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(unique_key(), 1, 0.3)
    assert limiter.try_acquire() == 0.0
    time.sleep(0.2)  # the call takes a while (or left late)
    limiter.release()
    time.sleep(0.15)  # 0.35 s after the grant, 0.15 s after the call ended

    wait = limiter.try_acquire()

    assert 0 < wait <= 0.15


def test_an_unreleased_grant_counts_from_when_it_was_taken(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(unique_key(), 1, 0.3)
    assert limiter.try_acquire() == 0.0
    time.sleep(0.35)

    assert limiter.try_acquire() == 0.0


def test_releasing_without_a_grant_changes_nothing(make_limiter: MakeLimiter) -> None:
    key = unique_key()
    limiter = make_limiter(key, 1, 0.3)
    limiter.release()
    assert limiter.try_acquire() == 0.0
    limiter.release()
    limiter.release()  # a second release has no grant left to move

    assert limiter.try_acquire() > 0
