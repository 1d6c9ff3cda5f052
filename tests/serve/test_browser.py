"""`expwatch serve` in a real headless Chromium: the table within 10 s, a footer before any click, keys that say read-only.

Skipped (with the reason) where Chromium is missing; CI installs Debian's
``chromium`` (.ci/run). The picture is saved beside the test's temporary files
for a person to look at.
"""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from tests.dashboard.conftest import populate
from tests.runtime.helpers import expwatch, start_expwatch, wait_for
from tests.serve.chromium import chromium_binary, open_page

pytestmark = pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def served(tmp_path: Path):
    state = tmp_path / "state"
    state.mkdir()
    populate(state)
    port = free_port()
    server = start_expwatch("serve", state, "--port", str(port))
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: answers(url) or server.poll() is not None, timeout=30, what="expwatch serve to answer")
        assert server.poll() is None, server.communicate()
        yield url
    finally:
        server.terminate()
        try:
            server.communicate(timeout=15)
        except Exception:
            server.kill()
            server.communicate()


async def test_the_page_shows_the_table_and_footer_and_keys_say_read_only(served: str, tmp_path: Path):
    async with open_page(served) as page:
        took = await page.wait_for_text("experiment", "sweep-alive", "sweep-failed", timeout=10)
        assert took < 10
        # The footer, before anything on the page was clicked or focused.
        await page.wait_for_text("Quit", "Filter", timeout=10)
        assert await page.evaluate("document.body.classList.contains('-first-byte')")
        assert "Resume" not in page.text() and "Mark stale" not in page.text()
        await page.screenshot(tmp_path / "served.png")
        # R, S, K and C change things: in the browser (always read-only) they say so instead of nothing.
        await page.click(400, 300)
        for key in "RSKC":
            await page.press(key)
        await page.wait_for_text("read-only (observer) mode", timeout=10)


def test_serve_help_shows_the_default_port():
    result = expwatch("serve", "--help")
    assert result.returncode == 0 and "default 8000" in result.stdout
