"""Kommo Hub settings: everything comes from the environment (see .env.example).

With nothing set the hub runs embedded: SQLite, the database task queue, a file cache in VAR_DIR.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


class HubEnv(environ.Env):
    def secret(self, name: str, default: str = "") -> str:
        """`name`, or the content of the file named by `<name>_FILE` (systemd credentials, Docker
        or Kubernetes secrets), with the trailing newline stripped. Both set is an error."""
        path = os.environ.get(f"{name}_FILE", "")
        if not path:
            return str(self.str(name, default=default))
        if os.environ.get(name, ""):
            raise environ.ImproperlyConfigured(
                f"Both {name} and {name}_FILE are set: keep only one of them."
            )
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise environ.ImproperlyConfigured(
                f"{name}_FILE={path}: the file cannot be read ({exc.strerror})."
            ) from exc


env = HubEnv()
if not env.bool("KOMMO_HUB_IGNORE_DOTENV", default=False):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("KOMMO_HUB_VAR_DIR", default=str(BASE_DIR / "var")))

# "production" turns on the secure defaults below and refuses to start without a real secret key.
DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production"}:
    raise environ.ImproperlyConfigured(
        f"DJANGO_ENV must be 'development' or 'production', not {DJANGO_ENV!r}"
    )
PRODUCTION = DJANGO_ENV == "production"

INSECURE_DEV_SECRET_KEY = "insecure-dev-key-set-DJANGO_SECRET_KEY-in-production"  # noqa: S105
SECRET_KEY = env.secret("DJANGO_SECRET_KEY", default=INSECURE_DEV_SECRET_KEY)
if PRODUCTION and (SECRET_KEY in {"", INSECURE_DEV_SECRET_KEY} or len(SECRET_KEY) < 50):
    raise environ.ImproperlyConfigured(
        "DJANGO_ENV=production needs DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE): at least 50 "
        "random characters, e.g. from "
        '`python -c "import secrets; print(secrets.token_urlsafe(50))"`.'
    )
DEBUG = env.bool("DJANGO_DEBUG", default=False)
if PRODUCTION and DEBUG:
    raise environ.ImproperlyConfigured("DJANGO_DEBUG must be off when DJANGO_ENV=production.")
HUB_PUBLIC_URL = env.str("HUB_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
_public = urlsplit(HUB_PUBLIC_URL)
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=list(
        dict.fromkeys([_public.hostname or "localhost", "localhost", "127.0.0.1", "[::1]"])
    ),
)
# Admin form posts from the public URL are trusted (behind a TLS proxy the origin is https://).
CSRF_TRUSTED_ORIGINS = [
    *env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[]),
    f"{_public.scheme}://{_public.netloc}",
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks_db",
    "kommo_hub",
    "routing",
    "botcontrol",
    "scheduling",
    "privacy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = env.str("DJANGO_ROOT_URLCONF", default="kommo_hub.urls")
WSGI_APPLICATION = "kommo_hub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
_SQLITE_PATH = VAR_DIR / "kommo_hub.sqlite3"
DATABASES = {
    "default": env.db_url_config(env.secret("DATABASE_URL", default=f"sqlite:///{_SQLITE_PATH}"))
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Several processes (web, worker, scheduler) write to one file: WAL, IMMEDIATE, a busy timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_kommo_hub.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (and the shared Kommo rate limiter when Redis is configured) --------------------
REDIS_URL = env.secret("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="kommo_hub"),
        }
    }
else:
    # Embedded: a cache on disk in VAR_DIR, shared by run_hub's web, worker and scheduler
    # processes on this machine (a local-memory cache is per process: one process would keep
    # serving a bot state another one changed). Several machines need REDIS_URL.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 20_000},
        }
    }

# --- Background tasks (django.tasks) --------------------------------------------------------
TASKS_BACKEND = env.str("TASKS_BACKEND", default="database")
_TASK_BACKENDS = {
    "database": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]},
    "immediate": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
    "dummy": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"},
}
if TASKS_BACKEND not in _TASK_BACKENDS:
    raise environ.ImproperlyConfigured(
        f"TASKS_BACKEND must be one of {sorted(_TASK_BACKENDS)}, not {TASKS_BACKEND!r}"
    )
TASKS = {"default": _TASK_BACKENDS[TASKS_BACKEND]}

# --- Intake and outbox ----------------------------------------------------------------------
KOMMO_WEBHOOK_SECRET = env.secret("KOMMO_WEBHOOK_SECRET")
RDSTATION_WEBHOOK_SECRET = env.secret("RDSTATION_WEBHOOK_SECRET")
FORMS_WEBHOOK_SECRET = env.secret("FORMS_WEBHOOK_SECRET")
FORMS_SIGNING_SECRET = env.secret("FORMS_SIGNING_SECRET")
N8N_CALLBACK_SECRET = env.secret("N8N_CALLBACK_SECRET")
SUPABASE_WEBHOOK_SECRET = env.secret("SUPABASE_WEBHOOK_SECRET")

WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=5 * 1024 * 1024)
WEBHOOK_MAX_FIELDS = env.int("WEBHOOK_MAX_FIELDS", default=50_000)
# Receivers read request.body themselves; Django must not refuse a body below our own limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES
FORMS_DEDUPE_WINDOW_SECONDS = env.int("FORMS_DEDUPE_WINDOW_SECONDS", default=600)
LEAD_MERGE_WINDOW_MINUTES = env.int("LEAD_MERGE_WINDOW_MINUTES", default=30)
# LGPD: leads without activity for this many days are anonymized daily (0: never).
LGPD_RETENTION_DAYS = env.int("LGPD_RETENTION_DAYS", default=730)

# --- Conversations and bot control --------------------------------------------------------
# Customer messages within this many seconds of each other get one AI reply.
REPLY_COALESCE_SECONDS = env.float("REPLY_COALESCE_SECONDS", default=4.0)
# Commands, matched ignoring case and accents, anywhere in a salesperson's message or a note.
BOT_PAUSE_COMMANDS = env.list("BOT_PAUSE_COMMANDS", default=["#pausar", "#pause", "#humano"])
BOT_RESUME_COMMANDS = env.list("BOT_RESUME_COMMANDS", default=["#voltar", "#bot", "#resume"])
# An outgoing message within this many seconds of an n8n send whose callback has not arrived yet
# may be the bot's own: its processing waits for the callback (up to this long) before deciding.
BOT_ECHO_WINDOW_SECONDS = env.int("BOT_ECHO_WINDOW_SECONDS", default=120)
DEFAULT_PHONE_REGION = env.str("DEFAULT_PHONE_REGION", default="BR")

EVENT_MAX_ATTEMPTS = env.int("EVENT_MAX_ATTEMPTS", default=8)
ACTION_MAX_ATTEMPTS = env.int("ACTION_MAX_ATTEMPTS", default=10)
RETRY_BASE_SECONDS = env.float("RETRY_BASE_SECONDS", default=10.0)
RETRY_MAX_SECONDS = env.float("RETRY_MAX_SECONDS", default=3600.0)
# A claimed event or action whose worker vanished is taken again after this lease.
CLAIM_LEASE_SECONDS = env.float("CLAIM_LEASE_SECONDS", default=120.0)
SCHEDULER_TICK_SECONDS = env.float("SCHEDULER_TICK_SECONDS", default=5.0)
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=10.0)

# --- n8n --------------------------------------------------------------------------------------
N8N_WEBHOOK_URL = env.str("N8N_WEBHOOK_URL", default="")
N8N_WEBHOOK_SECRET = env.secret("N8N_WEBHOOK_SECRET")
N8N_TIMEOUT_SECONDS = env.float("N8N_TIMEOUT_SECONDS", default=15.0)
# n8n's duplicate guard: an execution that claimed an action and has not reported back after this
# many seconds is presumed dead, and a redelivery may claim the action again.
N8N_CLAIM_TTL_SECONDS = env.int("N8N_CLAIM_TTL_SECONDS", default=900)

# --- Kommo ----------------------------------------------------------------------------------
KOMMO_SUBDOMAIN = env.str("KOMMO_SUBDOMAIN", default="")
KOMMO_BASE_URL = env.str("KOMMO_BASE_URL", default="")
KOMMO_ACCOUNT_ID = env.str("KOMMO_ACCOUNT_ID", default="")
KOMMO_ACCESS_TOKEN = env.secret("KOMMO_ACCESS_TOKEN")
KOMMO_TIMEOUT_SECONDS = env.float("KOMMO_TIMEOUT_SECONDS", default=10.0)
KOMMO_MAX_REQUESTS_PER_SECOND = env.int("KOMMO_MAX_REQUESTS_PER_SECOND", default=7)

# --- Supabase (used by the scheduling issue) -------------------------------------------------
SUPABASE_URL = env.str("SUPABASE_URL", default="")
SUPABASE_SERVICE_ROLE_KEY = env.secret("SUPABASE_SERVICE_ROLE_KEY")
SUPABASE_TIMEOUT_SECONDS = env.float("SUPABASE_TIMEOUT_SECONDS", default=10.0)
# Reminders (n8n `reminder` actions) this many minutes before each appointment.
REMINDER_OFFSETS_MINUTES = env.list("REMINDER_OFFSETS_MINUTES", cast=int, default=[1440, 60])

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# --- Language and time ------------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="pt-br")
LANGUAGES = [("pt-br", _("Portuguese (Brazil)")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="America/Sao_Paulo")
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Embedded: served straight from the apps' static folders, no collectstatic. Production: the
# release step collects hashed, compressed copies that whitenoise serves with far-future caching.
WHITENOISE_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # /api/v1/ answers errors as {"detail", "code"}; the other views keep DRF's bodies.
    "EXCEPTION_HANDLER": "kommo_hub.api.v1.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Kommo Hub API",
    "DESCRIPTION": "Scheduling for n8n. Header: `Authorization: Api-Key <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs' assets are served by the hub itself (drf-spectacular-sidecar), no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security (DJANGO_ENV=production turns the defaults on) ---------------------------------------
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int(
    "DJANGO_SESSION_COOKIE_AGE", default=8 * 3600 if PRODUCTION else 14 * 24 * 3600
)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False)
    else None
)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=PRODUCTION)
# Load balancers and monitors probe over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading is hard to undo (months in the browsers' lists): an explicit choice, off by default.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
DEFAULT_EXCEPTION_REPORTER_FILTER = "kommo_hub.error_reports.HubExceptionReporterFilter"
# Admin login: this many failures per username or per client address within the window lock
# both out for the rest of the window (counted in the shared cache, so across processes).
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)

# --- Logging: one JSON line per record, phones and e-mails masked ------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_pii": {"()": "kommo_hub.logging.MaskPiiFilter"}},
    "formatters": {"json": {"()": "kommo_hub.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["mask_pii"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
