"""The process definitions a user installs as they are: systemd units, Procfile, gunicorn config."""

import configparser
import logging
import runpy
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from kommo_hub.ops.access_log import MaskedAccessLogger

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
INSTALL_DIR = "/opt/kommo-hub"
START_SUBCOMMANDS = {"web", "worker", "scheduler", "release"}
PROCESS_OF = {
    "kommo-hub-web.service": "web",
    "kommo-hub-worker@.service": "worker",
    "kommo-hub-scheduler.service": "scheduler",
}
SERVICES = list(PROCESS_OF)


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def _start_command(command: str) -> list[str]:
    """`/opt/kommo-hub/scripts/start web` → the subcommand, checked against the real script."""
    program, *args = command.split()
    assert program == f"{INSTALL_DIR}/scripts/start", command
    assert args, command
    assert args[0] in START_SUBCOMMANDS, command
    return args


def test_the_deploy_folder_has_the_documented_units() -> None:
    assert sorted(p.name for p in UNITS.iterdir()) == sorted([*SERVICES, "kommo-hub.target"])


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_scripts_start_as_a_hardened_dedicated_user(name: str) -> None:
    service = _unit(name)["Service"]

    assert _start_command(service["ExecStart"]) == [PROCESS_OF[name]]
    assert service["User"] == "kommo-hub"
    assert service["EnvironmentFile"] == "/etc/kommo-hub/env"
    assert service["WorkingDirectory"] == INSTALL_DIR
    assert service["Restart"] == "always"
    assert service["NoNewPrivileges"] == "true"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/kommo-hub"
    assert service["PrivateTmp"] == "true"
    assert _unit(name)["Unit"]["PartOf"] == "kommo-hub.target"
    assert _unit(name)["Install"]["WantedBy"] == "kommo-hub.target"


def test_only_the_web_unit_runs_the_release_step_first() -> None:
    assert _start_command(_unit("kommo-hub-web.service")["Service"]["ExecStartPre"]) == ["release"]
    for name in ("kommo-hub-worker@.service", "kommo-hub-scheduler.service"):
        assert "ExecStartPre" not in _unit(name)["Service"]


def test_the_target_starts_web_and_scheduler_and_is_wanted_at_boot() -> None:
    target = _unit("kommo-hub.target")

    assert target["Unit"]["Wants"].split() == [
        "kommo-hub-web.service",
        "kommo-hub-scheduler.service",
    ]
    assert target["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_units_without_a_warning(tmp_path: Path) -> None:
    # Installed copies, pointing at this checkout instead of /opt/kommo-hub.
    for unit in UNITS.iterdir():
        text = unit.read_text().replace(INSTALL_DIR, str(ROOT))
        (tmp_path / unit.name).write_text(text)
    # A template is verified through one of its instances.
    shutil.copy(tmp_path / "kommo-hub-worker@.service", tmp_path / "kommo-hub-worker@1.service")
    names = ["kommo-hub-web.service", "kommo-hub-worker@1.service"]
    names += ["kommo-hub-scheduler.service", "kommo-hub.target"]

    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *[f"./{n}" for n in names]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_procfile_runs_scripts_start_for_each_process() -> None:
    lines = [
        line.split(":", 1)
        for line in (DEPLOY / "Procfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    processes = {name.strip(): command.split() for name, command in lines}

    assert processes == {
        "release": ["scripts/start", "release"],
        "web": ["scripts/start", "web"],
        "worker": ["scripts/start", "worker"],
        "scheduler": ["scripts/start", "scheduler"],
    }
    assert (ROOT / "scripts" / "start").stat().st_mode & 0o111


def test_scripts_start_refuses_an_unknown_process_with_its_usage() -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "start"), "webserver"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 64
    assert result.stderr == (
        "usage: scripts/start install|release|web|worker|scheduler [arguments]\n"
    )


def _gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> Config:
    for name in ("PORT", "HUB_HOST", "WEB_CONCURRENCY", "THREADS", "WEB_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Config()
    for name, value in runpy.run_path(str(DEPLOY / "gunicorn.conf.py")).items():
        if name in config.settings:
            config.set(name, value)
    return config


def test_the_gunicorn_config_takes_port_concurrency_and_threads_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _gunicorn_config(
        monkeypatch, PORT="9123", HUB_HOST="127.0.0.1", WEB_CONCURRENCY="3", THREADS="6"
    )

    assert config.bind == ["127.0.0.1:9123"]
    assert (config.workers, config.threads, config.timeout) == (3, 6, 30)
    assert config.logger_class is MaskedAccessLogger
    assert config.control_socket_disable is True


def test_the_gunicorn_config_listens_on_port_8000_of_every_interface_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _gunicorn_config(monkeypatch)

    assert config.bind == ["0.0.0.0:8000"]
    assert 1 <= config.workers <= 8
    assert config.threads == 4


def test_the_access_log_masks_webhook_secrets_and_drops_query_strings_and_credentials(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = _gunicorn_config(monkeypatch)
    config.set("accesslog", None)
    config.set(
        "access_log_format",
        "%(r)s | %(U)s | %(q)s | %(f)s | %({authorization}i)s | %({x-api-key}i)s | %(a)s",
    )
    access_logger = MaskedAccessLogger(config)
    access_logger.access_log.propagate = True
    access_logger._access_log_enabled = True
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/webhooks/forms/the-forms-secret/?token=query-token",
        "PATH_INFO": "/webhooks/forms/the-forms-secret/",
        "QUERY_STRING": "token=query-token",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_REFERER": "https://site.example/webhooks/forms/the-forms-secret/?a=b",
        "HTTP_USER_AGENT": "curl/8",
        "HTTP_AUTHORIZATION": "Bearer header-token",
    }
    request = SimpleNamespace(
        headers=[("AUTHORIZATION", "Bearer header-token"), ("X-API-KEY", "header-key")]
    )
    response = SimpleNamespace(status="200 OK", sent=12, headers=[])

    with caplog.at_level(logging.INFO, logger="gunicorn.access"):
        access_logger.access(response, request, environ, timedelta(milliseconds=5))

    assert caplog.messages == [
        "POST /webhooks/forms/***/ HTTP/1.1 | /webhooks/forms/***/ | - | "
        "https://site.example/webhooks/forms/***/ | [redacted] | [redacted] | curl/8"
    ]
