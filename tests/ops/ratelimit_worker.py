"""Run by test_ratelimit.py in its own OS process: take grants from one limiter key.

Usage: python -m tests.ops.ratelimit_worker <database|redis> <key> <limit> <count>
Prints "ready" once Django is set up, starts on a line from stdin, then prints a JSON list of
[before, after] wall-clock pairs bracketing each successful grant.
"""

import json
import sys
import time


def main() -> None:
    kind, key, limit, count = sys.argv[1:5]
    import django

    django.setup()
    from django.conf import settings

    from kommo_hub.clients.ratelimit import DatabaseLimiter, RedisLimiter, acquire

    inner = (
        DatabaseLimiter(key, int(limit), 1.0)
        if kind == "database"
        else RedisLimiter(key, int(limit), 1.0, settings.REDIS_URL)
    )
    spans: list[tuple[float, float]] = []

    class Recording:
        def try_acquire(self) -> float:
            before = time.time()
            wait = inner.try_acquire()
            if wait == 0:
                spans.append((before, time.time()))
            return wait

        def release(self) -> None:
            inner.release()

    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(count)):
        acquire(Recording(), timeout=60)
    print(json.dumps(spans))


if __name__ == "__main__":
    main()
