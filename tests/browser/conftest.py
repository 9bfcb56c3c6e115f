"""Browser tests: Playwright (the pip package, its driver in the wheel) drives Debian's Chromium
against pytest-django's live server. No browser is downloaded: without a Chromium these tests
are skipped, saying so. Screenshots go to $KOMMO_HUB_ARTIFACTS, else var/test-artifacts/browser/.
"""

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Playwright's sync API runs an event loop in this thread: Django would refuse the test's own
# database calls as "async-unsafe" without this.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ROOT = Path(__file__).resolve().parents[2]
STARTED = time.time()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("KOMMO_HUB_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def artifacts_dir() -> Path:
    folder = Path(
        os.environ.get("KOMMO_HUB_ARTIFACTS") or ROOT / "var" / "test-artifacts" / "browser"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found (/usr/bin/chromium): apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) in Brazilian Portuguese, the hub's default."""
    context = browser.new_context(locale="pt-BR", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    new_page = context.new_page()
    yield new_page
    context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Any:
    """screenshot(page, "step") saves <artifacts>/<test name>-<step>.png and prints its path."""

    def save(page: Any, step: str) -> Path:
        path = artifacts_dir() / f"{request.node.name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    return save


def pytest_terminal_summary(terminalreporter: Any) -> None:
    folder = Path(
        os.environ.get("KOMMO_HUB_ARTIFACTS") or ROOT / "var" / "test-artifacts" / "browser"
    )
    shots = sorted(
        shot
        for shot in (folder.glob("*.png") if folder.is_dir() else [])
        if shot.stat().st_mtime >= STARTED
    )
    if shots:
        terminalreporter.write_line(f"Browser screenshots ({len(shots)}) in {folder}:")
        for shot in shots:
            terminalreporter.write_line(f"  {shot}")
