"""DJANGO_ENV=production: secure defaults, a real secret key required, secrets from *_FILE."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
SECRET_KEY = "k" * 10 + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_"
# Every secret the settings read; each may come from <NAME>_FILE instead.
SECRET_SETTINGS = [
    "DJANGO_SECRET_KEY",
    "KOMMO_WEBHOOK_SECRET",
    "RDSTATION_WEBHOOK_SECRET",
    "FORMS_WEBHOOK_SECRET",
    "FORMS_SIGNING_SECRET",
    "N8N_CALLBACK_SECRET",
    "SUPABASE_WEBHOOK_SECRET",
    "N8N_WEBHOOK_SECRET",
    "KOMMO_ACCESS_TOKEN",
    "SUPABASE_SERVICE_ROLE_KEY",
    "DATABASE_URL",
    "REDIS_URL",
]
_DUMP = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in NAMES}, default=str))
"""


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SECURE_", "HUB_"))
        and not any(key.startswith(name) for name in SECRET_SETTINGS)
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "kommo_hub.settings",
            "KOMMO_HUB_IGNORE_DOTENV": "1",
            "KOMMO_HUB_VAR_DIR": str(tmp_path / "var"),
        }
    )
    env.update(values)
    return env


def _production(tmp_path: Path, **values: str) -> dict[str, str]:
    production = {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "HUB_PUBLIC_URL": "https://hub.example.com.br",
    }
    return _env(tmp_path, **{**production, **values})


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _settings(env: dict[str, str], *names: str) -> dict[str, object]:
    result = _run(env, "-c", f"NAMES = {list(names)!r}\n{_DUMP}")
    assert result.returncode == 0, result.stderr
    values: dict[str, object] = json.loads(result.stdout)
    return values


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_check_deploy_finds_no_issue_with_the_production_settings(tmp_path: Path) -> None:
    result = _run(
        _production(tmp_path), "manage.py", "check", "--deploy", "--fail-level", "WARNING"
    )

    assert (result.returncode, result.stderr) == (0, "")
    # Only HSTS preloading is silenced: an explicit choice (DJANGO_HSTS_PRELOAD), off by default.
    assert result.stdout == "System check identified no issues (1 silenced).\n"


