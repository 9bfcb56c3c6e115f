"""scripts/n8n-engine install fails loudly, naming the registry, when npm cannot reach it: the
engine tests then fail instead of skipping (tests/n8n/conftest.py)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.system.processes import free_port

ENGINE = Path(__file__).resolve().parents[2] / "scripts" / "n8n-engine"

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def test_an_unreachable_registry_fails_the_install_naming_it_and_installs_nothing(
    tmp_path: Path,
) -> None:
    registry = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    engine_dir = tmp_path / "engine"
    env = {
        **os.environ,
        "KOMMO_HUB_N8N_ENGINE_DIR": str(engine_dir),
        "npm_config_registry": registry,
        "npm_config_cache": str(tmp_path / "npm-cache"),
    }

    result = subprocess.run(
        [str(ENGINE), "install"], env=env, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 1
    assert f"the npm registry ({registry}) is unreachable" in result.stderr
    assert not (engine_dir / "node_modules").exists()
    assert not (engine_dir / ".installed.sha256").exists()
