"""gunicorn settings for `scripts/start web`; every value can be changed from the environment.

PORT (8000) and HUB_HOST (0.0.0.0) where to listen; WEB_CONCURRENCY worker processes (2 per CPU,
at most 8); THREADS per worker (4); WEB_TIMEOUT seconds before a stuck worker is restarted (30).
"""

import os

_cpus = os.cpu_count() or 1

# Platforms (Procfile) route to 0.0.0.0:$PORT; behind a local proxy set HUB_HOST=127.0.0.1.
bind = f"{os.environ.get('HUB_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104
workers = int(os.environ.get("WEB_CONCURRENCY", str(min(2 * _cpus, 8))))
threads = int(os.environ.get("THREADS", "4"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "10"))
keepalive = 5
# Recycle workers now and then (jittered so they do not all restart together).
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
# Heartbeat files in memory, not on a disk a hardened unit may mount read-only.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# The control socket (~/.gunicorn by default) is shared by every gunicorn of the user and needs a
# writable home: the hub does not use it.
control_socket_disable = True
# A TLS proxy on this machine may set X-Forwarded-*; another address only with FORWARDED_ALLOW_IPS.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

accesslog = "-"  # stdout; errors and the hub's JSON lines go to stderr
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logger_class = "kommo_hub.ops.access_log.MaskedAccessLogger"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