def test_check_deploy_complains_about_the_development_settings(tmp_path: Path) -> None:
    result = _run(_env(tmp_path), "manage.py", "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 1
    # No HSTS, no HTTPS redirect, session and CSRF cookies over plain HTTP.
    assert re.findall(r"\(security\.W\d+\)", result.stderr) == [
        "(security.W004)",
        "(security.W008)",
        "(security.W012)",
        "(security.W016)",
    ]


@pytest.mark.parametrize(
    "secret_key",
    ["", "insecure-dev-key-set-DJANGO_SECRET_KEY-in-production", "short-but-set"],
)
def test_production_refuses_to_start_without_a_real_secret_key(
    tmp_path: Path, secret_key: str
) -> None:
    result = _run(_production(tmp_path, DJANGO_SECRET_KEY=secret_key), "manage.py", "check")

    assert result.returncode == 1
    assert _last_line(result) == (
        "django.core.exceptions.ImproperlyConfigured: DJANGO_ENV=production needs "
        "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE): at least 50 random characters, e.g. "
        'from `python -c "import secrets; print(secrets.token_urlsafe(50))"`.'
    )


def test_production_refuses_to_start_with_no_secret_key_variable_at_all(tmp_path: Path) -> None:
    env = _production(tmp_path)
    del env["DJANGO_SECRET_KEY"]

    result = _run(env, "manage.py", "check")

    assert result.returncode == 1
    assert "needs DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE)" in _last_line(result)


def test_production_refuses_debug(tmp_path: Path) -> None:
    result = _run(_production(tmp_path, DJANGO_DEBUG="True"), "manage.py", "check")

    assert result.returncode == 1
    assert _last_line(result) == (
        "django.core.exceptions.ImproperlyConfigured: "
        "DJANGO_DEBUG must be off when DJANGO_ENV=production."
    )


def test_an_unknown_django_env_is_refused(tmp_path: Path) -> None:
    result = _run(_env(tmp_path, DJANGO_ENV="prod"), "manage.py", "check")

    assert result.returncode == 1
    assert _last_line(result) == (
        "django.core.exceptions.ImproperlyConfigured: "
        "DJANGO_ENV must be 'development' or 'production', not 'prod'"
    )


def test_production_turns_on_the_secure_defaults(tmp_path: Path) -> None:
    values = _settings(
        _production(tmp_path),
        "DEBUG",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "SECURE_SSL_REDIRECT",
        "SECURE_REDIRECT_EXEMPT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "SESSION_COOKIE_AGE",
        "CSRF_COOKIE_SECURE",
        "SECURE_PROXY_SSL_HEADER",
        "X_FRAME_OPTIONS",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "SECURE_REFERRER_POLICY",
        "WHITENOISE_USE_FINDERS",
        "STORAGES",
    )

    assert values == {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["hub.example.com.br", "localhost", "127.0.0.1", "[::1]"],
        "CSRF_TRUSTED_ORIGINS": ["https://hub.example.com.br"],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_REDIRECT_EXEMPT": ["^healthz$", "^readyz$"],
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_AGE": 8 * 3600,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": None,
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
        "WHITENOISE_USE_FINDERS": False,
        "STORAGES": {
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
        },
    }


def test_behind_a_tls_proxy_the_forwarded_scheme_is_trusted(tmp_path: Path) -> None:
    values = _settings(
        _production(tmp_path, DJANGO_BEHIND_TLS_PROXY="True"), "SECURE_PROXY_SSL_HEADER"
    )

    assert values == {"SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]}


def test_development_keeps_plain_http_cookies_and_no_redirect(tmp_path: Path) -> None:
    values = _settings(
        _env(tmp_path),
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_AGE",
        "WHITENOISE_USE_FINDERS",
    )

    assert values == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SESSION_COOKIE_SECURE": False,
        "SESSION_COOKIE_AGE": 14 * 24 * 3600,
        "WHITENOISE_USE_FINDERS": True,
    }


def test_every_secret_can_come_from_a_file_with_its_trailing_newline_stripped(
    tmp_path: Path,
) -> None:
    files = {}
    expected: dict[str, object] = {}
    for name in SECRET_SETTINGS:
        value = f"{name.lower()}-from-file-" + "x" * 40
        if name == "DATABASE_URL":
            value = f"sqlite:///{tmp_path / 'from-file.sqlite3'}"
        if name == "REDIS_URL":
            value = "redis://:p%40ss@redis.internal:6379/3"
        path = tmp_path / f"{name.lower()}.txt"
        path.write_text(value + "\n")
        files[f"{name}_FILE"] = str(path)
        expected[name] = value
    settings_names = [n for n in SECRET_SETTINGS if n not in {"DJANGO_SECRET_KEY", "DATABASE_URL"}]

    values = _settings(
        _production(tmp_path, DJANGO_SECRET_KEY="", **files),
        "SECRET_KEY",
        "DATABASES",
        *settings_names,
    )

    assert values.pop("SECRET_KEY") == expected.pop("DJANGO_SECRET_KEY")
    databases = values.pop("DATABASES")
    assert databases["default"]["NAME"] == str(tmp_path / "from-file.sqlite3")  # type: ignore[index]
    expected.pop("DATABASE_URL")
    assert values == expected


def test_a_secret_set_both_directly_and_as_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("from-file")

    result = _run(
        _env(tmp_path, KOMMO_WEBHOOK_SECRET="direct", KOMMO_WEBHOOK_SECRET_FILE=str(path)),
        "manage.py",
        "check",
    )

    assert result.returncode == 1
    assert _last_line(result) == (
        "django.core.exceptions.ImproperlyConfigured: Both KOMMO_WEBHOOK_SECRET and "
        "KOMMO_WEBHOOK_SECRET_FILE are set: keep only one of them."
    )


def test_a_secret_file_that_cannot_be_read_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "n8n"

    result = _run(_env(tmp_path, N8N_WEBHOOK_SECRET_FILE=str(missing)), "manage.py", "check")

    assert result.returncode == 1
    assert _last_line(result) == (
        "django.core.exceptions.ImproperlyConfigured: "
        f"N8N_WEBHOOK_SECRET_FILE={missing}: the file cannot be read (No such file or directory)."
    )


def test_an_empty_variable_next_to_its_file_counts_as_unset(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("from-file\r\n")

    values = _settings(
        _env(tmp_path, FORMS_WEBHOOK_SECRET="", FORMS_WEBHOOK_SECRET_FILE=str(path)),
        "FORMS_WEBHOOK_SECRET",
    )

    assert values == {"FORMS_WEBHOOK_SECRET": "from-file"}
