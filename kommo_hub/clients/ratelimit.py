"""A sliding-window limiter shared by every process: Redis when configured, else the database.

"At most N grants in any window of W seconds", not a fixed per-second bucket, so bursts at a
second's edge cannot double the rate.

A grant counts from when it was taken and, once the caller `release()`s it, from when the call
ended: a request that left late (a busy process between the grant and the send) still holds its
place in the window for a whole window after it reached the server. So the server never sees
more than N requests in any window, not only the limiter.
"""

import os
import secrets
import time
from typing import Protocol

import redis
from django.conf import settings
from django.db import transaction

from kommo_hub.models import RateLimitWindow

_REDIS_ACQUIRE = """
local key, limit, window, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
  return '0'
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""
_REDIS_RELEASE = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[1])
return 1
"""


class RateLimited(Exception):
    pass


class Limiter(Protocol):
    def try_acquire(self) -> float:
        """Take a grant and return 0, or return the seconds to wait before trying again."""

    def release(self) -> None:
        """The call made with the last grant has ended: it counts from now."""


class DatabaseLimiter:
    def __init__(self, key: str, limit: int, window: float) -> None:
        self.key, self.limit, self.window = key, limit, window
        self.granted: float | None = None

    def try_acquire(self) -> float:
        RateLimitWindow.objects.get_or_create(key=self.key)
        with transaction.atomic():
            row = RateLimitWindow.objects.select_for_update().get(key=self.key)
            now = time.time()
            grants = sorted(g for g in row.grants if g > now - self.window)
            if len(grants) < self.limit:
                row.grants = [*grants, now]
                row.save(update_fields=["grants"])
                self.granted = now
                return 0.0
            return max(0.001, grants[0] + self.window - now)

    def release(self) -> None:
        granted, self.granted = self.granted, None
        if granted is None:
            return
        with transaction.atomic():
            row = RateLimitWindow.objects.select_for_update().filter(key=self.key).first()
            if row is not None and granted in row.grants:
                row.grants = [time.time() if g == granted else g for g in row.grants]
                row.save(update_fields=["grants"])


class RedisLimiter:
    def __init__(self, key: str, limit: int, window: float, url: str) -> None:
        self.key, self.limit, self.window = f"kommo_hub:ratelimit:{key}", limit, window
        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(_REDIS_ACQUIRE)
        self.release_script = self.client.register_script(_REDIS_RELEASE)
        self.counter = 0
        self._nonce = secrets.token_hex(4)  # grants from two machines never share a member
        self.granted: str | None = None

    def try_acquire(self) -> float:
        self.counter += 1
        member = f"{time.time_ns()}:{os.getpid()}:{self._nonce}:{self.counter}"
        wait = max(0.0, float(self.script(keys=[self.key], args=[self.limit, self.window, member])))
        if wait == 0:
            self.granted = member
        return wait

    def release(self) -> None:
        member, self.granted = self.granted, None
        if member is not None:
            self.release_script(keys=[self.key], args=[member])


def limiter_for(key: str, *, limit: int, window: float = 1.0) -> Limiter:
    if settings.REDIS_URL:
        return RedisLimiter(key, limit, window, settings.REDIS_URL)
    return DatabaseLimiter(key, limit, window)


def acquire(limiter: Limiter, *, timeout: float) -> None:
    """Block until a grant is taken; raise RateLimited after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        wait = limiter.try_acquire()
        if wait == 0:
            return
        if time.monotonic() + wait > deadline:
            raise RateLimited(f"no grant within {timeout:.1f}s")
        time.sleep(wait)
