"""The shipped workflow JSON is exactly what n8n/build_workflow.py writes (edit the builder)."""

import subprocess
import sys
from pathlib import Path

BUILDER = Path(__file__).resolve().parents[2] / "n8n" / "build_workflow.py"


def test_the_committed_workflow_is_what_the_builder_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(BUILDER), "--check"], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
